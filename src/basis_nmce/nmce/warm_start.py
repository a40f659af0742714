"""Warm start of the cluster head from k-means of the stage-1 features (ours, not the paper's).

NMCE's stage 2 (Sec. 3.6) starts the cluster head at random and lets the MCR^2 objective find
the partition. On Fashion-MNIST that search ends in a poorer partition than k-means of the
very features it starts from (README, "NMCE on Fashion-MNIST"). ``cluster_head_init: kmeans``
starts it from that partition instead: k-means of the unit-norm stage-1 features ``z`` of (up
to ``max_points``) training samples, the best of :data:`KMEANS_N_INIT` seeded starts by k-means'
own objective (inertia), then the linear cluster head fitted to those labels by cross-entropy
on the frozen trunk's output. Stage 2 then trains as usual from there. No label is read.

Why many starts: on Fashion-MNIST's stage-1 features (20,000 rows drawn by 6 seeds),
scikit-learn's default 10 starts stopped in a local optimum of higher inertia for 2 of the 6
seeds, partitions at ACC 0.66-0.68 against 0.73, and stage 2 keeps the partition it starts
from; 100 starts (about 6 s there) gave 0.728-0.733 for all six (README, "NMCE on
Fashion-MNIST").
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from basis_nmce.nmce.networks import NMCENet

__all__ = ["KMEANS_N_INIT", "KMeansStart", "fit_cluster_head", "kmeans_labels_of_features"]

log = logging.getLogger(__name__)

#: k-means starts of the warm start (scikit-learn keeps the one of lowest inertia)
KMEANS_N_INIT = 100


class KMeansStart(NamedTuple):
    """What :func:`kmeans_labels_of_features` found: k-means labels of the sampled rows and
    the trunk output ``h`` of those rows (the cluster head's input)."""

    labels: Tensor
    h: Tensor


@torch.no_grad()
def kmeans_labels_of_features(
    model: NMCENet,
    x: Tensor,
    seed: int,
    max_points: int = 20000,
    batch: int = 1024,
    n_init: int = KMEANS_N_INIT,
) -> KMeansStart:
    """k-means (scikit-learn, ``n_init`` starts, ``random_state`` seed) of the model's current
    features ``z`` (the stage-1 feature head, unit norm) on up to ``max_points`` rows of ``x``
    drawn with ``seed``; the model's train/eval mode is left as it was."""
    from sklearn.cluster import KMeans

    n = len(x)
    g = torch.Generator().manual_seed(int(seed))
    rows = torch.randperm(n, generator=g)[:max_points] if n > max_points else torch.arange(n)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        hs = [model.trunk(x[rows[i : i + batch]].to(device)) for i in range(0, len(rows), batch)]
    finally:
        model.train(was_training)
    h = torch.cat(hs)
    z = model.feature_head(h).cpu().double().numpy()
    km = KMeans(model.n_clusters, n_init=int(n_init), random_state=int(seed)).fit(z)
    labels = torch.as_tensor(km.labels_.astype(np.int64))
    log.info(
        "cluster head warm start: k-means of %d stage-1 features, inertia %.4g, sizes %s",
        len(rows),
        km.inertia_,
        np.bincount(km.labels_, minlength=model.n_clusters).tolist(),
    )
    return KMeansStart(labels, h)


def fit_cluster_head(
    model: NMCENet,
    start: KMeansStart,
    seed: int,
    steps: int = 300,
    lr: float = 1e-2,
    batch: int = 4096,
) -> float:
    """Fit the (already reset) cluster head to ``start.labels`` by cross-entropy on
    ``start.h`` (Adam, ``steps`` mini-batches drawn with ``seed``); returns the fraction of the
    sampled rows whose argmax then agrees with k-means."""
    head = model.cluster_head
    h = start.h.to(head.weight.device)
    y = start.labels.to(head.weight.device)
    g = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(int(steps)):
        idx = torch.randint(0, len(h), (min(batch, len(h)),), generator=g).to(h.device)
        loss = F.cross_entropy(head(h[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    head.zero_grad(set_to_none=True)
    with torch.no_grad():
        agreement = float((head(h).argmax(dim=1) == y).double().mean())
    log.info("cluster head warm start: agrees with k-means on %.3f of the rows", agreement)
    return agreement
