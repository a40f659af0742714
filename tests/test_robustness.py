"""A failing job: Snakemake shows its log (the profile's show-failed-logs) and keeps none of its
outputs. (A SIGKILLed run and a concurrent second run: test_nmce_pipeline.py.)"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from .helpers import SNAKEMAKE, TINY_CONFIG, make_project, run

pytestmark = pytest.mark.slow


def test_a_failing_jobs_log_is_shown(tmp_path):
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["run"] = {"datasets": ["blobs"], "features": ["raw"], "methods": ["analytic"]}
    proj = make_project(tmp_path, cfg)
    data = dict(np.load(proj / "blobs.npz"))
    data["x_train"][5, 2] = np.nan  # prepare refuses NaN
    np.savez(proj / "blobs.npz", **data)
    proc = run([*SNAKEMAKE, "--until", "prepare"], proj, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    log = (proj / "data/prepared/blobs.log").read_text().strip()
    assert "blobs.npz" in log  # the stage names the file (and the fix)
    assert "Logfile data/prepared/blobs.log:" in out
    assert log.splitlines()[-1] in out, "the failing job's log is not in Snakemake's output"
    assert not (proj / "data/prepared/blobs.npz").exists()
    assert not (proj / "data/prepared/blobs.json").exists()
