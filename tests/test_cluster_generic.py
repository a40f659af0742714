"""The tiny pipeline through `--executor cluster-generic`, the way a batch system runs it: every
job is submitted to a stand-in batch system (tests/cluster/local-submit starts the job script
detached and prints an id) and polled by a status script (tests/cluster/local-status); the
results equal a local run's."""

from __future__ import annotations

import copy
import re
from collections import Counter

import pytest

from .helpers import BIN, ROOT, TINY_CONFIG, assert_same_results, jobs_run, make_project, run

pytestmark = pytest.mark.slow

CLUSTER = ROOT / "tests" / "cluster"
RUNS = [("blobs", "raw", "analytic"), ("blobs", "raw", "basis_train")]


def test_cluster_generic_runs_every_job_and_matches_a_local_run(built, tmp_path):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["run"] = {
        "datasets": ["blobs"],
        "features": ["raw"],
        "methods": ["analytic", "basis_train"],
    }
    proj = make_project(tmp_path, cfg)
    proc = run(
        [
            str(BIN / "snakemake"),
            "--workflow-profile",
            "workflow/profiles/cluster-generic",
            "--cluster-generic-submit-cmd",
            str(CLUSTER / "local-submit"),
            "--cluster-generic-status-cmd",
            str(CLUSTER / "local-status"),
            "--jobs",
            "2",
            "--seconds-between-status-checks",
            "1",
        ],
        proj,
    )
    out = proc.stdout + proc.stderr
    ran = jobs_run(out)
    assert ran == Counter(
        fetch=1,
        prepare=1,
        features=1,
        analytic=1,
        basis_reference=1,
        basis_train=1,
        evaluate=2,
        report=1,
    )
    submitted = re.findall(r"Submitted job \d+ with external jobid '(\d+)'", out)
    assert len(submitted) == sum(ran.values()), "a job ran outside the batch system"
    for job_id in submitted:  # each ran as a detached job script and exited 0
        assert (proj / f".snakemake/local-cluster/{job_id}.exit").read_text().strip() == "0"
    assert_same_results(proj, built, RUNS)
