"""Network building blocks shared by the methods.

BASiS and the spectral baselines use the same 5-layer MLP (BASiS paper Table 2:
256-512-512-256-K, ReLU between, no output activation), so comparisons differ only in the
training objective.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.nn import functional as F


class _ELUFunction(torch.autograd.Function):
    """``ELU(x) = max(x, exp(min(x, 0)) - 1)`` (as ``exp(t) >= 1 + t``), derivative
    ``min(ELU(x) + 1, 1)``: one new tensor forward and one backward."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> Tensor:
        # min -87: exp stays a normal float32 (denormals are ~4x slower on x86); the output is -1
        # there either way and the derivative below 1e-37
        out = torch.clamp(x, min=-87.0, max=0.0).exp_().sub_(1.0)
        torch.maximum(out, x, out=out)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad: Tensor) -> Tensor:
        (out,) = ctx.saved_tensors  # type: ignore[attr-defined]
        return (out + 1.0).clamp_(max=1.0).mul_(grad)


class ELU(nn.Module):
    """``nn.ELU()`` (alpha 1, Clevert et al. 2016) that is fast on the CPU.

    PyTorch's CPU ELU goes through ``expm1``, which is not vectorised. On the 2-core developer
    machine (``benchmarks/elu.py``, 4096 x 128 activations, the double spiral's two views at
    batch 2048): forward 2.6 ms against 0.8 ms, forward + backward 3.0 against 1.2 ms, and a
    whole double-spiral NMCE step 43 against 37 ms. The two agree to float32 rounding (largest
    difference 6e-8 in value and gradient). Other devices use ``F.elu``. Differentiable once
    (no double backward). No parameters, so ``nn.ELU`` state dicts load unchanged.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu":
            return F.elu(x)
        return _ELUFunction.apply(x)


ACTIVATIONS = {"relu": nn.ReLU, "elu": ELU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """Linear layers of sizes ``in_dim -> hidden... -> out_dim`` with ``activation`` between."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 512, 512, 256),
        activation: str = "relu",
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation {activation!r}: choose one of {sorted(ACTIVATIONS)}")
        sizes = [int(in_dim), *map(int, hidden), int(out_dim)]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.in_dim, self.out_dim, self.hidden = int(in_dim), int(out_dim), tuple(hidden)


def resolve_device(device: str = "auto") -> torch.device:
    """``auto``: cuda when present, else cpu."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "device 'cuda' requested but no CUDA device is present; use 'auto' or 'cpu'"
        )
    return torch.device(device)
