"""Partial reruns under Snakemake, counted by the jobs that really ran, each on a copy of the
shared built project (with Snakemake's records, so params changes are seen)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from .helpers import SNAKEMAKE, jobs_run, run
from .pipeline_fixtures import copy_project

pytestmark = pytest.mark.slow


@pytest.fixture
def proj(built, tmp_path) -> Path:
    return copy_project(built, tmp_path / "proj")


def _run(proj: Path, *args: str) -> Counter:
    proc = run([*SNAKEMAKE, *args], proj)
    return jobs_run(proc.stdout + proc.stderr)


def _nothing_left(proj: Path) -> bool:
    proc = run([*SNAKEMAKE, "-n"], proj)
    return "Nothing to be done" in proc.stdout + proc.stderr


def test_one_output(proj):
    target = "results/evaluate/moons/raw/analytic/metrics.json"
    (proj / target).unlink()
    assert _run(proj, target) == Counter(evaluate=1)
    assert _nothing_left(proj)


def test_forcerun_reruns_the_rule_and_what_reads_its_outputs(proj):
    # analytic's embeddings are the reference of the spectral methods' evaluations (analytic,
    # basis_train and the three baselines on 2 data sets; not NMCE's).
    assert _run(proj, "--forcerun", "analytic") == Counter(analytic=2, evaluate=10, report=1)
    assert _nothing_left(proj)


def test_until_stops_after_the_rule(proj):
    """What each DVC stage runs: one rule's jobs, nothing downstream."""
    assert _run(proj, "--until", "analytic", "--forcerun", "analytic") == Counter(analytic=2)
    assert _run(proj, "--until", "features", "--forcerun", "features") == Counter(features=2)


def test_a_changed_key_reruns_the_stages_that_read_it(proj):
    assert _run(proj, "--config", "report={max_points: 100}") == Counter(report=1)
    # kmeans_n_init is read by the evaluations of the spectral methods (2 data sets x analytic,
    # basis_train and the three baselines) and by the comparison (it scores as evaluate does),
    # not by the NMCE ones; the report reads their new metrics.
    ran = _run(proj, "--config", "report={max_points: 100}", "evaluate={kmeans_n_init: 3}")
    assert ran == Counter(evaluate=10, compare=2, report=1)
    assert not _nothing_left(proj)  # back to config.yaml's values: those jobs are stale again
