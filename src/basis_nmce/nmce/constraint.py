"""The constraint functional D of NMCE Sec. 3, measured on hard cluster assignments.

NMCE's identifiability argument (Sec. 3): a constraint functional ``D(f)`` is 0 exactly for the
cluster assignments ``f`` that keep every point and its augmentations in one cluster, and every
such ``f`` with the right number of clusters is the correct clustering (when the augmentation
links each manifold and never two of them). :func:`assignment_violation` is the empirical ``D``
of a network's argmax assignments, computed without labels; restarts
(:mod:`basis_nmce.nmce.restarts`) and the extended training of
:func:`basis_nmce.nmce.train.train_joint` use it to tell a finished run from one that still
breaks the constraint.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from basis_nmce.errors import ConfigError
from basis_nmce.nmce.augment import Augmenter
from basis_nmce.nmce.networks import NMCENet

__all__ = ["Violation", "assignment_violation"]


class Violation(NamedTuple):
    """:func:`assignment_violation`'s result."""

    fraction: float  # D: pairs (point, augmented copy) in different clusters
    clusters_used: int  # clusters holding at least one of the sampled points


@torch.no_grad()
def assignment_violation(
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    *,
    views: int = 4,
    max_points: int = 20_000,
    seed: int = 0,
    batch: int = 4096,
) -> Violation:
    """Empirical ``D`` of the hard cluster assignments (NMCE Sec. 3): the fraction of pairs
    (point, augmented copy) whose argmax cluster differs from the point's own, over ``views``
    augmentations of at most ``max_points`` points (a seeded subsample), and how many clusters
    those points use. ``D`` is 0 when every sampled point shares its cluster with its copies."""
    if views < 1 or max_points < 1:
        raise ConfigError(f"views and max_points must be >= 1, got {views}, {max_points}")
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    if x.shape[0] > max_points:
        x = x[torch.randperm(x.shape[0], generator=g)[:max_points]]
    was_training = model.training
    model.eval()
    flips = total = 0
    used = torch.zeros(model.n_clusters, dtype=torch.bool)
    try:
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch]
            own = model(xb.to(device))[1].argmax(dim=1)
            used[own.unique().cpu()] = True
            for _ in range(views):
                other = model(augmenter(xb, generator=g).to(device))[1].argmax(dim=1)
                flips += int((other != own).sum())
                total += int(own.numel())
    finally:
        model.train(was_training)
    return Violation(flips / total, int(used.sum()))
