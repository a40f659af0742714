"""Stages ``fetch`` (the only one that may use the network) and ``prepare``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import data

log = logging.getLogger(__name__)


def run_fetch(dataset: str, params: dict[str, Any], out_dir: Path) -> Path:
    """Put ``dataset``'s raw files in ``out_dir`` and write ``out_dir/manifest.json``."""
    manifest = data.fetch(dataset, params["dataset"], out_dir, seed=params["seed"])
    log.info("fetched %s: %s", dataset, {k: v for k, v in manifest.items() if k != "files"})
    return Path(out_dir) / "manifest.json"


def run_prepare(dataset: str, params: dict[str, Any], raw_dir: Path, out: Path) -> Path:
    """Write ``out`` (npz: x_train, y_train, x_test, y_test) and its JSON sidecar."""
    ds = data.prepare(dataset, params["dataset"], raw_dir, seed=params["seed"])
    data.save_prepared(out, ds)
    log.info(
        "prepared %s: train %s, test %s, classes %s",
        dataset,
        ds.x_train.shape,
        ds.x_test.shape,
        ds.n_classes,
    )
    return Path(out)
