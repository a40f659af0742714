"""The shared network blocks: the CPU ELU against torch's (an independent route)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from basis_nmce.models import ELU, MLP


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-300.0, 300.0, width=32), min_size=1, max_size=64))
def test_elu_equals_torch_elu_in_value_and_gradient(values):
    x = torch.tensor(values, dtype=torch.float32)
    x_ours, x_torch = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_torch = ELU()(x_ours), nn.ELU()(x_torch)
    torch.testing.assert_close(y_ours, y_torch, rtol=0, atol=2.5e-7)
    w = torch.linspace(-1.0, 1.0, len(values))
    (y_ours * w).sum().backward()
    (y_torch * w).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_torch.grad, rtol=1e-6, atol=1e-7)


def test_elu_passes_gradcheck_in_float64():
    x = torch.tensor([-100.0, -3.0, -0.5, -1e-3, 1e-3, 0.5, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(ELU(), (x.requires_grad_(),))


def test_elu_mlp_keeps_nn_elu_state_dicts():
    ours = MLP(3, 2, hidden=[8], activation="elu")
    assert isinstance(ours[1], ELU)
    theirs = nn.Sequential(nn.Linear(3, 8), nn.ELU(), nn.Linear(8, 2))
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(5, 3)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=1e-6)


def test_elu_is_differentiable_once_only():
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad(ELU()(x).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()
