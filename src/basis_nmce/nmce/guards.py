"""Checks run during NMCE training that stop it with a clear :class:`TrainingError`.

* :func:`check_finite` - a non-finite loss or feature (learning rate too high, eps too small
  for the float precision, or bad input data).
* :class:`CollapseMonitor` - feature collapse (the effective rank of the features stays near 1,
  i.e. ``R(Z)`` near its rank-one value ``1/2 log(1 + d/eps^2)``, NMCE Eq. 2) or cluster
  collapse (one cluster holds (nearly) every point) for ``patience`` consecutive steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from basis_nmce.errors import TrainingError

__all__ = ["CollapseMonitor", "check_finite", "effective_rank"]


def _describe(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return ""
    parts = [f"{k}={v:.4g}" for k, v in stats.items() if isinstance(v, float)]
    return f" ({', '.join(parts)})" if parts else ""


def check_finite(
    step: int,
    loss: Tensor | float | None = None,
    features: Tensor | None = None,
    stats: Mapping[str, Any] | None = None,
    stage: str = "training",
) -> None:
    """Raise :class:`TrainingError` when ``loss`` or ``features`` hold NaN or inf."""
    bad = None
    if loss is None:
        value = 0.0
    else:
        value = float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
    if not math.isfinite(value):
        bad = f"the loss is {value}"
    elif features is not None and not bool(torch.isfinite(features.detach()).all()):
        bad = "the features contain NaN or inf"
    if bad is not None:
        raise TrainingError(
            f"{stage}: {bad} at step {step}{_describe(stats)}; try a lower learning rate or "
            "larger eps (and check the input data for NaN/inf)"
        )


def effective_rank(z: Tensor) -> float:
    """``exp(entropy)`` of the normalised eigenvalues of ``Z^T Z`` (1: all rows parallel)."""
    zc = z.detach().to(torch.float64)
    eig = torch.linalg.eigvalsh(zc.mT @ zc).clamp_min(0.0)
    total = eig.sum()
    if not bool(total > 0):
        return 0.0
    p = eig / total
    return float(torch.exp(-torch.special.xlogy(p, p).sum()))


@dataclass
class CollapseMonitor:
    """Counts consecutive collapsed steps and raises :class:`TrainingError` after ``patience``.

    Features collapse when their effective rank (:func:`effective_rank`) is below
    ``min_effective_rank``; clusters collapse when the largest cluster of the hard assignments
    holds at least ``max_cluster_fraction`` of the batch. ``patience`` None disables the check.
    """

    patience: int | None = 200
    min_effective_rank: float = 1.05
    max_cluster_fraction: float = 0.999
    stage: str = "training"
    feature_streak: int = field(default=0, init=False)
    cluster_streak: int = field(default=0, init=False)

    def update(self, step: int, z: Tensor, memberships: Tensor | None = None) -> None:
        if self.patience is None:
            return
        rank = effective_rank(z)
        self.feature_streak = self.feature_streak + 1 if rank < self.min_effective_rank else 0
        if self.feature_streak >= self.patience:
            raise TrainingError(
                f"{self.stage}: the features collapsed (effective rank {rank:.3f} < "
                f"{self.min_effective_rank}, R(Z) near its rank-one value) for "
                f"{self.feature_streak} steps up to step {step}; try a smaller lambda "
                "(invariance weight), a lower learning rate or a larger eps, and check that "
                "the inputs are not constant"
            )
        if memberships is None or memberships.shape[1] < 2:
            return
        hard = memberships.detach().argmax(dim=1)
        counts = torch.bincount(hard, minlength=memberships.shape[1])
        fraction = float(counts.max()) / max(1, int(hard.numel()))
        self.cluster_streak = (
            self.cluster_streak + 1 if fraction >= self.max_cluster_fraction else 0
        )
        if self.cluster_streak >= self.patience:
            raise TrainingError(
                f"{self.stage}: all points fell into one cluster ({fraction:.1%} of the batch) "
                f"for {self.cluster_streak} steps up to step {step}; start from TCR features "
                "(stage 1), lower the cluster head's learning rate or weight decay, or use a "
                "smaller eps"
            )

    def state_dict(self) -> dict[str, int]:
        return {"feature_streak": self.feature_streak, "cluster_streak": self.cluster_streak}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        self.feature_streak = int(state.get("feature_streak", 0))
        self.cluster_streak = int(state.get("cluster_streak", 0))
