"""The report's comparison section: the compare stage's Table 1 (and Fig. 4 sweep) per
(dataset, features), as Markdown, one JSON for ``dvc metrics`` and figures.

Figures: ``figures/<dataset>/<features>/compare/table.png`` (mean ± std of d_G, d_perp, NMI,
ACC and linear accuracy per method, over seeds) and ``.../compare/sweep.png`` (d_G against the
number of neighbours, the paper's Fig. 4).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io import read_json

#: (key, label, lower is better) of the table figure's panels
PANELS = (
    ("grassmann", "d_G (same k)", True),
    ("grassmann_matched", "d_G (matched)", True),
    ("orthogonality", "d_perp (ours)", True),
    ("nmi", "NMI (k-means)", False),
    ("acc", "ACC (k-means)", False),
    ("linear_acc", "linear probe acc.", False),
)


def _where(path: Path) -> tuple[str, str]:
    """(dataset, features) of results/compare/<dataset>/<features>/compare.json."""
    return path.parent.parent.name, path.parent.name


def _table_figure(record: dict[str, Any], target: Path, title: str, save, pyplot) -> Path:
    plt = pyplot()
    summary = record["summary"]
    names = [s["method"] for s in summary]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(3.0 * len(PANELS), 3.4))
    colours = plt.get_cmap("tab10")(np.arange(len(names)))
    for ax, (key, label, lower) in zip(axes, PANELS, strict=True):
        means = [s.get(key) for s in summary]
        stds = [s.get(f"{key}_std") or 0.0 for s in summary]
        x = np.arange(len(names))
        heights = [np.nan if m is None else m for m in means]
        ax.bar(x, heights, yerr=stds, color=colours, capsize=3)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{label} ({'lower' if lower else 'higher'} is better)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, target)


def _sweep_figure(sweep: dict[str, Any], target: Path, title: str, save, pyplot) -> Path | None:
    summary = sweep.get("summary") or []
    if not summary:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, label in (
        (axes[0], "grassmann", "d_G (same k)"),
        (axes[1], "orthogonality", "d_perp (ours)"),
    ):
        for method in dict.fromkeys(s["method"] for s in summary if s["method"] != "exact"):
            rows = [s for s in summary if s["method"] == method and s.get(key) is not None]
            if not rows:
                continue
            ks = [r["n_neighbors"] for r in rows]
            ax.errorbar(
                ks,
                [r[key] for r in rows],
                yerr=[r.get(f"{key}_std") or 0.0 for r in rows],
                marker="o",
                capsize=3,
                label=method,
            )
        ax.set_xlabel("neighbours k of the graph")
        ax.set_title(label, fontsize=9)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save(fig, target)


def compare_section(
    files: list[Path], out_dir: Path, save, pyplot
) -> tuple[list[str], dict[str, Any], list[Path]]:
    """(Markdown lines, the summaries by ``dataset/features`` for ``compare.json``, figures)."""
    lines: list[str] = []
    summaries: dict[str, Any] = {}
    figures: list[Path] = []
    if files:
        lines += [
            "## Comparison (BASiS Sec. 5.2, Table 1)",
            "",
            "Mean ± sample std over seeds; every method on the same features, graph, K, batch "
            "size and iterations, scored on the test split as `evaluate` scores it.",
            "",
        ]
    for path in files:
        path = Path(path)
        record = read_json(path, what="a compare.json", hint="rerun the compare stage")
        dataset, features = _where(path)
        summaries[f"{dataset}/{features}"] = {s["method"]: s for s in record["summary"]}
        seeds = record.get("seeds", [])
        lines += [
            f"### {dataset} / {features}",
            "",
            f"{len(seeds)} seeds, K {record.get('n_components')}, "
            f"{record.get('n_train')} train / {record.get('n_test')} test points, "
            f"{record.get('seconds', 0):.0f} s in all.",
            "",
            path.with_name("compare.md").read_text(),
            "",
        ]
        folder = out_dir / "figures" / dataset / features / "compare"
        title = f"{dataset} / {features}: Table 1 over {len(seeds)} seeds"
        figures.append(_table_figure(record, folder / "table.png", title, save, pyplot))
        sweep_path = path.with_name("sweep.json")
        if sweep_path.exists():
            sweep = read_json(sweep_path, what="the compare stage's sweep.json")
            fig = _sweep_figure(
                sweep, folder / "sweep.png", f"{dataset} / {features}: Fig. 4", save, pyplot
            )
            if fig is not None:
                figures.append(fig)
                sweep_csv = path.with_name("sweep.csv").read_text()
                lines += ["Neighbour sweep (Fig. 4):", "", "```", sweep_csv.rstrip(), "```", ""]
    return lines, summaries, figures
