"""Helpers for the CLI and end-to-end tests: tiny data, a throw-away project copy, subprocesses."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    e["OMP_WAIT_POLICY"] = "PASSIVE"
    e.pop("SNAKEMAKE_PROFILE", None)
    return e


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: int = 600
) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def write_blobs_npz(
    path: Path, n: int = 360, dim: int = 6, classes: int = 3, seed: int = 0
) -> Path:
    """Well-separated Gaussian blobs as a user's own .npz (x_train, y_train only)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(classes, dim))
    y = np.repeat(np.arange(classes), n // classes)
    x = centres[y] + rng.normal(size=(len(y), dim))
    np.savez(path, x_train=x.astype(np.float32), y_train=y.astype(np.int64))
    return path


TINY_CONFIG = {
    "seed": 0,
    "threads": 1,
    "run": {
        "datasets": ["blobs", "moons"],
        "features": ["raw"],
        "methods": [
            "analytic",
            "basis_train",
            "spectralnet",
            "specnet2",
            "diffusionnet",
            "nmce_tcr",
            "nmce_cluster",
            "nmce_finetune",
        ],
        "compare": True,
        "joint": ["blobs"],
    },
    "datasets": {
        "blobs": {"source": "npz", "path": "blobs.npz", "graph": {"n_neighbors": 10}},
        "moons": {
            "source": "moons",
            "options": {"n_samples": 900, "noise": 0.05},
            "test_fraction": 0.3,
            "graph": {"n_neighbors": 15, "n_components": 1, "drop_first": True},
            "nmce": {"joint": True, "finetune": {"steps": 6}},
        },
    },
    "device": "cpu",
    "features": {"raw": {"scale": "standard", "pca": None}},
    "graph": {"sigma_neighbor": 7},
    "basis": {
        "batch_size": 128,
        "n_iter": 60,
        "lr": 0.001,
        "hidden": [32, 32],
        "checkpoint_every": 20,
    },
    # NMCE: a tiny MLP, a few steps per stage (seconds); moons trains jointly (the spiral's way).
    "nmce": {
        "network": "mlp",
        "network_options": {"width": 16, "depth": 2},
        "feature_dim": 4,
        "augmentation": {"kind": "noise", "options": {"std": 0.05}},
        "batch_size": 64,
        "checkpoint_every": 2,
        "log_every": 2,
        "tcr": {"steps": 6},
        "cluster": {"steps": 4},
        "finetune": {"steps": 4},
    },
    # The baselines and the comparison on BASiS's tiny settings: 2 seeds, a 2-point sweep.
    "baselines": {"specnet2": {"rotation": "train"}},
    "compare": {"seeds": 2, "neighbors": [8, 12], "sweep_seeds": 1},
    # Algorithm 2: 40 feature iterations, a spectral step every 10th (seconds)
    "joint": {
        "n_iter": 40,
        "eval_every": 2,
        "hidden": [16],
        "batch_pairs": 32,
        "snapshots": [10, 40],
        "checkpoint_every": 20,
    },
    "evaluate": {"linear_probe_epochs": 50},
    "report": {"max_points": 200},
}


def make_project(tmp: Path, config: dict | None = None) -> Path:
    """A copy of the pipeline files (Snakefile, workflow/, profiles, envs/, dvc.yaml) with a
    tiny config."""
    proj = tmp / "proj"
    proj.mkdir()
    for name in ("Snakefile", "dvc.yaml"):
        shutil.copy(ROOT / name, proj / name)
    shutil.copytree(ROOT / "workflow", proj / "workflow", symlinks=False)
    shutil.copytree(ROOT / "envs", proj / "envs")
    os.symlink(os.readlink(ROOT / "profiles"), proj / "profiles")  # profiles -> workflow/profiles
    # dvc.yaml names the stage's code as dependencies; link the package source in.
    (proj / "src").mkdir()
    os.symlink(ROOT / "src" / "basis_nmce", proj / "src" / "basis_nmce")
    write_blobs_npz(proj / "blobs.npz")
    (proj / "config.yaml").write_text(yaml.safe_dump(config or TINY_CONFIG, sort_keys=False))
    return proj


# The default profile (profiles/default) is found by Snakemake itself, as in a user's clone.
SNAKEMAKE = [str(BIN / "snakemake"), "--cores", "2"]


def kill_snakemake_once(
    target: str,
    proj: Path,
    checkpoint: Path,
    timeout: float = 300,
    while_running: Callable[[], None] | None = None,
) -> None:
    """Run ``snakemake --until target``, SIGKILL it and its jobs (a dead node) as soon as
    ``checkpoint`` exists, then unlock the working directory as a user would.
    ``while_running`` is called just before the kill, the run still going."""
    import signal
    import time

    proc = subprocess.Popen(
        [*SNAKEMAKE, "--until", target],
        cwd=proj,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "training finished before it could be killed"
    assert checkpoint.exists(), "no checkpoint was written"
    if while_running is not None:
        while_running()
        assert proc.poll() is None, "training finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run([*SNAKEMAKE, "--unlock"], proj)


DVC = [str(BIN / "dvc")]


def jobs_run(output: str) -> Counter:
    """Jobs a Snakemake run really executed, per rule (from its "Finished jobid" lines)."""
    rules = re.findall(r"^Finished jobid: \d+ \(Rule: (\w+)\)", output, flags=re.M)
    return Counter(r for r in rules if r != "all")


def dvc_stages_run(output: str) -> list[str]:
    """Stages a `dvc repro` ran, in order."""
    return re.findall(r"^Running stage '(\w+)'", output, flags=re.M)


def git(proj: Path, *args: str) -> subprocess.CompletedProcess:
    return run(["git", *args], proj)


def git_dvc_init(proj: Path) -> None:
    """Make ``proj`` a git repository with the project's DVC set-up, everything committed."""
    git(proj, "init", "-q", "-b", "main")
    git(proj, "config", "user.email", "ci@example.invalid")
    git(proj, "config", "user.name", "ci")
    shutil.copytree(ROOT / ".dvc", proj / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copy(ROOT / ".dvcignore", proj / ".dvcignore")
    shutil.copy(ROOT / ".gitignore", proj / ".gitignore")
    git(proj, "add", "-A")
    git(proj, "commit", "-q", "-m", "tiny project")


def manifest(proj: Path, folders: tuple[str, ...] = ("data", "results")) -> dict[str, str]:
    """SHA-256 of every file under ``folders`` (Snakemake's directory markers left out)."""
    out = {}
    for folder in folders:
        for p in sorted((proj / folder).rglob("*")):
            if p.is_file() and p.name != ".snakemake_timestamp":
                out[str(p.relative_to(proj))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# Scores compared between two runs of the same config (timings and paths left out).
SCORES = ("grassmann", "grassmann_matched", "orthogonality", "nmi", "acc", "ari", "linear_acc")


def assert_same_results(proj: Path, reference: Path, runs: list[tuple[str, str, str]]) -> None:
    """``proj`` computed what ``reference`` did for each (dataset, features, method): the same
    features, embeddings (bit for bit: same seed, same machine, same threads) and scores."""
    for dataset, kind, method in runs:
        paths = [
            f"results/features/{dataset}/{kind}/features.npz",
            f"results/{method}/{dataset}/{kind}/embedding.npz",
        ]
        for rel in paths:
            with np.load(proj / rel) as a, np.load(reference / rel) as b:
                assert sorted(a.files) == sorted(b.files), rel
                for key in a.files:
                    np.testing.assert_array_equal(a[key], b[key], err_msg=f"{rel}: {key}")
        rel = f"results/evaluate/{dataset}/{kind}/{method}/metrics.json"
        got, want = (json.loads((p / rel).read_text()) for p in (proj, reference))
        assert {k: got.get(k) for k in SCORES} == {k: want.get(k) for k in SCORES}, rel
