"""Network building blocks shared by the methods.

BASiS and the spectral baselines use the same 5-layer MLP (BASiS paper Table 2:
256-512-512-256-K, ReLU between, no output activation), so comparisons differ only in the
training objective.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


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
