"""The comparison as a pipeline output (BASiS Table 1): the baselines as pipeline methods, the
compare stage on the tiny config, the report's section, and the paper presets' whole graphs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from .helpers import ROOT, SNAKEMAKE, make_project, run

pytestmark = pytest.mark.slow

STAGE_OF = {
    "exact": "analytic",
    "BASiS": "basis_train",
    "SpectralNet": "spectralnet",
    "SpecNet2": "specnet2",
    "DiffusionNet": "diffusionnet",
}
KEYS = ("grassmann", "grassmann_matched", "orthogonality", "orthogonality_authors", "nmi", "acc")


@pytest.mark.parametrize("dataset", ["blobs", "moons"])
def test_compare_rows_equal_each_method_s_own_stage_and_evaluation(built, dataset):
    """compare builds every fit as its own stage does and scores it as evaluate does: its
    first seed (the config's seed) reproduces each method's pipeline metrics exactly."""
    record = json.loads((built / f"results/compare/{dataset}/raw/compare.json").read_text())
    assert record["seeds"] == [0, 1]
    for method, stage in STAGE_OF.items():
        (row,) = [r for r in record["runs"] if r["method"] == method and r["seed"] == 0]
        metrics = json.loads(
            (built / f"results/evaluate/{dataset}/raw/{stage}/metrics.json").read_text()
        )
        for key in KEYS:
            if method == "exact" and key == "grassmann_matched":
                continue  # the exact rows' own reference; evaluate has no batch graph for it
            assert row[key] == pytest.approx(metrics[key], rel=1e-9, abs=1e-12), (method, key)
    summary = {s["method"]: s for s in record["summary"]}
    assert set(summary) == set(STAGE_OF) and all(s["runs"] == 2 for s in summary.values())


def test_sweep_report_section_and_figures(built):
    sweep = json.loads((built / "results/compare/blobs/raw/sweep.json").read_text())
    assert sorted({r["n_neighbors"] for r in sweep["runs"]}) == [8, 12]
    assert {s["method"] for s in sweep["summary"]} == set(STAGE_OF)
    report = (built / "results/report/report.md").read_text()
    assert "## Comparison (BASiS Sec. 5.2, Table 1)" in report
    for ds in ("blobs", "moons"):
        for fig in ("table", "sweep"):
            assert (built / f"results/report/figures/{ds}/raw/compare/{fig}.png").stat().st_size
            assert f"figures/{ds}/raw/compare/{fig}.png" in report
    table = json.loads((built / "results/report/compare.json").read_text())
    assert table["moons/raw"]["BASiS"]["runs"] == 2
    # the baselines' training logs are drawn like BASiS's
    assert (built / "results/report/figures/blobs/raw/specnet2/training.png").exists()


PAPER_PRESETS = ["basis-mnist", "basis-fmnist", "basis-svhn", "basis-cifar10"]


@pytest.mark.parametrize("preset", [*PAPER_PRESETS, "basis-fmnist-quick"])
def test_preset_plans_the_whole_comparison(tmp_path, preset):
    """`snakemake -n` with each preset plans every job from the download to the report."""
    proj = make_project(tmp_path)
    shutil.copytree(ROOT / "configs", proj / "configs")
    shutil.copy(ROOT / "config.yaml", proj / "config.yaml")
    out = run([*SNAKEMAKE, "-n", "--configfile", f"configs/{preset}.yaml"], proj).stdout
    planned = set(re.findall(r"^rule (\w+):", out, flags=re.M)) - {"all"}
    expected = {
        "fetch",
        "prepare",
        "features",
        "analytic",
        "basis_reference",
        "basis_train",
        "evaluate",
        "compare",
        "report",
    }
    if preset in PAPER_PRESETS:
        expected.add("spectral_train")
        for method in ("spectralnet", "specnet2", "diffusionnet"):
            assert f"--method {method}" in out
    assert planned == expected
    assert "--kind siamese" in out and "--compare results/compare/" in out
    assert "paper's" in Path(ROOT / "configs" / f"{preset}.yaml").read_text()
