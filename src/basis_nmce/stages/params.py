"""The slice of the validated config that each stage reads.

Snakemake passes this mapping to the stage as JSON (so a change of any key it contains, and
only those, reruns the stage's jobs); the CLI computes the same mapping from ``--config``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..config import dataset_section

STAGES = (
    "fetch",
    "prepare",
    "features",
    "analytic",
    "basis_reference",
    "basis_train",
    "evaluate",
    "report",
)
# The basis keys the reference depends on; the rest only matter to training.
REFERENCE_KEYS = ("batch_size", "anchor_strategy", "anchors_per_cluster", "n_anchors")


def stage_params(
    cfg: Mapping[str, Any], stage: str, dataset: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """Return the keys of ``cfg`` that ``stage`` (for ``dataset`` / feature ``kind``) depends on."""
    common = {"seed": cfg["seed"]}
    if stage in ("fetch", "prepare"):
        spec = dict(cfg["datasets"][dataset])
        spec.pop("graph", None)
        spec.pop("features", None)
        return {**common, "dataset": spec}
    if stage == "features":
        feats = dataset_section(cfg, dataset, "features")
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
    if stage == "evaluate":
        return {
            **common,
            "evaluate": dict(cfg["evaluate"]),
            "graph": dataset_section(cfg, dataset, "graph"),
        }
    if stage == "report":
        return {**common, "report": dict(cfg["report"])}
    raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")


def stage_params_json(
    cfg: Mapping[str, Any], stage: str, dataset: str | None = None, kind: str | None = None
) -> str:
    """:func:`stage_params` as compact, key-sorted JSON (stable for Snakemake's params trigger)."""
    return json.dumps(
        stage_params(cfg, stage, dataset, kind), sort_keys=True, separators=(",", ":")
    )
