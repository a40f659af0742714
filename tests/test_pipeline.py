"""Real Snakemake runs on a tiny config (the shared `built` project, see pipeline_fixtures.py):
outputs, what a rerun would do, and mtime robustness."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from .helpers import SNAKEMAKE, make_project, run, write_blobs_npz

pytestmark = pytest.mark.slow


def planned_rules(proj: Path, *extra: str) -> set[str]:
    """Rules Snakemake would run (dry run), parsed from its job table."""
    out = run([*SNAKEMAKE, "-n", *extra], proj).stdout
    if "Nothing to be done" in out:
        return set()
    return set(re.findall(r"^rule (\w+):", out, flags=re.M)) - {"all"}


def test_pipeline_writes_every_stage(built):
    for ds in ("blobs", "moons"):
        assert (built / f"data/raw/{ds}/manifest.json").exists()
        assert (built / f"data/prepared/{ds}.npz").exists()
        assert (built / f"data/prepared/{ds}.json").exists()
        assert (built / f"results/features/{ds}/raw/features.npz").exists()
        assert (built / f"results/analytic/{ds}/raw/embedding.npz").exists()
        m = json.loads((built / f"results/evaluate/{ds}/raw/analytic/metrics.json").read_text())
        assert m["acc"] == 1.0
    report = (built / "results/report/report.md").read_text()
    assert "blobs" in report and "moons" in report
    assert (built / "results/report/metrics.csv").exists()
    assert not list(built.rglob("*.tmp*")), "no temporary file left behind"


def test_nothing_to_do_after_a_run(built):
    assert planned_rules(built) == set()


def test_new_mtimes_alone_do_not_rerun(built):
    """What `dvc checkout` does where Snakemake has run: rewrite files, upstream ones newest.
    Snakemake compares modification times whatever its rerun triggers, but an input whose
    checksum equals the recorded one does not count as updated (files up to 1 MB, as here).
    Without records (a fresh clone) see test_dvc.py: `snakemake --touch`."""
    files = [p for d in ("results", "data") for p in (built / d).rglob("*") if p.is_file()]
    before = {p: os.stat(p).st_mtime_ns for p in files}
    # In the past (a future time would make later runs on this shared project see clock skew).
    start = time.time() - len(files) - 60
    try:
        for i, p in enumerate(sorted(files, key=lambda p: str(p))):
            os.utime(p, (start + i, start + i))
        # data/ touched last: every input is now newer than every output.
        assert planned_rules(built) == set()
    finally:
        for p, mtime in before.items():
            os.utime(p, ns=(mtime, mtime))


def test_changed_param_reruns_only_its_stage_and_downstream(built):
    assert planned_rules(built, "--config", "evaluate={kmeans_n_init: 3}") == {
        "evaluate",
        "compare",  # scores as evaluate does
        "report",
    }
    assert planned_rules(built, "--config", "graph={sigma_neighbor: 5}") >= {
        "analytic",
        "evaluate",
    }
    assert "features" not in planned_rules(built, "--config", "graph={sigma_neighbor: 5}")


def test_forcerun_one_stage(built):
    assert planned_rules(built, "--forcerun", "analytic") == {"analytic", "evaluate", "report"}
    assert planned_rules(built, "--until", "features", "--forcerun", "features") == {"features"}


def test_changed_user_file_reruns_from_fetch(built):
    path = built / "blobs.npz"
    data, mtime = path.read_bytes(), os.stat(path).st_mtime_ns
    try:
        write_blobs_npz(path, seed=1)
        assert {"fetch", "prepare", "features", "analytic"} <= planned_rules(built)
    finally:  # the same bytes and time: the fetch rule's size+mtime param sees no change
        path.write_bytes(data)
        os.utime(path, ns=(mtime, mtime))
    assert planned_rules(built) == set()


def test_invalid_config_stops_snakemake_naming_key(tmp_path):
    from .helpers import TINY_CONFIG

    bad = {**TINY_CONFIG, "graph": {"laplacian": "normalized"}}
    proj = make_project(tmp_path, bad)
    proc = run([*SNAKEMAKE, "-n"], proj, check=False)
    assert proc.returncode != 0
    assert "graph.laplacian" in proc.stdout + proc.stderr


def test_results_are_reproducible(built, tmp_path):
    """Same seed, same machine: the same numbers."""
    other = make_project(tmp_path)
    run([*SNAKEMAKE, "results/analytic/moons/raw/embedding.npz"], other)
    a = np.load(built / "results/analytic/moons/raw/embedding.npz")
    b = np.load(other / "results/analytic/moons/raw/embedding.npz")
    np.testing.assert_array_equal(a["train"], b["train"])
    np.testing.assert_array_equal(a["test"], b["test"])
