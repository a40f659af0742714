"""BASiS anchors and reference embedding (paper Sec. 4.2, Eq. 11).

``l`` anchors are drawn once and added to every batch. The reference set is the anchors plus
``m - l`` random samples; its exact embedding gives ``phi^{a,ref}``, the coordinates every
batch's embedding is aligned to.

Strategies: ``kmeans`` (default, label-free: k-means on the exact embedding of a reference
sample, an equal share of anchors from each cluster), ``labels`` (the paper's 25 per class,
for reproducing it), ``random``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.graph.laplacian import batch_spectral_embedding

ANCHOR_STRATEGIES = ("kmeans", "labels", "random")


@dataclass
class Reference:
    """The fixed reference of Algorithm 1."""

    anchor_index: np.ndarray  # (l,) rows of the training set
    reference_index: np.ndarray  # (m,) rows of the training set; anchors first
    anchor_embedding: np.ndarray  # (l, K) phi^{a,ref}
    reference_embedding: np.ndarray  # (m, K)
    eigenvalues: np.ndarray  # (K,)
    strategy: str


def rows(
    x: np.ndarray | torch.Tensor, index: np.ndarray, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``x[index]`` as a float32 tensor; reads only those rows of a memory-mapped array."""
    if isinstance(x, torch.Tensor):
        return x[torch.as_tensor(index, device=x.device)].to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x[index]), dtype=torch.float32).to(device)


def _equal_share(groups: np.ndarray, n_anchors: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (into ``groups``) of ``n_anchors`` items, as equal a share per group as sizes allow."""
    values = np.unique(groups)
    members = {g: rng.permutation(np.flatnonzero(groups == g)) for g in values}
    chosen: list[int] = []
    taken = dict.fromkeys(values, 0)
    while len(chosen) < n_anchors:
        progressed = False
        for g in values:
            if len(chosen) == n_anchors:
                break
            if taken[g] < len(members[g]):
                chosen.append(int(members[g][taken[g]]))
                taken[g] += 1
                progressed = True
        if not progressed:
            break
    return np.asarray(chosen, dtype=np.int64)


def build_reference(
    x: np.ndarray | torch.Tensor,
    n_components: int,
    *,
    batch_size: int = 512,
    n_anchors: int,
    strategy: str = "kmeans",
    n_clusters: int | None = None,
    labels: np.ndarray | None = None,
    graph: dict[str, Any] | None = None,
    seed: int = 0,
) -> Reference:
    """Choose anchors and embed the reference set exactly (Eq. 11)."""
    from sklearn.cluster import KMeans

    graph = dict(graph or {})
    n = len(x)
    m = min(int(batch_size), n)
    if strategy not in ANCHOR_STRATEGIES:
        raise ConfigError(
            f"anchor_strategy {strategy!r}: choose one of {', '.join(ANCHOR_STRATEGIES)}"
        )
    if n_anchors < n_components + 1:
        raise ConfigError(
            f"n_anchors={n_anchors}: an affine map of a {n_components}-dimensional embedding needs "
            f"at least K + 1 = {n_components + 1} anchors; raise the number of anchors"
        )
    if n_anchors >= m:
        raise ConfigError(
            f"n_anchors={n_anchors} must be smaller than the batch size {m}: every batch holds the "
            "anchors plus fresh samples"
        )
    rng = np.random.default_rng([seed, 0xA7C])
    if strategy == "labels":
        if labels is None or np.all(np.asarray(labels) < 0):
            raise DataError(
                "anchor_strategy 'labels' needs training labels; use 'kmeans' without them"
            )
        labels = np.asarray(labels)
        anchors = np.flatnonzero(labels >= 0)[_equal_share(labels[labels >= 0], n_anchors, rng)]
        rest = rng.permutation(np.setdiff1d(np.arange(n), anchors))[: m - len(anchors)]
        ref_idx = np.concatenate([anchors, rest])
    else:
        ref_idx = rng.permutation(n)[:m]
        if strategy == "random":
            anchors = ref_idx[:n_anchors]
        else:
            emb, _ = batch_spectral_embedding(rows(x, ref_idx), n_components, **graph)
            k = int(n_clusters or n_components)
            groups = KMeans(k, n_init=10, random_state=seed).fit_predict(emb.double().cpu().numpy())
            pos = _equal_share(groups, n_anchors, rng)
            anchors = ref_idx[pos]
            ref_idx = np.concatenate([anchors, np.delete(ref_idx, pos)])
    emb, vals = batch_spectral_embedding(rows(x, ref_idx), n_components, **graph)
    emb_np = emb.double().cpu().numpy()
    return Reference(
        anchor_index=np.asarray(anchors, dtype=np.int64),
        reference_index=np.asarray(ref_idx, dtype=np.int64),
        anchor_embedding=emb_np[: len(anchors)],
        reference_embedding=emb_np,
        eigenvalues=vals.cpu().numpy(),
        strategy=strategy,
    )


def save_reference(path, ref: Reference) -> None:
    """The ``basis_reference`` stage's output: one ``.npz`` of arrays plus the strategy."""
    from basis_nmce.io import save_npz

    save_npz(
        path,
        anchor_index=ref.anchor_index,
        reference_index=ref.reference_index,
        anchor_embedding=ref.anchor_embedding,
        reference_embedding=ref.reference_embedding,
        eigenvalues=ref.eigenvalues,
        strategy=np.asarray(ref.strategy),
    )


def load_reference(path) -> Reference:
    """Read a reference saved by :func:`save_reference` (no pickled objects)."""
    from basis_nmce.io import load_npz

    z = load_npz(path)
    missing = {f for f in Reference.__dataclass_fields__ if f not in z}
    if missing:
        raise DataError(
            f"{path}: not a BASiS reference (missing {', '.join(sorted(missing))}); rerun the "
            "basis_reference stage"
        )
    return Reference(
        anchor_index=z["anchor_index"].astype(np.int64),
        reference_index=z["reference_index"].astype(np.int64),
        anchor_embedding=z["anchor_embedding"],
        reference_embedding=z["reference_embedding"],
        eigenvalues=z["eigenvalues"],
        strategy=str(z["strategy"]),
    )
