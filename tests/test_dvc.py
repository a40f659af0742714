"""DVC on the shared built project (pipeline_fixtures.py): `dvc repro` ran every stage once and
left `dvc status` clean; metrics and plots; a push/pull round trip through a local remote into a
fresh clone that Snakemake finds up to date; `dvc repro --dry` in a fresh clone; and partial
reruns (`dvc repro <stage>`, `dvc repro -s <stage>`) counted by the jobs that really ran."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from basis_nmce.stages.params import STAGES

from .helpers import (
    DVC,
    ROOT,
    SNAKEMAKE,
    dvc_stages_run,
    git,
    jobs_run,
    manifest,
    run,
)

pytestmark = pytest.mark.slow

# Jobs of the tiny config (two data sets, raw features, eight methods, the comparison; moons
# trains NMCE jointly).
TINY_JOBS = Counter(
    fetch=2,
    prepare=2,
    features=2,
    analytic=2,
    basis_reference=2,
    basis_train=2,
    basis_joint=2,
    spectral_train=6,
    nmce_tcr=2,
    nmce_cluster=2,
    nmce_finetune=2,
    evaluate=16,
    compare=2,
    report=1,
)


def _clone(pipeline, dest: Path, pull: bool) -> Path:
    run(["git", "clone", "-q", str(pipeline.proj), str(dest)], dest.parent)
    if pull:
        run([*DVC, "pull"], dest)
    return dest


def _set(proj: Path, key: str, value) -> None:
    """Edit one key of the project's config.yaml, as a user would."""
    cfg = yaml.safe_load((proj / "config.yaml").read_text())
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    (proj / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))


def test_repro_ran_each_stage_once_and_left_status_clean(pipeline):
    assert dvc_stages_run(pipeline.repro) == list(STAGES)  # STAGES is in pipeline order
    # Each stage ran its own rule's jobs, once each, and nothing of another stage's.
    assert jobs_run(pipeline.repro) == TINY_JOBS
    assert pipeline.status == {}, "dvc status is not clean after dvc repro"
    assert "Running stage" not in pipeline.again, "a second dvc repro ran a stage"


def test_metrics_and_plots_show(built):
    metrics = json.loads(run([*DVC, "metrics", "show", "--json"], built).stdout)
    (scores,) = (v["data"]["results/report/metrics.json"]["data"] for v in metrics.values())
    assert scores["moons/raw/analytic"]["acc"] == 1.0
    assert set(scores) == {f"{d}/raw/{m}" for d in ("blobs", "moons") for m in _methods(built)}
    # The comparison (Table 1) of each data set: every compared method's mean over seeds.
    table = next(iter(metrics.values()))["data"]["results/report/compare.json"]["data"]
    assert set(table) == {"blobs/raw", "moons/raw"}
    assert set(table["blobs/raw"]) == {"exact", "BASiS", "SpectralNet", "SpecNet2", "DiffusionNet"}
    assert table["blobs/raw"]["BASiS"]["runs"] == 2
    plots = json.loads(run([*DVC, "plots", "show", "--json"], built).stdout)
    assert not plots.get("errors"), plots.get("errors")
    names = set(plots["data"])
    # The training curves: one series per trained (data set, features, method).
    for d in ("blobs", "moons"):
        for m in ("basis_train", "spectralnet", "nmce_tcr", "nmce_cluster", "nmce_finetune"):
            assert f"results/report/training/{d}_raw_{m}.csv" in names
    # The comparison: one bar per run.
    (comparison,) = plots["data"]["comparison"]
    runs = {row["run"] for row in comparison["content"]["data"]["values"]}
    assert runs == set(scores)


def _methods(proj: Path) -> list[str]:
    return yaml.safe_load((proj / "config.yaml").read_text())["run"]["methods"]


def test_push_pull_round_trip_into_a_fresh_clone(pipeline, tmp_path):
    clone = _clone(pipeline, tmp_path / "clone", pull=False)
    assert not (clone / "results").exists()
    run([*DVC, "pull"], clone)
    assert manifest(clone) == pipeline.files, "the clone did not get every output back"
    assert json.loads(run([*DVC, "status", "--json"], clone).stdout) == {}
    # The pulled files have new modification times in no particular order and Snakemake has no
    # records of them: Snakemake 9 compares modification times whatever its rerun triggers
    # (snakemake/snakemake#4134), so `snakemake --touch` (what `make pull` runs after the pull)
    # marks them up to date in pipeline order and records them. It runs nothing.
    run([*SNAKEMAKE, "--touch"], clone)
    assert manifest(clone) == pipeline.files  # same bytes: no job ran (logs, benchmarks too)
    dry = run([*SNAKEMAKE, "-n"], clone)
    assert "Nothing to be done" in dry.stdout + dry.stderr
    assert json.loads(run([*DVC, "status", "--json"], clone).stdout) == {}
    # The records are real: a changed key reruns the stage that reads it, and only that one.
    changed = run([*SNAKEMAKE, "-n", "--config", "report={max_points: 100}"], clone)
    assert set(re.findall(r"^rule (\w+):", changed.stdout, flags=re.M)) == {"report", "all"}


def test_repro_dry_in_a_fresh_clone(pipeline, tmp_path):
    clone = _clone(pipeline, tmp_path / "clone", pull=False)
    # What the README's set-up (make venv) does in a fresh clone: the empty stage folders.
    run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "stage-folders"], clone)
    created = {
        str(p.relative_to(clone)) for top in ("data", "results") for p in clone.glob(f"{top}/*")
    }
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    outs = {next(iter(o)) for s in stages.values() for o in s["outs"]}
    assert created == outs, "Makefile STAGE_FOLDERS and dvc.yaml's outs differ"
    out = run([*DVC, "repro", "--dry"], clone).stdout
    assert dvc_stages_run(out) == list(STAGES)
    assert not (clone / "results/report/metrics.json").exists(), "a dry run ran something"


def test_repro_one_stage_and_a_single_stage(pipeline, tmp_path):
    clone = _clone(pipeline, tmp_path / "clone", pull=True)
    # A key only the report reads: `dvc repro report` checks the stages it needs (unchanged)
    # and runs the report alone.
    _set(clone, "report.max_points", 100)
    out = run([*DVC, "repro", "report"], clone)
    text = out.stdout + out.stderr
    assert dvc_stages_run(text) == ["report"]
    assert jobs_run(text) == Counter(report=1)
    # A key six stages read: `-s` runs just the named stage; DVC still sees the others stale.
    _set(clone, "graph.sigma_neighbor", 5)
    out = run([*DVC, "repro", "-s", "analytic"], clone)
    text = out.stdout + out.stderr
    assert dvc_stages_run(text) == ["analytic"]
    assert jobs_run(text) == Counter(analytic=2)
    status = json.loads(run([*DVC, "status", "--json"], clone).stdout)
    assert set(status) == {
        "basis_reference",
        "basis_train",
        "basis_joint",
        "spectral_train",
        "evaluate",
        "compare",
    }
    git(clone, "checkout", "config.yaml")
