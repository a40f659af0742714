"""Snakemake and DVC declare the same stages, inputs and outputs, and `dvc repro` really runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from basis_nmce.stages.params import STAGES

from .helpers import BIN, ROOT, SNAKEMAKE, make_project, run

pytestmark = pytest.mark.slow

DVC = [str(BIN / "dvc")]


def snakemake_jobs(proj: Path) -> list[dict]:
    """Every planned job of a from-scratch dry run: rule, inputs, outputs."""
    out = run([*SNAKEMAKE, "-n", "--forceall"], proj).stdout
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m or m.group(1) == "all":
            continue
        fields = dict(re.findall(r"^\s+(input|output): (.*)$", block, flags=re.M))
        split = lambda s: [p.strip() for p in s.split(",") if p.strip()]  # noqa: E731
        jobs.append(
            {
                "rule": m.group(1),
                "input": split(fields.get("input", "")),
                "output": split(fields.get("output", "")),
            }
        )
    return jobs


def dvc_stages(proj: Path) -> dict:
    return yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]


def _under(path: str, folders: list[str]) -> bool:
    return any(Path(path) == Path(f) or Path(f) in Path(path).parents for f in folders)


def _outs(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("consistency"))


def test_same_stages_inputs_and_outputs(proj):
    jobs = snakemake_jobs(proj)
    stages = dvc_stages(proj)
    assert {j["rule"] for j in jobs} == set(stages), "a rule without a DVC stage or vice versa"
    owner = {}
    for name, stage in stages.items():
        assert f"--until {name} --forcerun {name}" in stage["cmd"]
        for out in _outs(stage):
            owner[out] = name
    for job in jobs:
        stage = stages[job["rule"]]
        for out in job["output"]:
            assert _under(out, _outs(stage)), f"{job['rule']}: {out} is outside its DVC outs"
        for inp in job["input"]:
            producer = next((o for o in owner if _under(inp, [o])), None)
            if producer is None:  # a user's own file, tracked by the fetch rule itself
                continue
            assert producer in stage["deps"], f"{job['rule']} reads {inp}; DVC deps lack {producer}"
    # Every DVC dependency that is another stage's output is really read by that rule.
    for name, stage in stages.items():
        for dep in stage["deps"]:
            if dep in owner:
                assert any(
                    _under(i, [dep]) for j in jobs if j["rule"] == name for i in j["input"]
                ), f"DVC stage {name} depends on {dep}, but Snakemake's rule does not read it"


@pytest.mark.parametrize("config", ["repository", "tiny"])
def test_dvc_params_exist_in_config(proj, config):
    """DVC reads config.yaml as written (no schema defaults): every key it tracks is there."""
    path = ROOT / "config.yaml" if config == "repository" else proj / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    for name, stage in dvc_stages(proj).items():
        for entry in stage.get("params", []):
            for key in entry["config.yaml"]:
                node = cfg
                for part in key.split("."):
                    assert part in node, f"stage {name}: params key {key} not in config"
                    node = node[part]


def _git_dvc_init(proj: Path) -> None:
    run(["git", "init", "-q"], proj)
    run(["git", "config", "user.email", "ci@example.invalid"], proj)
    run(["git", "config", "user.name", "ci"], proj)
    shutil.copytree(ROOT / ".dvc", proj / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copy(ROOT / ".dvcignore", proj / ".dvcignore")


def test_dry_runs_list_the_same_stages(tmp_path):
    """`snakemake -n` and DVC list the same stages: for the repository's default config, and
    `dvc repro --dry` once the stages' inputs exist.

    In a fresh clone `dvc repro --dry` stops at the first stage whose input folder does not
    exist yet (DVC hashes dependencies even when dry: treeverse/dvc#9021, #9818), so its
    listing is compared after a Snakemake run of the tiny config, before any `dvc.lock`.
    """
    proj = make_project(tmp_path)
    _git_dvc_init(proj)
    tiny = (proj / "config.yaml").read_text()
    shutil.copy(ROOT / "config.yaml", proj / "config.yaml")
    smk = run([*SNAKEMAKE, "-n"], proj).stdout
    smk_rules = set(re.findall(r"^rule (\w+):", smk, flags=re.M)) - {"all"}
    listed = run([*DVC, "stage", "list", "--name-only"], proj).stdout.split()
    assert set(listed) == smk_rules == set(dvc_stages(proj))
    (proj / "config.yaml").write_text(tiny)
    run(SNAKEMAKE, proj)
    dvc = run([*DVC, "repro", "--dry"], proj).stdout
    dvc_run = re.findall(r"Running stage '(\w+)'", dvc)
    assert dvc_run == list(STAGES)  # STAGES is in pipeline order
    assert set(dvc_run) == smk_rules


def test_dvc_repro_runs_the_pipeline(tmp_path):
    proj = make_project(tmp_path)
    _git_dvc_init(proj)
    out = run([*DVC, "repro"], proj).stdout
    assert (proj / "results/report/metrics.json").exists()
    metrics = json.loads((proj / "results/report/metrics.json").read_text())
    assert metrics["moons/raw/analytic"]["acc"] == 1.0
    assert "Running stage 'report'" in out
    status = run([*DVC, "status"], proj).stdout
    assert "up to date" in status.lower() or "changed" not in status
    again = run([*DVC, "repro"], proj).stdout
    assert "Running stage" not in again
    shown = run([*DVC, "metrics", "show"], proj).stdout
    assert "moons" in shown
    # The training curves are DVC plots: one series per trained (dataset, features).
    plots = json.loads(run([*DVC, "plots", "show", "--json"], proj).stdout)
    curves = json.dumps(plots)
    assert "moons_raw_basis_train.csv" in curves and "blobs_raw_basis_train.csv" in curves
