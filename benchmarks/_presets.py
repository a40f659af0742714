"""Shared by the preset benchmarks: config.yaml deep-merged with a preset, as Snakemake does
with ``--configfile``, then one data set prepared into a folder (stage functions, no
Snakemake)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from basis_nmce.config import validate_config
from basis_nmce.stages.data import run_fetch, run_prepare
from basis_nmce.stages.params import stage_params

ROOT = Path(__file__).resolve().parents[1]


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def preset(name: str) -> dict[str, Any]:
    """config.yaml with ``configs/<name>.yaml`` merged over it, validated."""
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    over = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    return validate_config(merge(base, over))


def prepared(cfg: dict[str, Any], dataset: str, folder: Path) -> Path:
    out = folder / "prepared" / f"{dataset}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    run_fetch(dataset, stage_params(cfg, "fetch", dataset), folder / "raw")  # local files only
    run_prepare(dataset, stage_params(cfg, "prepare", dataset), folder / "raw", out)
    return out
