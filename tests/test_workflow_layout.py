"""The workflow as users find it: a root Snakefile that a bare `snakemake` finds with its default
profile; every rule with log, benchmark, threads, resources and a conda environment; lint and
formatting clean; the conda environment pinned like the pip set-up; the profiles consistent."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import yaml

from basis_nmce.stages.params import OPT_IN_STAGES, STAGES

from .helpers import BIN, ROOT, TINY_CONFIG, make_project, run

pytestmark = pytest.mark.slow

RULE_FILES = sorted((ROOT / "workflow/rules").glob("*.smk"))
# Rules that train a network (and analytic, which solves on the device): they ask for GPUs.
GPU_RULES = {
    "analytic",
    "basis_train",
    "basis_joint",
    "spectral_train",
    "nmce_tcr",
    "nmce_cluster",
    "nmce_finetune",
    "compare",
}
PROFILES = ROOT / "workflow/profiles"


def _rules() -> dict[str, str]:
    """Each rule's source text, by name."""
    rules = {}
    for path in RULE_FILES:
        parts = re.split(r"^rule (\w+):\n", path.read_text(), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            rules[name] = re.split(r"^\S", body, flags=re.M)[0]  # up to the next top-level line
    return rules


def _section(body: str, directive: str) -> list[str]:
    """The lines of one directive of a rule (snakefmt layout: 4 spaces, items at 8)."""
    m = re.search(rf"^    {directive}:\n((?:        .*\n|\n)*)", body, flags=re.M)
    return m.group(1).splitlines() if m else []


@pytest.fixture(scope="module")
def default_project(tmp_path_factory) -> Path:
    """A copy of the repository's pipeline with its own config.yaml (nothing run)."""
    proj = make_project(tmp_path_factory.mktemp("layout"))
    shutil.copy(ROOT / "config.yaml", proj / "config.yaml")
    return proj


def test_bare_snakemake_at_the_root_plans_the_default_run_with_the_default_profile(
    default_project,
):
    assert (ROOT / "Snakefile").is_file()
    assert (ROOT / "profiles/default/config.yaml").samefile(PROFILES / "default/config.yaml")
    bare = run([str(BIN / "snakemake"), "-n"], default_project)
    assert "Using workflow specific profile profiles/default" in bare.stderr
    planned = set(re.findall(r"^rule (\w+):", bare.stdout, flags=re.M)) - {"all"}
    # config.yaml's run needs every stage but the opt-in baselines and comparison (presets)
    assert planned == set(STAGES) - set(OPT_IN_STAGES)
    # The profile's settings are in force: it prints each job's shell command ...
    assert bare.stdout.count("Shell command: basis-nmce ") == bare.stdout.count("\nrule ") - 1
    # ... which Snakemake does not do without it.
    plain = run([str(BIN / "snakemake"), "-n", "--workflow-profile", "none"], default_project)
    assert "Shell command: basis-nmce" not in plain.stdout
    assert "Using workflow specific profile" not in plain.stderr


def test_snakemake_lint_and_snakefmt_are_clean(default_project):
    lint = run([str(BIN / "snakemake"), "--lint"], default_project, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Lints for" not in lint.stdout + lint.stderr
    fmt = run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], ROOT, check=False)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_every_rule_declares_log_benchmark_threads_resources_and_conda():
    rules = _rules()
    assert set(rules) == set(STAGES)
    for name, body in rules.items():
        for directive in ("log", "benchmark", "threads", "resources", "conda"):
            assert re.search(rf"^    {directive}:", body, flags=re.M), f"{name}: no {directive}"
        resources = "\n".join(_section(body, "resources"))
        assert "mem_mb=" in resources and "runtime=" in resources, name
        assert ('gpu=config["gpus"]' in resources) == (name in GPU_RULES), name
        assert _section(body, "conda") == ["        ENV"], name


def test_resources_reach_the_jobs(tmp_path):
    """A dry run shows each job's mem_mb and runtime, and gpu from config `gpus`."""
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["gpus"] = 1
    proj = make_project(tmp_path, cfg)
    out = run([str(BIN / "snakemake"), "-n", "--forceall"], proj).stdout
    for block in re.split(r"\n(?=rule \w+:)", out):
        m = re.match(r"rule (\w+):", block)
        if not m or m.group(1) == "all":
            continue
        res = re.search(r"^    resources: (.*)$", block, flags=re.M).group(1)
        assert re.search(r"\bmem_mb=\d+", res) and re.search(r"\bruntime=\d+", res), block
        assert ("gpu=1" in res) == (m.group(1) in GPU_RULES), block


def test_conda_environment_pins_the_pip_versions():
    """envs/basis-nmce.yaml (for --software-deployment-method conda) parses and pins what
    envs/constraints.txt pins, so both set-ups run the same versions."""
    env = yaml.safe_load((ROOT / "envs/basis-nmce.yaml").read_text())
    assert env["channels"][0] == "conda-forge"
    pip = dict(
        line.split("==")
        for line in (ROOT / "envs/constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    pip = {k.lower(): v for k, v in pip.items()}
    conda_to_pip = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
    pinned = {}
    for dep in env["dependencies"]:
        name, op, version = re.match(r"([\w.-]+)(>=|<=|==|=)?(.*)", str(dep)).groups()
        if name == "python":
            assert version == "3.11"
        elif op == "=":  # an exact pin
            pinned[conda_to_pip.get(name, name)] = version
    runtime = {"torch", "torchvision", "numpy", "scipy", "scikit-learn", "pandas", "matplotlib"}
    assert runtime <= set(pinned)
    for name, version in pinned.items():
        assert pip[name] == version, f"{name}: conda {version}, pip {pip[name]}"
    deploy = ROOT / "envs/basis-nmce.post-deploy.sh"
    assert deploy.stat().st_mode & 0o111, "the post-deploy script is not executable"
    assert "pip install --no-deps" in deploy.read_text()
    # The rules' ENV points at that file (relative to workflow/rules/).
    common = (ROOT / "workflow/rules/common.smk").read_text()
    env_path = re.search(r'^ENV = "([^"]+)"', common, flags=re.M).group(1)
    assert (ROOT / "workflow/rules" / env_path).resolve() == (ROOT / "envs/basis-nmce.yaml")


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def test_profiles_share_the_rerun_triggers_and_the_cluster_settings_are_there():
    default = _profile("default")
    assert "mtime" not in default["rerun-triggers"]
    for name in ("slurm", "cluster-generic", "dvc"):
        assert _profile(name)["rerun-triggers"] == default["rerun-triggers"], name
    slurm = _profile("slurm")
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-status-command"] == "squeue"  # no accounting: sacct would hang
    text = (PROFILES / "slurm/config.yaml").read_text()
    assert "slurm_partition" in text and "slurm_account" in text and "PLACEHOLDER" in text
    generic = _profile("cluster-generic")
    assert generic["executor"] == "cluster-generic"
    assert generic["cluster-generic-submit-cmd"].split("&&")[-1].split()[0] == "sbatch"
    assert "qsub" in (PROFILES / "cluster-generic/config.yaml").read_text()


def test_dvc_profile_considers_every_input_of_every_rule_ancient():
    """Every input item of every rule (by name, or its index when unnamed) is in the dvc
    profile's consider-ancient list, so a DVC stage never reruns a job upstream of its rule."""
    listed = {}
    for entry in _profile("dvc")["consider-ancient"]:
        rule, items = entry.split("=")
        listed[rule] = set(items.split(","))
    declared = {}
    for name, body in _rules().items():
        items = [line[8:] for line in _section(body, "input") if re.match(r" {8}[\w(]", line)]
        named = {m.group(1) for item in items if (m := re.match(r"(\w+)=", item))}
        positional = [item for item in items if not re.match(r"\w+=", item)]
        declared[name] = named | {str(i) for i in range(len(positional))}
    assert listed == declared
    cmds = [s["cmd"] for s in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values()]
    assert all(c.startswith("snakemake --workflow-profile workflow/profiles/dvc ") for c in cmds)
