"""Snakemake and DVC declare the same stages, inputs and outputs (DVC really runs in test_dvc.py)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from basis_nmce.stages.params import OPT_IN_STAGES, STAGES

from .helpers import DVC, ROOT, SNAKEMAKE, dvc_stages_run, git_dvc_init, make_project, run

pytestmark = pytest.mark.slow


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


def test_dry_runs_list_the_same_stages(tmp_path):
    """`snakemake -n`, `dvc stage list` and `dvc repro --dry` list the same stages for the
    repository's default config, from nothing (the stage folders the set-up creates: DVC hashes
    a stage's input folders even when dry, treeverse/dvc#9021, #9818). The opt-in stages
    (baselines, comparison) are DVC stages whose Snakemake target has no job by default."""
    proj = make_project(tmp_path)
    git_dvc_init(proj)
    shutil.copy(ROOT / "config.yaml", proj / "config.yaml")
    smk = run([*SNAKEMAKE, "-n"], proj).stdout
    smk_rules = set(re.findall(r"^rule (\w+):", smk, flags=re.M)) - {"all"}
    listed = run([*DVC, "stage", "list", "--name-only"], proj).stdout.split()
    assert set(listed) == set(dvc_stages(proj)) == set(STAGES)
    assert smk_rules == set(STAGES) - set(OPT_IN_STAGES)
    run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "stage-folders"], proj)
    dvc = run([*DVC, "repro", "--dry"], proj).stdout
    assert dvc_stages_run(dvc) == list(STAGES)  # STAGES is in pipeline order
