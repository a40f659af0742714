# Config validation (the library's schema, same as the CLI) and path helpers.
import json
import os
import shlex
from pathlib import Path

from basis_nmce.config import validate_config
from basis_nmce.config import dataset_section
from basis_nmce.stages.params import BASELINE_METHODS, NMCE_METHODS, stage_params_json

_validated = validate_config(config)
config.clear()
config.update(_validated)

DATA = config["data_dir"]
RES = config["results_dir"]
DATASETS = config["run"]["datasets"]
KINDS = config["run"]["features"]
METHODS = config["run"]["methods"]
JOINT = config["run"]["joint"]
JOINT_VARIANTS = ("tg", "no_tg")
USER_SOURCES = ("npz", "npy", "csv")

REPORT = f"{RES}/report/report.md"
# The environment every rule runs in under `--software-deployment-method conda` (a path
# relative to the rule files, workflow/rules/). Without it the rules use the `basis-nmce`
# on PATH (the README's pip set-up).
ENV = "../../envs/basis-nmce.yaml"


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    kind="[a-z0-9_]+",
    variant="tg|no_tg",
    method="[a-z0-9_]+",


def params_for(stage):
    """The stage's slice of the config, as JSON: Snakemake reruns a job when it changes."""
    return lambda w: stage_params_json(
        config,
        stage,
        getattr(w, "dataset", None),
        getattr(w, "kind", None),
        getattr(w, "method", None),
    )


def _arg(flag, paths):
    """`--flag path` for an optional input (empty when the input function gave none)."""
    paths = [paths] if isinstance(paths, str) else paths
    return " ".join(f"{flag} {shlex.quote(str(p))}" for p in paths)


def user_files(w):
    """The user's own data file(s), tracked by modification time like any source file."""
    spec = config["datasets"][w.dataset]
    if spec["source"] not in USER_SOURCES:
        return []
    return [p for p in (spec.get("path"), spec.get("labels_path")) if p]


def user_files_stamp(w):
    """Size and modification time of the user's files: the params trigger reruns fetch when
    they change (the profile's rerun triggers leave mtime out, see its config)."""
    import os

    return ";".join(
        (
            f"{p}:{os.stat(p).st_size}:{os.stat(p).st_mtime_ns}"
            if os.path.exists(p)
            else f"{p}:missing"
        )
        for p in user_files(w)
    )


def features_inputs(w):
    """Kind tcr embeds with the nmce_tcr model of the same data set (trained on raw inputs)."""
    inputs = {"prepared": f"{DATA}/prepared/{w.dataset}.npz"}
    if w.kind == "tcr":
        inputs["model"] = f"{RES}/nmce_tcr/{w.dataset}/raw/model.pt"
    return inputs


def method_embedding(w):
    return f"{RES}/{w.method}/{w.dataset}/{w.kind}/embedding.npz"


def nmce_setting(w, key):
    return dataset_section(config, w.dataset, "nmce")[key]


def nmce_features(w):
    """NMCE reads the kind's features for vector data (network mlp), the images otherwise."""
    if nmce_setting(w, "network") != "mlp":
        return []
    return [f"{RES}/features/{w.dataset}/{w.kind}/features.npz"]


def nmce_finetune_model(w):
    """Stage 2's model, unless nmce.joint trains the full objective from scratch."""
    if nmce_setting(w, "joint"):
        return []
    return [f"{RES}/nmce_cluster/{w.dataset}/{w.kind}/model.pt"]


def evaluate_inputs(w):
    """An NMCE method is scored with its model (augmented copies); the others against the
    exact eigenvectors (analytic)."""
    inputs = {
        "embedding": method_embedding(w),
        "prepared": f"{DATA}/prepared/{w.dataset}.npz",
        "features": f"{RES}/features/{w.dataset}/{w.kind}/features.npz",
    }
    if w.method in NMCE_METHODS:
        inputs["model"] = f"{RES}/{w.method}/{w.dataset}/{w.kind}/model.pt"
        inputs["features"] = nmce_features(w)
    else:
        inputs["reference"] = f"{RES}/analytic/{w.dataset}/{w.kind}/embedding.npz"
    return inputs


def runs():
    """(dataset, kind, method) of every configured run. NMCE methods skip kind tcr: that kind
    is NMCE's own stage-1 output, made for the spectral methods (the unsupervised chain).
    """
    return [
        (d, k, m)
        for d in DATASETS
        for k in KINDS
        for m in METHODS
        if not (k == "tcr" and m in NMCE_METHODS)
    ]


def training_logs():
    """What the report draws besides the metrics: training curves of every trained method
    (BASiS also its anchors and value grid)."""
    files = []
    for d, k, m in runs():
        if m == "basis_train":
            files += [
                f"{RES}/basis_train/{d}/{k}/{n}"
                for n in ("log.csv", "anchors.npz", "grid.npz")
            ]
        elif m in BASELINE_METHODS:
            files.append(f"{RES}/{m}/{d}/{k}/log.csv")
        elif m in NMCE_METHODS:
            files.append(f"{RES}/{m}/{d}/{k}/log.csv")
    return files


def all_metrics():
    return [f"{RES}/evaluate/{d}/{k}/{m}/metrics.json" for d, k, m in runs()]


def all_compares():
    """The compare stage's tables of every configured (dataset, kind), in the report when
    run.compare is true."""
    if not config["run"]["compare"]:
        return []
    return [f"{RES}/compare/{d}/{k}/compare.json" for d in DATASETS for k in KINDS]


def joint_outputs():
    """What the report draws of Algorithm 2 (Figs. 6, 8): every run.joint data set, both
    variants (with T_G and without)."""
    return [
        f"{RES}/basis_joint/{d}/{v}/embedding.json"
        for d in JOINT
        for v in JOINT_VARIANTS
    ]


def joint_files():
    """The logs and snapshots beside each joint_outputs() file."""
    return [
        f"{RES}/basis_joint/{d}/{v}/{n}"
        for d in JOINT
        for v in JOINT_VARIANTS
        for n in ("log.csv", "snapshots.npz")
    ]
