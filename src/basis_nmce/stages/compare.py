"""Stage ``compare``: the BASiS paper's comparison (Sec. 5.2, Table 1; Fig. 4 as an option).

The exact embedding, BASiS and the baselines on one (dataset, features), with the pipeline's
graph, K, batch size and iterations, over ``compare.seeds`` seeds; every fit is built exactly
as its own pipeline stage builds it (``basis_train``, ``spectral_train``) and scored as
``evaluate`` scores it (:func:`basis_nmce.evaluation.compare.compare`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from basis_nmce.evaluation.compare import compare, summarise, write_tables

from .. import data
from ..io import load_npz, write_json, write_text
from .basis import _setup, estimator_from_params, graph_size, planned_batch
from .spectral import baseline_from_params

log = logging.getLogger(__name__)

#: pipeline method -> the name its rows carry (the paper's)
DISPLAY = {
    "basis_train": "BASiS",
    "spectralnet": "SpectralNet",
    "specnet2": "SpecNet2",
    "diffusionnet": "DiffusionNet",
}
SWEEP_COLUMNS = ("grassmann", "orthogonality", "orthogonality_authors", "nmi")


def _factories(
    params: dict[str, Any], ds: data.Dataset, x_train: Any
) -> dict[str, Callable[[int], Any]]:
    """Row name -> (seed -> unfitted estimator), for ``compare.methods``."""
    _, k, n_clusters, _ = _setup(params, ds)
    n = graph_size(params, ds)
    out: dict[str, Callable[[int], Any]] = {}
    for method in params["compare"]["methods"]:
        if method == "basis_train":
            _, n_anchors, _ = planned_batch(params, ds, x_train)

            def make(seed: int, n_anchors: int = n_anchors) -> Any:
                est = estimator_from_params(params, k, n_anchors, n)
                return est.set_params(random_state=seed, n_clusters=n_clusters)

        else:

            def make(seed: int, method: str = method) -> Any:
                est = baseline_from_params(method, params, k, n)
                return est.set_params(random_state=seed, n_clusters=n_clusters)

        out[DISPLAY[method]] = make
    return out


def _run(params: dict[str, Any], ds: data.Dataset, feats: Any, seeds: list[int]) -> list[dict]:
    graph, k, n_clusters, _ = _setup(params, ds)
    ev = params["evaluate"]
    return compare(
        feats["train"],
        ds.y_train if ds.n_classes else None,
        feats["test"],
        ds.y_test if ds.n_classes else None,
        n_components=k,
        seeds=seeds,
        estimators=_factories(params, ds, feats["train"]),
        graph=graph,
        n_clusters=n_clusters,
        kmeans_n_init=int(ev["kmeans_n_init"]),
        probe_epochs=int(ev["linear_probe_epochs"]),
        probe_lr=float(ev["linear_probe_lr"]),
    )


def _sweep_tables(rows: list[dict[str, Any]], folder: Path) -> None:
    """``sweep.json`` (runs and mean ± std per method and k) and ``sweep.csv``."""
    summary = []
    for k in dict.fromkeys(r["n_neighbors"] for r in rows):
        for s in summarise([r for r in rows if r["n_neighbors"] == k]):
            summary.append({"n_neighbors": k, **s})
    head = ["n_neighbors", "method", "runs"]
    for c in SWEEP_COLUMNS:
        head += [c, f"{c}_std"]
    lines = [",".join(head)]
    for s in summary:
        cells = [str(s["n_neighbors"]), s["method"], str(s["runs"])]
        cells += ["" if s.get(c) is None else f"{s[c]:.6g}" for c in head[3:]]
        lines.append(",".join(cells))
    write_text(folder / "sweep.csv", "\n".join(lines) + "\n")
    write_json(folder / "sweep.json", {"summary": summary, "runs": rows})


def run_compare(params: dict[str, Any], features: Path, prepared: Path, out: Path) -> Path:
    """Write ``out`` (compare.json: runs, mean ± std per method, protocol) and, beside it,
    ``compare.md``, ``compare.csv``, ``sweep.json`` and ``sweep.csv`` (the neighbour sweep;
    empty without ``compare.neighbors``)."""
    feats = load_npz(features, ("train", "test")).require_finite("train", "test")
    ds = data.load_prepared(prepared)
    cmp = params["compare"]
    base = int(params["seed"])
    t0 = time.perf_counter()
    rows = _run(params, ds, feats, [base + i for i in range(int(cmp["seeds"]))])
    folder = Path(out).parent
    _, k, n_clusters, _ = _setup(params, ds)
    meta = {
        "dataset": ds.meta.get("name"),
        "n_train": len(feats["train"]),
        "n_test": len(feats["test"]),
        "n_components": k,
        "n_clusters": n_clusters,
        "seeds": [r["seed"] for r in rows if r["method"] == "exact"],
        "settings": {key: params[key] for key in ("graph", "basis", "baselines", "compare")},
        "seconds": time.perf_counter() - t0,
    }
    write_tables(rows, folder, meta)
    sweep: list[dict[str, Any]] = []
    for k in cmp["neighbors"]:
        swept = {**params, "graph": {**params["graph"], "n_neighbors": int(k)}}
        for row in _run(swept, ds, feats, [base + i for i in range(int(cmp["sweep_seeds"]))]):
            sweep.append({"n_neighbors": int(k), **row})
    _sweep_tables(sweep, folder)
    log.info("compare: %d fits in %.0fs -> %s", len(rows), time.perf_counter() - t0, out)
    return Path(out)
