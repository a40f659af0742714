"""The tiny pipeline, built once per test session and shared by the end-to-end tests.

It is built the way a DVC user builds it: a git repository with the project's DVC set-up,
`dvc repro` (every stage a Snakemake target), the lock file committed and the outputs pushed to
a local DVC remote. Tests that change files work on a copy (:func:`copy_project`) or a clone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import DVC, git, git_dvc_init, make_project, manifest, run


@dataclass(frozen=True)
class Pipeline:
    proj: Path  # the built project (a git repository)
    repro: str  # what `dvc repro` printed
    status: dict  # `dvc status --json` right after it
    again: str  # what a second `dvc repro` printed
    remote: Path  # the local DVC remote holding every output
    files: dict[str, str]  # SHA-256 of every file under data/ and results/ after the build


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Pipeline:
    root = tmp_path_factory.mktemp("pipeline")
    proj = make_project(root)
    git_dvc_init(proj)
    proc = run([*DVC, "repro"], proj)
    repro = proc.stdout + proc.stderr
    status = json.loads(run([*DVC, "status", "--json"], proj).stdout)
    again = run([*DVC, "repro"], proj).stdout
    remote = root / "remote"
    run([*DVC, "remote", "add", "-d", "store", str(remote)], proj)
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "dvc repro")
    run([*DVC, "push"], proj)
    return Pipeline(proj, repro, status, again, remote, manifest(proj))


@pytest.fixture(scope="session")
def built(pipeline) -> Path:
    """The built project (shared: leave it as you found it, or work on a copy)."""
    return pipeline.proj


def copy_project(proj: Path, dest: Path) -> Path:
    """A copy with Snakemake's records (.snakemake/), to change without touching ``proj``."""
    shutil.copytree(proj, dest, symlinks=True)
    return dest
