"""NMCE's scores (NMCE Sec. 4, the MCR^2 protocol): the cluster head's ACC / NMI / ARI under
both NMI normalisations, the feature classifiers (kNN, linear SVM on the unit-sphere features,
nearest subspace), features averaged over augmented views, and subspace clustering."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from basis_nmce.evaluation.metrics import (
    clustering_scores,
    knn_accuracy,
    nearest_subspace_accuracy,
    svm_accuracy,
)
from basis_nmce.nmce.networks import NMCENet


@torch.no_grad()
def embed_augmented(
    model: NMCENet, x: torch.Tensor, augmenter, copies: int, batch: int, seed: int
) -> np.ndarray:
    """Features averaged over ``copies`` augmented views of every row, back on the sphere."""
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(int(seed))
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device)
        z = sum(model(augmenter(xb, generator=g))[0] for _ in range(copies))
        out.append(torch.nn.functional.normalize(z, dim=1).cpu())
    return torch.cat(out).numpy()


def nearsub_components(ev: dict[str, Any], d: int, n_classes: int) -> int:
    """Class subspace dimension: the configured one, at most d_z / classes (so that the class
    subspaces can be independent; one filling the feature space makes the classifier moot)."""
    return max(1, min(int(ev["nearest_subspace_components"]), d // max(1, n_classes), d - 1))


def feature_scores(
    ev: dict[str, Any], ztr, ytr, zte, yte, seed: int, suffix: str = ""
) -> dict[str, float]:
    d = zte.shape[1]
    comps = nearsub_components(ev, d, len(np.unique(ytr[ytr >= 0])))
    return {
        f"knn_acc{suffix}": knn_accuracy(ztr, ytr, zte, yte, k=int(ev["knn_k"])),
        f"svm_acc{suffix}": svm_accuracy(ztr, ytr, zte, yte, seed=seed, standardize=False),
        f"nearsub_acc{suffix}": nearest_subspace_accuracy(ztr, ytr, zte, yte, n_components=comps),
    }


def cluster_scores(y: np.ndarray, pred: np.ndarray, prefix: str = "") -> dict[str, Any]:
    """ACC, ARI and NMI under both normalisations: ``nmi`` = ``nmi_max`` (max(H), BASiS
    Eq. 18, every NMI of this package) and ``nmi_arithmetic`` (scikit-learn's default, the
    NMCE / MCR^2 code's), each key with ``prefix``."""
    scores = clustering_scores(y, pred)
    arithmetic = clustering_scores(y, pred, average_method="arithmetic")["nmi"]
    out = {**scores, "nmi_max": scores["nmi"], "nmi_arithmetic": arithmetic}
    return {f"{prefix}{k}": v for k, v in out.items()}


#: what each score of an NMCE metrics.json measures (written into it as ``protocols``)
PROTOCOLS = {
    "acc, nmi, nmi_max, nmi_arithmetic, ari": "cluster head on the held-out test split (ours)",
    "train_acc, train_nmi, train_nmi_max, train_nmi_arithmetic, train_ari": (
        "cluster head on the training split it was trained on (the NMCE paper's transductive "
        "protocol: the authors' code scores clustering on the training set)"
    ),
    "nmi, nmi_max": "normalised by max(H(Y), H(C)) (BASiS Eq. 18)",
    "nmi_arithmetic": (
        "normalised by the arithmetic mean of H(Y), H(C) (scikit-learn's default, the NMCE "
        "authors' code)"
    ),
    "svm_acc": (
        "LinearSVC (C 1) on the unit-sphere features as they are (the MCR^2 / NMCE protocol), "
        "fitted on train, scored on test"
    ),
    "knn_acc, nearsub_acc": "fitted on train features, scored on test features",
}


def subspace_clusters(
    ev: dict[str, Any], z: np.ndarray, n_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices clustered, their labels): a seeded subsample of at most subspace_max_points."""
    from basis_nmce.evaluation.subspace_clustering import subspace_clustering

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(z))[: int(ev["subspace_max_points"])])
    labels = subspace_clustering(
        z[idx],
        n_clusters,
        method=ev["subspace_clustering"],
        seed=seed,
        **(ev.get("subspace_options") or {}),
    )
    return idx, labels
