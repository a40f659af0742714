"""Stage ``features``: prepared data -> ``features.npz`` (``train``, ``test`` float32)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import data
from ..errors import ConfigError
from ..features import FEATURE_KINDS, raw_features
from ..io import save_npz, write_json

log = logging.getLogger(__name__)


def run_features(params: dict[str, Any], prepared: Path, out: Path) -> Path:
    kind = params["kind"]
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"run.features: unknown kind {kind!r}; kinds: {', '.join(FEATURE_KINDS)}")
    ds = data.load_prepared(prepared)
    opts = params["features"]
    train, test = raw_features(
        ds.x_train,
        ds.x_test,
        scale=opts.get("scale", "standard"),
        pca=opts.get("pca"),
        seed=params["seed"],
    )
    out = Path(out)
    save_npz(out, train=train, test=test)
    write_json(
        out.with_suffix(".json"),
        {
            "kind": kind,
            "options": opts,
            "dim": train.shape[1],
            "n_train": len(train),
            "n_test": len(test),
        },
    )
    log.info("features %s: train %s, test %s", kind, train.shape, test.shape)
    return out
