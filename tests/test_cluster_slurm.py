"""The tiny pipeline on a real SLURM: `make test-cluster` starts a one-node cluster on this
machine (tests/cluster/slurm.sh) and runs this file. Through `--executor slurm` with the slurm
profile, then through the cluster-generic profile's sbatch template; both must compute what a
local run computes. Prints the SLURM job ids, checked with `scontrol show job`."""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from basis_nmce.stages.params import STAGES

from .helpers import BIN, TINY_CONFIG, assert_same_results, jobs_run, make_project, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("BASIS_NMCE_SLURM") != "1" or shutil.which("sbatch") is None,
        reason="needs the one-node SLURM that `make test-cluster` starts",
    ),
]

RUNS = [("blobs", "raw", m) for m in ("analytic", "basis_train", "nmce_tcr")]
GPU_RULES = {"analytic", "basis_train", "nmce_tcr"}
JOBS = Counter(
    fetch=1, prepare=1, features=1, analytic=1, basis_reference=1, basis_train=1, nmce_tcr=1,
    evaluate=3, report=1,
)  # fmt: skip
# The test node is small: every job asks for 1 GB (the rules ask for more, for real data).
SMALL = [f"{rule}:mem_mb=1000" for rule in STAGES]


def _config() -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["run"] = {"datasets": ["blobs"], "features": ["raw"], "methods": [m for *_, m in RUNS]}
    cfg["gpus"] = 1  # the training rules ask SLURM for the node's (fake) GPU: --gpus=1
    return cfg


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Path:
    proj = make_project(tmp_path_factory.mktemp("local"), _config())
    run([str(BIN / "snakemake"), "--cores", "2"], proj)
    return proj


def _slurm_job(job_id: str) -> str:
    """What `scontrol show job` says (slurm.sh keeps an ended job for MinJobAge = 3600 s)."""
    return run(["scontrol", "show", "job", job_id], Path.cwd()).stdout


def _check(proj: Path, local: Path, out: str, ids: list[str], how: str) -> dict[str, str]:
    assert jobs_run(out) == JOBS, out[-3000:]
    assert len(ids) == sum(JOBS.values()), f"{how}: a job ran outside SLURM"
    shown = {i: _slurm_job(i) for i in ids}
    states = {i: re.search(r"JobState=(\w+)", text).group(1) for i, text in shown.items()}
    print(f"\n{how}: SLURM job ids {' '.join(ids)}")
    print(f"{how}: states {sorted(set(states.values()))}")
    assert set(states.values()) == {"COMPLETED"}, states
    assert_same_results(proj, local, RUNS)
    return shown


def test_executor_slurm(local, tmp_path):
    proj = make_project(tmp_path, _config())
    proc = run(
        [
            str(BIN / "snakemake"),
            "--workflow-profile",
            "workflow/profiles/slurm",
            "--jobs",
            "4",
            "--slurm-init-seconds-before-status-checks",
            "5",
            "--seconds-between-status-checks",
            "2",
            "--set-resources",
            *SMALL,
        ],
        proj,
        timeout=1200,
    )
    out = proc.stdout + proc.stderr
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", out)
    shown = _check(proj, local, out, [i for i, _ in submitted], "executor slurm")
    # resources: gpu=1 (config gpus) became a GPU request, on the training rules only.
    for job_id, rule in submitted:
        asks_gpu = "gres/gpu=1" in shown[job_id] or "gres:gpu:1" in shown[job_id]
        assert asks_gpu == (rule in GPU_RULES), f"{rule}: {shown[job_id]}"


def test_cluster_generic_sbatch_template(local, tmp_path):
    proj = make_project(tmp_path, _config())
    proc = run(
        [
            str(BIN / "snakemake"),
            "--workflow-profile",
            "workflow/profiles/cluster-generic",
            "--jobs",
            "4",
            "--seconds-between-status-checks",
            "2",
            "--set-resources",
            *SMALL,
        ],
        proj,
        timeout=1200,
    )
    out = proc.stdout + proc.stderr
    ids = re.findall(r"with external jobid '(\d+)'", out)
    _check(proj, local, out, ids, "cluster-generic sbatch")
