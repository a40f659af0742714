"""Stages ``basis_reference`` and ``basis_train``: BASiS Algorithm 1 as two pipeline steps.

``basis_reference`` chooses the anchors and embeds the reference set exactly (Eq. 11);
``basis_train`` trains the network on aligned batches (Eqs. 13-15) and embeds both splits out
of sample. The reference is its own output so that training settings (iterations, learning
rate) can change without moving the coordinates every batch is aligned to.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from basis_nmce.spectral.anchors import build_reference, load_reference, save_reference
from basis_nmce.spectral.basis import BASiS
from basis_nmce.spectral.batch_limits import PIPELINE, plan_batch
from basis_nmce.spectral.estimator import write_history

from .. import data
from ..io import load_npz, save_npz, write_json
from .analytic import resolve_n_components

log = logging.getLogger(__name__)

GRID_SIZE = 200  # points per side of the value grid drawn for 2-D inputs (paper Fig. 1)


def _setup(params: dict[str, Any], ds: data.Dataset) -> tuple[dict[str, Any], int, int, int]:
    """Graph options (without K), K, the number of clusters and the batch size."""
    graph = dict(params["graph"])
    k = resolve_n_components(graph, ds.n_classes)
    graph.pop("n_components", None)
    n_clusters = ds.n_classes or k + int(bool(graph.get("drop_first")))
    return graph, k, n_clusters, int(params["basis"]["batch_size"])


def graph_size(params: dict[str, Any], ds: data.Dataset) -> int:
    """The n that ``graph.n_neighbors`` refers to: ``basis.graph_size``, else the test split's
    size (its own graph is the exact reference of d_G: learning that operator is the goal)."""
    n = params["basis"].get("graph_size")
    return int(n) if n else len(ds.x_test) or len(ds.x_train)


def planned_batch(
    params: dict[str, Any], ds: data.Dataset, x: np.ndarray
) -> tuple[int, int, dict[str, Any]]:
    """(batch size, anchors, batch graph) of BASiS on the ``n = len(x)`` training points: the
    ``basis`` section's n_anchors if set, else anchors_per_cluster per cluster, at most half a
    batch (warned)."""
    _, k, n_clusters, m = _setup(params, ds)
    basis = params["basis"]
    batch = estimator_from_params(params, k, basis.get("n_anchors"), graph_size(params, ds))
    batch_graph = batch.batch_graph_kwargs(len(x))
    m, n_anchors = plan_batch(
        m,
        len(x),
        k,
        batch_graph["n_neighbors"],
        basis.get("n_anchors"),
        basis["anchors_per_cluster"],
        n_clusters,
        PIPELINE,
    )
    return m, n_anchors, batch_graph


def run_basis_reference(params: dict[str, Any], features: Path, prepared: Path, out: Path) -> Path:
    """Write ``reference.npz`` (anchor and reference indices, their exact embedding)."""
    x = load_npz(features)["train"]
    ds = data.load_prepared(prepared)
    _, k, n_clusters, _ = _setup(params, ds)
    basis = params["basis"]
    m, n_anchors, batch_graph = planned_batch(params, ds, x)
    t0 = time.perf_counter()
    ref = build_reference(
        x,
        k,
        batch_size=m,
        n_anchors=n_anchors,
        strategy=basis["anchor_strategy"],
        n_clusters=n_clusters,
        labels=ds.y_train,
        graph=batch_graph,
        seed=params["seed"],
    )
    seconds = time.perf_counter() - t0
    out = Path(out)
    save_reference(out, ref)
    write_json(
        out.with_suffix(".json"),
        {
            "n_anchors": len(ref.anchor_index),
            "n_reference": len(ref.reference_index),
            "n_components": k,
            "strategy": ref.strategy,
            "batch_graph": batch_graph,
            "eigenvalues": ref.eigenvalues,
            "seconds": seconds,
        },
    )
    log.info(
        "basis_reference: %d anchors (%s) in a reference of %d, K=%d, %.2fs",
        len(ref.anchor_index),
        ref.strategy,
        len(ref.reference_index),
        k,
        seconds,
    )
    return out


def estimator_from_params(
    params: dict[str, Any], n_components: int, n_anchors: int, graph_size: int | None = None
) -> BASiS:
    """The :class:`BASiS` estimator a pipeline config describes (the reference stage reads only
    its graph settings; training settings it does not receive are left at their defaults)."""
    basis = params["basis"]
    train = {
        key: basis[key]
        for key in (
            "n_iter",
            "lr",
            "ransac_hypotheses",
            "ransac_sample",
            "ransac_tolerance",
            "ransac_tolerance_mode",
            "ransac_min_inliers",
            "lr_decay",
            "recenter",
            "checkpoint_every",
        )
        if key in basis
    }
    if "hidden" in basis:
        train["hidden"] = tuple(basis["hidden"])
    return BASiS(
        **shared_params(params, n_components, graph_size),
        n_anchors=n_anchors,
        anchor_strategy=basis["anchor_strategy"],
        diffusion_time=params["graph"].get("diffusion_time"),
        **train,
    )


def shared_params(
    params: dict[str, Any], n_components: int, graph_size: int | None
) -> dict[str, Any]:
    """The constructor parameters every spectral estimator takes from a stage's params: the
    graph (``graph``), K, the batch size and batch-graph rule (``basis``), seed and device."""
    graph, basis = params["graph"], params["basis"]
    return {
        "n_components": n_components,
        "n_neighbors": graph["n_neighbors"],
        "sigma_neighbor": graph["sigma_neighbor"],
        "laplacian": graph["laplacian"],
        "batch_size": basis["batch_size"],
        "random_state": params["seed"],
        "device": params["device"],
        "sigma_mode": graph["sigma_mode"],
        "sigma_value": graph.get("sigma_value"),
        "symmetrize": graph["symmetrize"],
        "kernel": graph["kernel"],
        "drop_first": graph["drop_first"],
        "batch_graph": basis["batch_graph"],
        "graph_size": graph_size,
    }


def _value_grid(est: BASiS, x: np.ndarray) -> dict[str, np.ndarray]:
    """The network over a grid spanning 2-D inputs (Fig. 1); empty arrays otherwise."""
    if x.shape[1] != 2:
        return {"grid_x": np.zeros(0), "grid_y": np.zeros(0), "values": np.zeros((0, 0, 0))}
    lo, hi = x.min(0), x.max(0)
    pad = 0.1 * (hi - lo)
    gx = np.linspace(lo[0] - pad[0], hi[0] + pad[0], GRID_SIZE)
    gy = np.linspace(lo[1] - pad[1], hi[1] + pad[1], GRID_SIZE)
    xx, yy = np.meshgrid(gx, gy)
    pts = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float32)
    values = est.transform(pts).reshape(GRID_SIZE, GRID_SIZE, -1)
    return {
        "grid_x": gx.astype(np.float32),
        "grid_y": gy.astype(np.float32),
        "values": values,
        "clusters": est.predict(pts).reshape(GRID_SIZE, GRID_SIZE),
    }


def run_basis_train(
    params: dict[str, Any],
    features: Path,
    reference: Path,
    prepared: Path,
    out: Path,
    checkpoint: Path | None = None,
    verbose: bool = False,
) -> Path:
    """Train on the train split and write, in ``out``'s folder:

    ``embedding.npz`` (train, test, clusters_train, clusters_test) and ``embedding.json``;
    ``model.pt`` + ``model.json`` (:meth:`BASiS.load`); ``log.csv`` (per-step loss, learning
    rate, inlier ratio, residual, condition number, redrawn batches); ``anchors.npz`` (the
    anchors' coordinates in the first batches before and after alignment, Fig. 3) and
    ``grid.npz`` (the network over a grid, for 2-D inputs). ``checkpoint`` is kept until the
    outputs are written, so a killed run resumes from it.
    """
    feats = load_npz(features)
    ds = data.load_prepared(prepared)
    ref = load_reference(reference)
    graph, k, n_clusters, m = _setup(params, ds)
    est = estimator_from_params(params, k, len(ref.anchor_index), graph_size(params, ds))
    est.set_params(n_clusters=n_clusters, verbose=verbose)
    out = Path(out)
    folder = out.parent
    t0 = time.perf_counter()
    est.fit(feats["train"], ds.y_train, reference=ref, checkpoint=checkpoint)
    seconds = time.perf_counter() - t0
    write_history(folder / "log.csv", est.history_, est.LOG_FIELDS)
    arrays = {split: est.transform(feats[split]) for split in ("train", "test")}
    for split in ("train", "test"):
        arrays[f"clusters_{split}"] = est.clusters_of(arrays[split])
    save_npz(out, **arrays)
    est.save(folder / "model.pt")
    trace = est.anchor_trace_
    save_npz(
        folder / "anchors.npz",
        raw=np.stack([a for a, _ in trace]) if trace else np.zeros((0, 0, k)),
        aligned=np.stack([b for _, b in trace]) if trace else np.zeros((0, 0, k)),
        reference=ref.anchor_embedding.astype(np.float32),
    )
    save_npz(folder / "grid.npz", **_value_grid(est, feats["train"]))
    history = est.history_
    write_json(
        out.with_suffix(".json"),
        {
            "method": "basis_train",
            "n_components": k,
            "n_clusters": n_clusters,
            "batch_size": min(m, len(feats["train"])),
            "n_anchors": len(ref.anchor_index),
            "graph": graph,
            "graph_size": est.graph_size,
            "batch_graph": est.batch_graph_,
            "basis": params["basis"],
            "recenter": est.recenter,
            "n_iter": est.n_iter_,
            "resumed_from": est.resumed_from_,
            "rejected_batches": est.rejected_batches_,
            "fallback_batches": est.fallback_batches_,
            "final_loss": history[-1]["loss"] if history else None,
            "median_inlier_ratio": est.median_inlier_ratio_,
            "median_heldout_error": float(np.median([h["heldout_error"] for h in history])),
            "seconds": seconds,
            "seconds_per_iteration": seconds / max(est.n_iter_ - est.resumed_from_, 1),
        },
    )
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    log.info(
        "basis_train: %d iterations (resumed from %d) in %.1fs, final loss %.4g",
        est.n_iter_,
        est.resumed_from_,
        seconds,
        history[-1]["loss"] if history else float("nan"),
    )
    return out
