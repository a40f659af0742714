"""The slice of the validated config that each stage reads.

Snakemake passes this mapping to the stage as JSON (so a change of any key it contains, and
only those, reruns the stage's jobs); the CLI computes the same mapping from ``--config``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from ..config import dataset_section

STAGES = (
    "fetch",
    "prepare",
    "features",
    "analytic",
    "basis_reference",
    "basis_train",
    "basis_joint",
    "spectral_train",
    "nmce_tcr",
    "nmce_cluster",
    "nmce_finetune",
    "evaluate",
    "compare",
    "report",
)
#: stages the default config.yaml leaves out (run.methods / run.compare; the basis-* presets)
OPT_IN_STAGES = ("spectral_train", "compare")
#: the learnt baselines of BASiS Table 1, each trained by stage spectral_train
BASELINE_METHODS = ("spectralnet", "specnet2", "diffusionnet")
# The basis keys the reference depends on; the rest only matter to training.
REFERENCE_KEYS = (
    "batch_size",
    "anchor_strategy",
    "anchors_per_cluster",
    "n_anchors",
    "batch_graph",
    "graph_size",
)
NMCE_METHODS = ("nmce_tcr", "nmce_cluster", "nmce_finetune")
# The basis keys a baseline shares with BASiS (the paper's comparison: same batch, iterations).
SPECTRAL_BASIS_KEYS = (
    "batch_size",
    "n_iter",
    "hidden",
    "batch_graph",
    "graph_size",
    "checkpoint_every",
)
# The nmce keys each NMCE stage depends on (a later stage also depends on its input model).
NMCE_LATER_KEYS = {
    "nmce_tcr": (
        "cluster",
        "finetune",
        "joint",
        "reset_feature_head",
        "restarts",
        "restart_workers",
        "cluster_head_init",
        "check_every",
        "d_tolerance",
    ),
    "nmce_cluster": ("finetune", "joint"),
    "nmce_finetune": (),
}
# What evaluating an NMCE method reads of the nmce section.
NMCE_EVALUATE_KEYS = ("n_clusters", "augmentation", "embed_batch")


def nmce_params(cfg: Mapping[str, Any], dataset: str, stage: str) -> dict[str, Any]:
    """The ``nmce`` keys ``stage`` (an NMCE stage, or ``features`` for kind tcr) depends on."""
    nmce = dataset_section(cfg, dataset, "nmce")
    drop = NMCE_LATER_KEYS["nmce_tcr" if stage == "features" else stage]
    return {k: v for k, v in nmce.items() if k not in drop}


def stage_params(
    cfg: Mapping[str, Any],
    stage: str,
    dataset: str | None = None,
    kind: str | None = None,
    method: str | None = None,
) -> dict[str, Any]:
    """Return the keys of ``cfg`` that ``stage`` (for ``dataset`` / feature ``kind`` /
    evaluated ``method``) depends on."""
    common = {"seed": cfg["seed"]}
    if stage in ("fetch", "prepare"):
        spec = dict(cfg["datasets"][dataset])
        for section in ("graph", "features", "basis", "nmce"):
            spec.pop(section, None)  # method settings never rerun fetch / prepare
        return {**common, "dataset": spec}
    if stage == "features":
        feats = dataset_section(cfg, dataset, "features")
        if kind == "tcr":  # TCR training; vector inputs start from the raw features
            return {
                **common,
                "kind": kind,
                "features": feats.get("raw", {}),
                "device": cfg["device"],
                "nmce": nmce_params(cfg, dataset, "features"),
            }
        if kind == "siamese":  # network mlp starts from the raw features
            return {
                **common,
                "kind": kind,
                "features": feats.get("siamese", {}),
                "raw": feats.get("raw", {}),
                "device": cfg["device"],
            }
        return {**common, "kind": kind, "features": feats.get(kind, {})}
    if stage == "analytic":
        return {**common, "device": cfg["device"], "graph": dataset_section(cfg, dataset, "graph")}
    if stage in ("basis_reference", "basis_train"):
        basis = dataset_section(cfg, dataset, "basis")
        if stage == "basis_reference":
            basis = {k: basis[k] for k in REFERENCE_KEYS}
        return {
            **common,
            "device": cfg["device"],
            "graph": dataset_section(cfg, dataset, "graph"),
            "basis": basis,
        }
    if stage == "basis_joint":
        from .joint import BASIS_KEYS

        basis = dataset_section(cfg, dataset, "basis")
        return {
            **common,
            "device": cfg["device"],
            "graph": dataset_section(cfg, dataset, "graph"),
            "basis": {k: basis[k] for k in BASIS_KEYS},
            "joint": dataset_section(cfg, dataset, "joint"),
            "raw": dataset_section(cfg, dataset, "features").get("raw", {}),
        }
    if stage == "spectral_train":
        basis = dataset_section(cfg, dataset, "basis")
        return {
            **common,
            "device": cfg["device"],
            "graph": dataset_section(cfg, dataset, "graph"),
            "basis": {k: basis[k] for k in SPECTRAL_BASIS_KEYS},
            # one baseline's own settings (all of them when no method is named)
            "baselines": {
                m: v
                for m, v in dataset_section(cfg, dataset, "baselines").items()
                if method not in BASELINE_METHODS or m == method
            },
        }
    if stage == "compare":
        ev = cfg["evaluate"]
        return {
            **common,
            "device": cfg["device"],
            "graph": dataset_section(cfg, dataset, "graph"),
            "basis": dataset_section(cfg, dataset, "basis"),
            "baselines": dataset_section(cfg, dataset, "baselines"),
            "compare": dict(cfg["compare"]),
            "evaluate": {k: v for k, v in ev.items() if k != "nmce"},
        }
    if stage in NMCE_METHODS:
        return {**common, "device": cfg["device"], "nmce": nmce_params(cfg, dataset, stage)}
    if stage == "evaluate":
        if method in NMCE_METHODS:
            nmce = dataset_section(cfg, dataset, "nmce")
            return {
                **common,
                "device": cfg["device"],
                "evaluate": {"nmce": dict(cfg["evaluate"]["nmce"])},
                "nmce": {k: nmce[k] for k in NMCE_EVALUATE_KEYS},
            }
        ev = {k: v for k, v in cfg["evaluate"].items() if k != "nmce"}
        return {**common, "evaluate": ev, "graph": dataset_section(cfg, dataset, "graph")}
    if stage == "report":
        return {**common, "report": dict(cfg["report"])}
    raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def stage_params_json(
    cfg: Mapping[str, Any],
    stage: str,
    dataset: str | None = None,
    kind: str | None = None,
    method: str | None = None,
) -> str:
    """:func:`stage_params` as compact, key-sorted JSON (stable for Snakemake's params trigger)."""
    return json.dumps(
        stage_params(cfg, stage, dataset, kind, method), sort_keys=True, separators=(",", ":")
    )


# Sections of a stage's params whose own keys are checked (their values are schema-filled).
CHECKED_SECTIONS = ("graph", "basis", "joint", "nmce", "evaluate", "report", "compare")


def missing_params(
    params: Mapping[str, Any], stage: str, kind: str | None = None, method: str | None = None
) -> list[str]:
    """The dotted keys that ``stage`` reads and ``params`` (e.g. ``--params`` JSON) lacks:
    every top-level key, and the keys of the sections in :data:`CHECKED_SECTIONS`, of the
    mapping :func:`stage_params` makes from the default config."""
    template = _template(stage, kind or "raw", method or "analytic")
    missing = [k for k in template if k not in params]
    for section in CHECKED_SECTIONS:
        if isinstance(template.get(section), dict) and isinstance(params.get(section), dict):
            missing += [f"{section}.{k}" for k in template[section] if k not in params[section]]
    return missing


@cache
def _template(stage: str, kind: str, method: str) -> dict[str, Any]:
    """What :func:`stage_params` makes of the default config (its keys are what we need)."""
    from ..config import validate_config

    cfg = validate_config({"datasets": {"d": {"source": "digits"}}, "run": {"datasets": ["d"]}})
    return stage_params(cfg, stage, "d", kind, method)
