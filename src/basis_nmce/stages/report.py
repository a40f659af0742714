"""Stage ``report``: gather every ``metrics.json`` into one table and draw the embeddings.

Layout of the report folder (``--out``): ``report.md``, the table as ``metrics.csv`` /
``metrics.md`` / ``metrics.html`` / ``metrics.json`` (``dvc metrics``), ``compare.json`` (the
compare stage's Table 1 summaries, ``dvc metrics``; empty without ``run.compare``), ``comparison.csv`` (one
row per run: ``dvc plots``' bar chart), ``training/<dataset>_<features>_<method>.csv`` (the
training logs: ``dvc plots``' curves) and ``figures/<dataset>/<features>/<method>/<figure>.png``
with ``<figure>`` one of :data:`FIGURES` (``snakemake --report`` reads this layout).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import data
from ..io import (
    atomic_path,
    load_npz,
    read_csv,
    read_json,
    write_bytes,
    write_json,
    write_text,
)
from .report_compare import compare_section

log = logging.getLogger(__name__)

TABLE_COLUMNS = [
    "dataset",
    "features",
    "method",
    "n_test",
    "n_components",
    "grassmann",
    "grassmann_matched",
    "orthogonality",
    "orthogonality_authors",
    "nmi",
    "acc",
    "ari",
    "linear_acc",
    "linear_protocol",
    "knn_acc",
    "svm_acc",
    "nearsub_acc",
    "sc_acc",
    "sc_nmi",
    # NMCE: NMI with scikit-learn's normalisation, and the cluster head on the training split
    "nmi_arithmetic",
    "train_acc",
    "train_nmi",
    "train_nmi_arithmetic",
    # rotating-object data: how well a 2-D embedding recovers the angle
    "circular_correlation",
]
# Scores in metrics.json (what `dvc metrics` shows); NMCE methods add the feature classifiers
# and the subspace clustering, and lack the BASiS-only ones.
SUMMARY_KEYS = (
    "grassmann",
    "grassmann_matched",
    "orthogonality",
    "orthogonality_authors",
    "nmi",
    "acc",
    "ari",
    "linear_acc",
    "knn_acc",
    "svm_acc",
    "nearsub_acc",
    "knn_acc_aug",
    "svm_acc_aug",
    "nearsub_acc_aug",
    "sc_acc",
    "sc_nmi",
    "sc_ari",
    "nmi_arithmetic",
    "train_acc",
    "train_nmi",
    "train_nmi_arithmetic",
    "train_ari",
    "circular_correlation",
)
# The figures a run can have: its test embedding; a trained method's curves; BASiS's value grid
# (2-D inputs) and anchors.
FIGURES = ("embedding", "training", "grid", "anchors", "diffusion", "curves", "alignment")
# Algorithm 2 (basis_joint) runs: their variants, drawn side by side (Figs. 6 and 8)
JOINT_VARIANTS = ("tg", "no_tg")
JOINT_LABELS = {"tg": "with T_G (Algorithm 2)", "no_tg": "without T_G"}
# Scores of a run drawn side by side by `dvc plots` (comparison.csv).
COMPARISON_KEYS = ("acc", "nmi", "ari")
# Columns of a training log drawn as curves: BASiS's, else NMCE's.
CURVES = (
    ("loss", "inlier_ratio", "heldout_error"),
    ("loss", "inlier_ratio", "residual"),  # BASiS logs written before the held-out error
    ("loss", "effective_rank", "similarity"),
    ("loss", "lr", "seconds"),  # the baselines (spectral_train)
)


def _row(path: Path) -> dict[str, Any]:
    m = read_json(path)
    # results/evaluate/{dataset}/{features}/{method}/metrics.json
    method_dir = path.parent
    row = {k: m.get(k) for k in TABLE_COLUMNS}
    row["_summary"] = {k: m[k] for k in SUMMARY_KEYS if k in m}
    row["dataset"] = m.get("dataset") or method_dir.parent.parent.name
    row["features"] = method_dir.parent.name
    row["method"] = m.get("method") or method_dir.name
    row["_path"] = str(path)
    row["_inputs"] = m.get("inputs") or {}
    return row


def _markdown(df: pd.DataFrame) -> str:
    cols = [c for c in TABLE_COLUMNS if c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df[cols].iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                cells.append("" if np.isnan(v) else f"{v:.4f}")
            else:
                cells.append("" if v is None else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _figure_path(row: dict[str, Any], out: Path, figure: str) -> Path:
    return out / "figures" / row["dataset"] / row["features"] / row["method"] / f"{figure}.png"


def _html(df: pd.DataFrame) -> str:
    """The table as a standalone HTML page (what `snakemake --report` shows)."""
    body = df.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4f}", border=0)
    style = (
        "body{font-family:sans-serif;font-size:13px}"
        "table{border-collapse:collapse}th,td{padding:2px 8px;border-bottom:1px solid #ddd}"
        "td{text-align:right}th{background:#f4f4f4}"
    )
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>basis-nmce metrics</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def _first_informative(meta: Path, n_columns: int) -> int:
    """0, or 1 where column 0 is a kept trivial eigenvector (near-constant: not worth a panel)."""
    graph = read_json(meta).get("graph", {}) if meta.exists() else {}
    return 1 if not graph.get("drop_first", True) and n_columns > 1 else 0


def _plot(row: dict[str, Any], out: Path, max_points: int, seed: int) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    inputs = row["_inputs"]
    if not inputs.get("embedding") or not Path(inputs["embedding"]).exists():
        return None
    emb = load_npz(inputs["embedding"])["test"]
    ds = data.load_prepared(inputs["prepared"]) if inputs.get("prepared") else None
    labels = ds.y_test if ds is not None else np.zeros(len(emb), dtype=int)
    pred_path = Path(row["_path"]).with_name("predictions.npz")
    clusters = load_npz(pred_path)["clusters_test"] if pred_path.exists() else labels
    feats = None
    if inputs.get("features") and Path(inputs["features"]).exists():
        f = load_npz(inputs["features"])["test"]
        feats = f if f.shape[1] == 2 else None
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(emb))[:max_points]
    panels = 2 if feats is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 4), squeeze=False)
    ax = axes[0, 0]
    first = _first_informative(Path(inputs["embedding"]).with_suffix(".json"), emb.shape[1])
    x1 = emb[idx, first]
    y2 = emb[idx, first + 1] if emb.shape[1] > first + 1 else np.zeros(len(idx))
    ax.scatter(x1, y2, c=labels[idx], s=3, cmap="tab10")
    ax.set_title(f"{row['method']}: test embedding\n(colour = label)", fontsize=9)
    ax.set_xlabel(f"coordinate {first + 1}")
    ax.set_ylabel(f"coordinate {first + 2}")
    if feats is not None:
        ax = axes[0, 1]
        ax.scatter(feats[idx, 0], feats[idx, 1], c=clusters[idx], s=3, cmap="tab10")
        ax.set_title("test points, colour = k-means on embedding", fontsize=9)
    fig.suptitle(f"{row['dataset']} / {row['features']}", fontsize=10)
    fig.tight_layout()
    target = _figure_path(row, out, "embedding")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return target


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, target: Path) -> Path:
    plt = _pyplot()
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return target


def _training_dir(row: dict[str, Any]) -> Path | None:
    emb = row["_inputs"].get("embedding")
    if not emb:
        return None
    folder = Path(emb).parent
    return folder if (folder / "log.csv").exists() else None


def _plot_curves(row: dict[str, Any], folder: Path, out: Path) -> Path | None:
    """Training curves: BASiS's loss, RANSAC inlier ratio and residual per step; NMCE's loss,
    effective rank of the features and view similarity per logged step."""
    plt = _pyplot()
    log_df = read_csv(folder / "log.csv", what="a training log (log.csv)")
    if log_df.empty:  # e.g. nmce_finetune with 0 steps
        return None
    cols = next(c for c in CURVES if all(k in log_df.columns for k in c[1:]))
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, col in zip(axes, cols, strict=True):
        values = log_df[col].dropna()
        if values.empty:
            ax.set_axis_off()
            continue
        ax.plot(log_df["step"], log_df[col], lw=0.6)
        if len(log_df) >= 20:
            ax.plot(log_df["step"], log_df[col].rolling(20).median(), lw=1.5, color="k")
        positive = bool((values > 0).all())
        ax.set_yscale("log" if positive and col in ("loss", "residual") else "linear")
        ax.set_xlabel("iteration")
        title = {"heldout_error": "held-out anchor error (median)"}.get(col, col.replace("_", " "))
        if col == "inlier_ratio" and "fallback" in log_df.columns:
            title += f" ({int(log_df['fallback'].sum())} fallbacks to all anchors)"
        ax.set_title(title, fontsize=9)
    fig.suptitle(f"{row['method']} training: {row['dataset']} / {row['features']}", fontsize=10)
    return _save(fig, _figure_path(row, out, "training"))


def _plot_anchors(row: dict[str, Any], folder: Path, out: Path) -> Path | None:
    """The anchors' coordinates in the first batches, before and after alignment (Fig. 3)."""
    z = load_npz(folder / "anchors.npz")
    raw, aligned, ref = z["raw"], z["aligned"], z["reference"]
    if raw.size == 0:
        return None
    first = _first_informative(folder / "embedding.json", raw.shape[2])
    raw, aligned, ref = raw[..., first:], aligned[..., first:], ref[..., first:]
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4), sharex=False)
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, len(raw)))
    for ax, coords, title in ((axes[0], raw, "before alignment"), (axes[1], aligned, "after")):
        for b, c in enumerate(coords):
            x = c[:, 0]
            y = c[:, 1] if c.shape[1] > 1 else np.arange(len(c))
            ax.scatter(x, y, s=4, color=colours[b], alpha=0.6)
        if title == "after":
            y = ref[:, 1] if ref.shape[1] > 1 else np.arange(len(ref))
            ax.scatter(ref[:, 0], y, s=14, facecolors="none", edgecolors="r", lw=0.6)
        ax.set_title(f"anchors in {len(coords)} batches, {title}", fontsize=9)
        ax.set_xlabel(f"coordinate {first + 1}")
        ax.set_ylabel(f"coordinate {first + 2}" if raw.shape[2] > 1 else "anchor")
    fig.suptitle(
        f"{row['dataset']} / {row['features']}: red circles = reference (Eq. 11)", fontsize=10
    )
    return _save(fig, _figure_path(row, out, "anchors"))


def _plot_grid(row: dict[str, Any], folder: Path, out: Path) -> Path | None:
    """The network's value over the input plane and its clustering (Fig. 1), 2-D inputs only."""
    z = load_npz(folder / "grid.npz")
    if z["values"].size == 0:
        return None
    plt = _pyplot()
    gx, gy, values, clusters = z["grid_x"], z["grid_y"], z["values"], z["clusters"]
    k = values.shape[2]
    fig, axes = plt.subplots(1, k + 1, figsize=(4.2 * (k + 1), 4), squeeze=False)
    inputs = row["_inputs"]
    pts = load_npz(inputs["features"])["train"] if inputs.get("features") else None
    for i in range(k):
        ax = axes[0, i]
        im = ax.pcolormesh(gx, gy, values[:, :, i], shading="auto", cmap="coolwarm")
        fig.colorbar(im, ax=ax, fraction=0.046)
        ax.set_title(f"network output {i + 1}", fontsize=9)
    ax = axes[0, k]
    ax.pcolormesh(gx, gy, clusters, shading="auto", cmap="Pastel1")
    ax.set_title("k-means clusters of the output", fontsize=9)
    if pts is not None:
        idx = np.random.default_rng(0).permutation(len(pts))[:1500]
        for ax in axes[0]:
            ax.scatter(pts[idx, 0], pts[idx, 1], s=1, c="k", alpha=0.4)
    fig.suptitle(f"{row['dataset']} / {row['features']}: {row['method']}", fontsize=10)
    return _save(fig, _figure_path(row, out, "grid"))


def _plot_diffusion(row: dict[str, Any], out: Path) -> Path | None:
    """BASiS Fig. 5 for a learnt diffusion map: snapshots (a), the exact diffusion map of the
    whole set (b) and of the test split (c), the network's test output (d), coloured by label
    (for the ``rotating`` source, the angle). Drawn when the analytic stage stored ``full``
    (``graph.diffusion_time`` set)."""
    inputs = row["_inputs"]
    ref_path = inputs.get("reference")
    if not ref_path or not Path(ref_path).exists() or not inputs.get("prepared"):
        return None
    ref = load_npz(ref_path)
    if "full" not in ref or ref["full"].shape[1] < 2:
        return None
    emb = load_npz(inputs["embedding"])["test"]
    ds = data.load_prepared(inputs["prepared"])
    labels_full = np.concatenate([ds.y_train, ds.y_test])
    angle = ds.meta.get("source") == "rotating"
    cmap = "hsv" if angle else "tab10"
    plt = _pyplot()
    images = ds.x_train if ds.is_image else None
    panels = 3 + int(images is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 3.6), squeeze=False)
    axes = list(axes[0])
    if images is not None:
        ax = axes.pop(0)
        order = np.argsort(ds.y_train)
        pick = order[np.linspace(0, len(order) - 1, 6).astype(int)]
        tiles = [images[i] for i in pick]
        grid = np.concatenate(
            [np.concatenate(tiles[:3], axis=1), np.concatenate(tiles[3:], axis=1)], axis=0
        )
        ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None)
        ax.set_axis_off()
        ax.set_title("(a) snapshots", fontsize=9)
    for ax, coords, labels, title in (
        (axes[0], ref["full"], labels_full, "(b) exact diffusion map, full set"),
        (axes[1], ref["test"], ds.y_test, "(c) exact diffusion map, test split"),
        (axes[2], emb, ds.y_test, f"(d) {row['method']}: test output"),
    ):
        ax.scatter(coords[:, 0], coords[:, 1], c=labels, s=3, cmap=cmap)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
    colour = "angle" if angle else "label"
    fig.suptitle(
        f"{row['dataset']} / {row['features']}: diffusion maps, colour = {colour}", fontsize=10
    )
    return _save(fig, _figure_path(row, out, "diffusion"))


def _joint_runs(paths: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{dataset: {variant: record}}`` of the basis_joint stage's embedding.json files
    (``results/basis_joint/<dataset>/<variant>/embedding.json``); ``folder`` is added."""
    runs: dict[str, dict[str, dict[str, Any]]] = {}
    for p in paths:
        p = Path(p)
        rec = read_json(p, what="a basis_joint embedding.json")
        rec["folder"] = p.parent
        runs.setdefault(p.parent.parent.name, {})[rec.get("variant", p.parent.name)] = rec
    return runs


def _plot_joint_curves(dataset: str, runs: dict[str, dict[str, Any]], out: Path) -> Path:
    """BASiS Fig. 6: feature loss, spectral loss, test NMI of the spectral network beside the
    exact embedding of the current features, and d_G between them, with and without T_G."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    styles = {"tg": ("C1", "-"), "no_tg": ("C2", "--")}
    exact_drawn = False
    for variant in JOINT_VARIANTS:
        if variant not in runs:
            continue
        rec = runs[variant]
        df = read_csv(rec["folder"] / "log.csv", what="a basis_joint log (log.csv)")
        colour, ls = styles[variant]
        label = JOINT_LABELS[variant]
        if not exact_drawn:  # the feature network trains alike in both runs
            axes[0].plot(df["iteration"], df["feature_loss"], color="k", lw=1)
        axes[1].plot(df["iteration"], df["spectral_loss"], color=colour, ls=ls, label=label)
        ev = df.dropna(subset=["nmi_network"])
        if not ev.empty:
            if not exact_drawn:
                axes[2].plot(
                    ev["iteration"], ev["nmi_exact"], color="C0", label="exact, current features"
                )
            axes[2].plot(
                ev["iteration"], ev["nmi_network"], color=colour, ls=ls, label=f"network, {label}"
            )
        gd = df.dropna(subset=["grassmann"])
        axes[3].plot(gd["iteration"], gd["grassmann"], color=colour, ls=ls, label=label)
        meet = rec.get("meeting_iteration")
        if variant == "tg" and meet:
            for ax in axes[1:3]:
                ax.axvline(meet, color="r", lw=0.8)
        exact_drawn = True
    axes[0].set_title("(a) feature loss (contrastive, Eq. 21)", fontsize=9)
    axes[1].set_title("(b) spectral loss (Eq. 15)", fontsize=9)
    axes[1].set_yscale("log")
    axes[2].set_title("(c) test NMI; red: network within 0.02 from here on", fontsize=9)
    axes[3].set_title("(d) d_G, network vs exact embedding (test)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("feature iteration")
    for ax in axes[1:]:
        ax.legend(fontsize=7)
    fig.suptitle(f"{dataset}: BASiS under feature change (Algorithm 2), Fig. 6", fontsize=10)
    return _save(fig, out / "figures" / dataset / "joint" / "basis_joint" / "curves.png")


def _xy(a: np.ndarray, drop: int) -> tuple[np.ndarray, np.ndarray]:
    a = a[:, drop:]
    return a[:, 0], (a[:, 1] if a.shape[1] > 1 else np.zeros(len(a)))


def _plot_joint_alignment(dataset: str, runs: dict[str, dict[str, Any]], out: Path) -> Path | None:
    """BASiS Fig. 8: rows = moments of training; columns: the reference embedded on the
    current features before T_G, after T_G, and the network's test embedding with and without
    T_G (first two non-trivial coordinates, colour = class)."""
    tg = runs.get("tg")
    if tg is None or not (tg["folder"] / "snapshots.npz").exists():
        return None
    z = load_npz(tg["folder"] / "snapshots.npz")
    its = [int(i) for i in tg.get("snapshot_iterations") or []]
    if not its:
        return None
    other = runs.get("no_tg")
    zo = load_npz(other["folder"] / "snapshots.npz") if other else None
    drop = 0 if tg.get("graph", {}).get("drop_first", True) else 1
    plt = _pyplot()
    cols = 4 if zo is not None else 3
    fig, axes = plt.subplots(len(its), cols, figsize=(3.2 * cols, 3.0 * len(its)), squeeze=False)
    ref_y, test_y = z["reference_labels"], z["labels"]
    for r, it in enumerate(its):
        panels = [
            (z[f"before_{it}"], ref_y, "reference, before T_G"),
            (z[f"after_{it}"], ref_y, "reference, after T_G"),
            (z[f"network_{it}"], test_y, "network, test (with T_G)"),
        ]
        if zo is not None and f"network_{it}" in zo:
            panels.append((zo[f"network_{it}"], test_y, "network, test (without T_G)"))
        for c, (coords, labels, title) in enumerate(panels):
            ax = axes[r, c]
            x, y = _xy(coords, drop)
            ax.scatter(x, y, c=labels, s=3, cmap="tab10", vmin=0, vmax=9)
            ax.set_title(f"iteration {it}: {title}", fontsize=8)
    fig.suptitle(f"{dataset}: the role of T_G (Fig. 8); colour = class", fontsize=10)
    return _save(fig, out / "figures" / dataset / "joint" / "basis_joint" / "alignment.png")


def _joint_table(runs: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| dataset | variant | n_test | K | iterations | nmi_network | nmi_exact | grassmann | meeting_iteration | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for d in sorted(runs):
        for v in JOINT_VARIANTS:
            if v not in runs[d]:
                continue
            r = runs[d][v]

            def f(key: str, r: dict[str, Any] = r) -> str:
                val = r.get(key)
                return "" if val is None else (f"{val:.4f}" if isinstance(val, float) else str(val))

            lines.append(
                f"| {d} | {v} | {f('n_test')} | {f('n_components')} | {f('n_iter')} | "
                f"{f('nmi_network')} | {f('nmi_exact')} | {f('grassmann')} | "
                f"{f('meeting_iteration')} | {r.get('seconds', 0):.1f} |"
            )
    return "\n".join(lines) + "\n"


def _training_figures(row: dict[str, Any], out: Path) -> list[Path]:
    """Figures of a trained method, and its log copied to ``training/`` (DVC's plots)."""
    folder = _training_dir(row)
    if folder is None:
        return []
    name = f"{row['dataset']}_{row['features']}_{row['method']}.csv"
    write_bytes(out / "training" / name, (folder / "log.csv").read_bytes())
    figs = []
    for plot, needs in (
        (_plot_curves, "log.csv"),
        (_plot_grid, "grid.npz"),
        (_plot_anchors, "anchors.npz"),
    ):
        if not (folder / needs).exists():  # NMCE stages write no grid or anchors
            continue
        fig = plot(row, folder, out)
        if fig is not None:
            figs.append(fig)
    return figs


def run_report(
    params: dict[str, Any],
    metrics_files: list[Path],
    out_dir: Path,
    compare: list[Path] | tuple[Path, ...] = (),
    joint: list[Path] | None = None,
) -> Path:
    """Write the report (module docstring); ``compare``: the compare stage's compare.json
    files, drawn as the comparison section and summarised in ``compare.json``; ``joint``: the
    basis_joint stage's embedding.json files (Algorithm 2, Figs. 6 and 8)."""
    out_dir = Path(out_dir)
    for folder in (out_dir, out_dir / "figures", out_dir / "training"):
        folder.mkdir(parents=True, exist_ok=True)  # declared outputs, even when empty
    rows = [_row(Path(p)) for p in metrics_files]
    df = pd.DataFrame(rows).sort_values(["dataset", "features", "method"]).reset_index(drop=True)
    table = df[[c for c in TABLE_COLUMNS if c in df.columns]]
    with atomic_path(out_dir / "metrics.csv") as tmp:
        table.to_csv(tmp, index=False)
    write_text(out_dir / "metrics.md", _markdown(table))
    write_text(out_dir / "metrics.html", _html(table))
    comparison = pd.DataFrame(
        {
            "run": [f"{r['dataset']}/{r['features']}/{r['method']}" for r in rows],
            **{k: [r["_summary"].get(k) for r in rows] for k in COMPARISON_KEYS},
        }
    ).sort_values("run")
    with atomic_path(out_dir / "comparison.csv") as tmp:
        comparison.to_csv(tmp, index=False)
    summary = {f"{r['dataset']}/{r['features']}/{r['method']}": r["_summary"] for r in rows}
    write_json(out_dir / "metrics.json", summary)
    figures = []
    for r in rows:
        fig = _plot(r, out_dir, params["report"]["max_points"], params["seed"])
        if fig is not None:
            figures.append(fig)
        figures += _training_figures(r, out_dir)
        if r["method"] != "analytic":
            fig = _plot_diffusion(r, out_dir)
            if fig is not None:
                figures.append(fig)
    lines = [
        "# basis-nmce report",
        "",
        "Metrics on the held-out test split (but train_*). d_G: squared Grassmann distance to the exact",
        "eigenvectors of the test split's own graph (same k, the paper's protocol);",
        "grassmann_matched: the same against a test graph as dense as a training batch's (k and",
        "the sigma neighbour scaled by n_test / batch size); d_perp: ||Y^T Y / n - I||_F^2;",
        "NMI / ACC (Hungarian) / ARI of k-means; linear_acc: linear probe (protocol column).",
        "NMCE methods (nmce_*): NMI / ACC / ARI of the cluster head (nmce_tcr: of the subspace",
        "clustering, sc_*); knn / svm / nearsub: classifiers of the features fitted on train",
        "(svm on the unit-sphere features as they are, the MCR^2 protocol). nmi is normalised by",
        "max(H) (BASiS Eq. 18); nmi_arithmetic by the arithmetic mean (scikit-learn's default, the",
        "NMCE authors' code). train_*: the NMCE cluster head scored on the training split it was",
        "trained on (the NMCE paper's transductive protocol); every other score is on the test split.",
        "",
        _markdown(table),
    ]
    compare_lines, compare_summary, compare_figures = compare_section(
        [Path(p) for p in compare], out_dir, _save, _pyplot
    )
    write_json(out_dir / "compare.json", compare_summary)
    runs = _joint_runs(list(joint or []))
    if runs:
        lines += [
            "## BASiS under feature change (Algorithm 2)",
            "",
            "Test split. nmi_network: k-means NMI of the spectral network's output; nmi_exact: of",
            "the exact embedding of the final features; grassmann: d_G between the two;",
            "meeting_iteration: from here on the network's NMI stays within 0.02 of the exact one.",
            "",
            _joint_table(runs),
        ]
        for d, by_variant in sorted(runs.items()):
            figures.append(_plot_joint_curves(d, by_variant, out_dir))
            fig = _plot_joint_alignment(d, by_variant, out_dir)
            if fig is not None:
                figures.append(fig)
    lines += ["## Figures", ""]
    lines += [
        f"![{f.relative_to(out_dir).with_suffix('')}]({f.relative_to(out_dir)})" for f in figures
    ]
    if compare_lines:
        lines += ["", *compare_lines]
        lines += [
            f"![{f.relative_to(out_dir).with_suffix('')}]({f.relative_to(out_dir)})"
            for f in compare_figures
        ]
    report = out_dir / "report.md"
    write_text(report, "\n".join(lines) + "\n")
    log.info("report: %d rows, %d figures -> %s", len(rows), len(figures), report)
    return report
