"""The BASiS paper's comparison (Sec. 5.2, Table 1) as a library function.

:func:`compare` fits BASiS and the three baselines on the same features, graph settings, K,
batch size and iterations over several seeds, scores every fit on the held-out split as the
``evaluate`` stage does (d_G against the exact eigenvectors of the test split's own graph with
the same k, the paper's protocol, and ``matched``: the test graph at the density of the batch
graph the method trained on; d_perp ours and the authors'; k-means NMI, ACC, ARI; the linear
probe fitted on train outputs), times each fit, and adds the exact embedding's own row.
:func:`summarise` gives mean and standard deviation per method; :func:`write_tables` writes
them as Markdown, CSV and JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from basis_nmce.evaluation.metrics import embedding_metrics, grassmann_distance
from basis_nmce.graph.batch import matched_graph
from basis_nmce.graph.laplacian import spectral_embedding
from basis_nmce.io import write_json, write_text

log = logging.getLogger(__name__)

METHODS = ("BASiS", "SpectralNet", "SpecNet2", "DiffusionNet")
COLUMNS = (
    "grassmann",
    "grassmann_matched",
    "orthogonality",
    "orthogonality_authors",
    "nmi",
    "acc",
    "ari",
    "linear_acc",
    "train_seconds",
)
#: the Markdown table's heading of each column (the CSV and JSON keep the keys)
LABELS = {
    "grassmann": "d_G same-k",
    "grassmann_matched": "d_G matched",
    "orthogonality": "d_perp ours",
    "orthogonality_authors": "d_perp authors'",
    "nmi": "NMI (max)",
    "acc": "ACC",
    "ari": "ARI",
    "linear_acc": "linear acc.",
    "train_seconds": "fit s",
}
GRAPH_KEYS = ("n_neighbors", "sigma_neighbor", "sigma_mode", "sigma_value", "symmetrize", "kernel")


def _estimator(name: str, params: Mapping[str, Any]):
    import basis_nmce

    return getattr(basis_nmce, name)(**params)


def compare(
    x_train: np.ndarray,
    y_train: np.ndarray | None,
    x_test: np.ndarray,
    y_test: np.ndarray | None,
    *,
    n_components: int,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    methods: Sequence[str] = METHODS,
    common: Mapping[str, Any] | None = None,
    per_method: Mapping[str, Mapping[str, Any]] | None = None,
    n_clusters: int | None = None,
    kmeans_n_init: int = 10,
    probe_epochs: int = 300,
    probe_lr: float = 0.05,
    device: str = "cpu",
    estimators: Mapping[str, Callable[[int], Any]] | None = None,
    graph: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per (method, seed), plus ``exact`` rows (one per seed of k-means).

    ``common``: constructor parameters every method gets (graph, ``batch_size``, ``n_iter``,
    ``hidden``, ...); ``per_method``: overrides by method name (e.g. each method's ``lr``).
    The graph of the exact reference is ``common``'s (``n_neighbors``, sigma...), built on the
    test split (same-k protocol). Instead, ``estimators`` maps a row's name to a function of the
    seed returning the unfitted estimator (the pipeline's ``compare`` stage builds them from
    its config), and ``graph`` gives the exact reference's graph keywords.

    Every embedding is scored as the ``evaluate`` stage scores it
    (:func:`~basis_nmce.evaluation.metrics.embedding_metrics`): k-means on all K columns.
    """
    common = dict(common or {})
    if graph is None:
        graph = {k: common[k] for k in GRAPH_KEYS if k in common}
        graph["laplacian"] = common.get("laplacian", "sym")
        graph["drop_first"] = bool(common.get("drop_first", False))
    graph = dict(graph)
    graph.setdefault("drop_first", False)
    if estimators is None:

        def factory(name: str) -> Callable[[int], Any]:
            def make(seed: int) -> Any:
                params = {**common, **dict((per_method or {}).get(name, {}))}
                params.update(n_components=n_components, random_state=int(seed), device=device)
                return _estimator(name, params)

            return make

        estimators = {name: factory(name) for name in methods}
    k_clusters = int(n_clusters or n_components + int(graph["drop_first"]))
    exact = spectral_embedding(x_test, n_components, **graph, seed=0).embedding
    matched_cache: dict[str, np.ndarray] = {}
    rows: list[dict[str, Any]] = []

    def score(z_tr, z_te, seed, y_tr):
        return embedding_metrics(
            z_tr,
            z_te,
            y_tr,
            y_test,
            reference_test=exact,
            n_clusters=k_clusters,
            seed=seed,
            kmeans_n_init=kmeans_n_init,
            probe_epochs=probe_epochs,
            probe_lr=probe_lr,
        )

    for seed in seeds:
        row = {"method": "exact", "seed": int(seed), **score(exact, exact, seed, None)}
        row.update({"grassmann_matched": 0.0, "train_seconds": 0.0, "linear_acc": None})
        rows.append(row)
    for name, make in estimators.items():
        for seed in seeds:
            est = make(int(seed))
            t0 = time.perf_counter()
            est.fit(x_train, y_train)
            seconds = time.perf_counter() - t0
            z_te, z_tr = est.transform(x_test), est.transform(x_train)
            row = {"method": name, "seed": int(seed), **score(z_tr, z_te, seed, y_train)}
            bg = est.batch_graph_
            m = min(int(est.batch_size), len(x_train))
            key = repr(sorted(bg.items())) + str(m)
            if key not in matched_cache:
                mg = matched_graph(bg, m, len(x_test))
                mg = {k: v for k, v in mg.items() if k != "drop_first"}
                matched_cache[key] = spectral_embedding(
                    x_test, n_components, **mg, drop_first=graph["drop_first"], seed=0
                ).embedding
            row["grassmann_matched"] = grassmann_distance(z_te, matched_cache[key])
            row["train_seconds"] = seconds
            rows.append(row)
            log.info(
                "%s seed %d: fit %.1fs, d_G %.4f, d_perp %.4f, nmi %s",
                name,
                seed,
                seconds,
                row["grassmann"],
                row["orthogonality"],
                row["nmi"],
            )
    return rows


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of every column, per method (in first-seen order)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        summary: dict[str, Any] = {"method": method, "runs": len(mine)}
        for col in COLUMNS:
            vals = [float(r[col]) for r in mine if r.get(col) is not None]
            summary[col] = float(np.mean(vals)) if vals else None
            summary[f"{col}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        out.append(summary)
    return out


def _cell(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f}" if std is None else f"{mean:.3f} ± {std:.3f}"


def write_tables(
    rows: Sequence[Mapping[str, Any]],
    folder: str | Path,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Path]:
    """``compare.md`` (mean ± std), ``compare.csv`` and ``compare.json`` (runs, summary and
    ``meta``: the settings the rows were made with)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    summary = summarise(rows)
    head = ["method", "runs", *(LABELS[c] for c in COLUMNS)]
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    csv = [",".join(["method", "runs", *(f"{c},{c}_std" for c in COLUMNS)])]
    for s in summary:
        md.append(
            "| "
            + " | ".join(
                [s["method"], str(s["runs"])] + [_cell(s[c], s[f"{c}_std"]) for c in COLUMNS]
            )
            + " |"
        )
        vals = [s["method"], str(s["runs"])]
        for c in COLUMNS:
            vals += [
                "" if s[c] is None else f"{s[c]:.6g}",
                "" if s[f"{c}_std"] is None else f"{s[f'{c}_std']:.6g}",
            ]
        csv.append(",".join(vals))
    paths = {
        "md": folder / "compare.md",
        "csv": folder / "compare.csv",
        "json": folder / "compare.json",
    }
    protocol = (
        "All on the test split. d_G same-k (grassmann): squared Grassmann distance to the "
        "exact eigenvectors of the test split's own graph, same k (the paper's protocol); "
        "d_G matched (grassmann_matched): the test graph at the batch graph's density; d_perp "
        "ours (orthogonality): ||Y^T Y / n - I||_F^2; d_perp authors' "
        "(orthogonality_authors): ||U^T U - I||_F with unit-norm columns (the authors' code, "
        "Table 1); NMI normalised by max(H) (Eq. 18), ACC (Hungarian) and ARI of k-means on "
        "all K columns; linear acc.: a linear probe fitted on train outputs, scored on test; "
        "fit s: training time."
    )
    write_text(paths["md"], "\n".join(md) + "\n\n" + protocol + "\n")
    write_text(paths["csv"], "\n".join(csv) + "\n")
    write_json(
        paths["json"],
        {"summary": summary, "runs": list(rows), "protocol": protocol, **dict(meta or {})},
    )
    return paths
