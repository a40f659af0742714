# Config validation (the library's schema, same as the CLI) and path helpers.
import json
from pathlib import Path

from basis_nmce.config import validate_config
from basis_nmce.stages.params import stage_params_json

_validated = validate_config(config)
config.clear()
config.update(_validated)

DATA = config["data_dir"]
RES = config["results_dir"]
DATASETS = config["run"]["datasets"]
KINDS = config["run"]["features"]
METHODS = config["run"]["methods"]
USER_SOURCES = ("npz", "npy", "csv")

REPORT = f"{RES}/report/report.md"


wildcard_constraints:
    dataset="[A-Za-z0-9_.-]+",
    kind="[a-z0-9_]+",
    method="[a-z0-9_]+",


def params_for(stage):
    """The stage's slice of the config, as JSON: Snakemake reruns a job when it changes."""
    return lambda w: stage_params_json(
        config, stage, getattr(w, "dataset", None), getattr(w, "kind", None)
    )


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


def method_embedding(w):
    return f"{RES}/{w.method}/{w.dataset}/{w.kind}/embedding.npz"


def training_logs():
    """What the report draws besides the metrics: BASiS training curves, anchors, value grid."""
    if "basis_train" not in METHODS:
        return []
    return expand(
        f"{RES}/basis_train/{{dataset}}/{{kind}}/{{name}}",
        dataset=DATASETS,
        kind=KINDS,
        name=["log.csv", "anchors.npz", "grid.npz"],
    )


def all_metrics():
    return expand(
        f"{RES}/evaluate/{{dataset}}/{{kind}}/{{method}}/metrics.json",
        dataset=DATASETS,
        kind=KINDS,
        method=METHODS,
    )
