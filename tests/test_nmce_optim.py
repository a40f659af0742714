"""NMCE optimisers: LARS exclusions and update rule, lr scaling, warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from basis_nmce.errors import ConfigError
from basis_nmce.nmce.optim import (
    LARS,
    build_optimizer,
    build_scheduler,
    param_groups,
    warmup_cosine_factor,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.LayerNorm(3)
    )


def test_param_groups_exclude_bias_and_norm():
    net = _net()
    adapted, excluded = param_groups(net, weight_decay=0.1)
    assert adapted["weight_decay"] == 0.1 and not adapted["lars_exclude"]
    assert excluded["weight_decay"] == 0.0 and excluded["lars_exclude"]
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(adapted["params"]) == {id(net[0].weight), id(net[3].weight)}
    assert ids(excluded["params"]) == {
        id(net[0].bias),
        id(net[1].weight),
        id(net[1].bias),
        id(net[3].bias),
        id(net[4].weight),
        id(net[4].bias),
    }


def test_lars_step_trust_ratio_and_exclusions():
    w = nn.Parameter(torch.tensor([3.0, 4.0]))  # ||w|| = 5
    b = nn.Parameter(torch.tensor([1.0]))
    opt = LARS(
        [
            {"params": [w], "weight_decay": 0.5, "lars_exclude": False},
            {"params": [b], "weight_decay": 0.0, "lars_exclude": True},
        ],
        lr=0.1,
        weight_decay=0.5,
        momentum=0.9,
        trust_coefficient=0.01,
        clip=False,
    )
    w.grad = torch.tensor([0.5, 0.0])
    b.grad = torch.tensor([2.0])
    opt.step()
    g = torch.tensor([0.5, 0.0]) + 0.5 * torch.tensor([3.0, 4.0])
    ratio = 0.01 * 5.0 / (0.5 + 0.5 * 5.0 + 1e-8)  # eta ||w|| / (||grad|| + wd ||w|| + eps)
    expected_w = torch.tensor([3.0, 4.0]) - 0.1 * g * ratio
    torch.testing.assert_close(w.detach(), expected_w)
    torch.testing.assert_close(b.detach(), torch.tensor([1.0 - 0.1 * 2.0]))  # plain SGD


class _AuthorsLARSWrapper:
    """The NMCE authors' optimiser, written out independently: a SimCLR-style wrapper that
    rescales gradients in place, then lets torch's SGD (momentum, no weight decay) step."""

    def __init__(self, params, lr, wd, eta=0.02, clip=True, eps=1e-8):
        self.params, self.wd, self.eta, self.clip, self.eps = list(params), wd, eta, clip, eps
        self.sgd = torch.optim.SGD(self.params, lr=lr, momentum=0.9, weight_decay=0.0)

    @torch.no_grad()
    def step(self):
        lr = self.sgd.param_groups[0]["lr"]
        for p in self.params:
            if p.grad is None or p.ndim == 1:  # biases and norm parameters: plain SGD
                continue
            p_norm, g_norm = float(torch.norm(p)), float(torch.norm(p.grad))
            if p_norm != 0 and g_norm != 0:
                new_lr = self.eta * p_norm / (g_norm + self.wd * p_norm + self.eps)
                if self.clip:
                    new_lr = min(new_lr / lr, 1)
                p.grad += self.wd * p
                p.grad *= new_lr
        self.sgd.step()


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("lr", [0.05, 3.0])
def test_lars_follows_the_authors_wrapper(clip, lr):
    """Ten steps of our LARS and of the authors' wrapper around SGD from the same start
    (a small rate, where clipping is inactive, and a large one, where it binds)."""
    nets = [nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 2)) for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    ours = build_optimizer(nets[0], "lars", lr=lr, weight_decay=1e-3, lars_clip=clip)
    ref = _AuthorsLARSWrapper(nets[1].parameters(), lr=lr, wd=1e-3, clip=clip)
    x = torch.randn(32, 5, generator=torch.Generator().manual_seed(0))
    for _ in range(10):
        for net, opt in ((nets[0], ours), (nets[1], ref)):
            net.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_lars_excluded_norm_params_unchanged_by_weight_decay_alone():
    net = _net()
    opt = build_optimizer(net, "lars", lr=1.0, weight_decay=1.0)
    adapted = {id(p) for p in param_groups(net, 1.0)[0]["params"]}
    for p in net.parameters():  # a gradient for the adapted weights only
        p.grad = torch.ones_like(p) if id(p) in adapted else torch.zeros_like(p)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    opt.step()
    for name, p in net.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        assert changed == (name in ("0.weight", "3.weight")), name


def test_build_optimizer_kinds_and_lr_scaling():
    net = _net()
    assert isinstance(build_optimizer(net, "adam", 1e-3), torch.optim.Adam)
    assert isinstance(build_optimizer(net.parameters(), "sgd", 1e-2), torch.optim.SGD)
    opt = build_optimizer(net, "lars", 1.0, batch_size=1024, base_batch_size=256)
    assert all(g["lr"] == 4.0 for g in opt.param_groups)
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'"):
        build_optimizer(net, "rmsprop", 1e-3)
    with pytest.raises(ConfigError, match="lr must be"):
        build_optimizer(net, "adam", float("nan"))


def test_frozen_parameters_are_skipped():
    net = _net()
    net[0].requires_grad_(False)
    opt = build_optimizer(net, "lars", 0.1)
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(net[0].weight) not in params and id(net[3].weight) in params


def test_warmup_cosine_values():
    f = lambda s: warmup_cosine_factor(s, total_steps=100, warmup_steps=10, final_factor=0.1)  # noqa: E731
    assert f(0) == pytest.approx(0.1)
    assert f(9) == pytest.approx(1.0)  # last warm-up step
    assert f(10) == pytest.approx(1.0)  # cosine starts at 1
    assert f(55) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f(100) == pytest.approx(0.1)
    assert f(150) == pytest.approx(0.1)


def test_scheduler_drives_lr():
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=2.0)
    sch = build_scheduler(opt, "cosine", total_steps=20, warmup_steps=5)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    assert lrs[0] == pytest.approx(0.4) and lrs[4] == pytest.approx(2.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="unknown schedule"):
        build_scheduler(opt, "step")
