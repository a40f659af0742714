"""Stage ``analytic``: the exact eigenvectors, the reference every learnt method is scored against.

The train split and the test split each get the eigenvectors of their *own* graph (same
construction), scaled by sqrt(n) so that Y^T Y / n = I; k-means clusters of both are stored.
With ``graph.diffusion_time`` (diffusion-map coordinates, BASiS Sec. 5.3) the embedding of the
whole set, train and test together, is stored too (``full``, train rows first): the paper's
Fig. 5b, which the report draws beside the test split's (5c) and a network's (5d).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from basis_nmce.evaluation.metrics import kmeans_labels
from basis_nmce.graph.laplacian import spectral_embedding

from .. import data
from ..io import load_npz, save_npz, write_json

log = logging.getLogger(__name__)


def resolve_n_components(graph: dict[str, Any], n_classes: int | None) -> int:
    """K = ``graph.n_components``, else the number of classes, else 2."""
    if graph.get("n_components") is not None:
        return int(graph["n_components"])
    return int(n_classes) if n_classes else 2


def run_analytic(params: dict[str, Any], features: Path, prepared: Path, out: Path) -> Path:
    feats = load_npz(features)
    ds = data.load_prepared(prepared)
    graph = dict(params["graph"])
    k = resolve_n_components(graph, ds.n_classes)
    graph.pop("n_components", None)
    n_clusters = ds.n_classes or k
    arrays: dict[str, np.ndarray] = {}
    timings: dict[str, float] = {}
    for split in ("train", "test"):
        t0 = time.perf_counter()
        res = spectral_embedding(feats[split], k, seed=params["seed"], **graph)
        timings[split] = time.perf_counter() - t0
        arrays[split] = res.embedding.astype(np.float32)
        arrays[f"eigenvalues_{split}" if split == "test" else "eigenvalues"] = res.eigenvalues
        arrays[f"clusters_{split}"] = kmeans_labels(res.embedding, n_clusters, seed=params["seed"])
        log.info("analytic %s: n=%d K=%d in %.2fs", split, len(feats[split]), k, timings[split])
    if graph.get("diffusion_time") is not None:
        t0 = time.perf_counter()
        both = np.concatenate([feats["train"], feats["test"]])
        res = spectral_embedding(both, k, seed=params["seed"], **graph)
        arrays["full"] = res.embedding.astype(np.float32)
        timings["full"] = time.perf_counter() - t0
    out = Path(out)
    save_npz(out, **arrays)
    write_json(
        out.with_suffix(".json"),
        {"method": "analytic", "n_components": k, "graph": graph, "seconds": timings},
    )
    return out
