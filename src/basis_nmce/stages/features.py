"""Stage ``features``: prepared data -> ``features.npz`` (``train``, ``test`` float32).

Kind ``raw``: flattened, scaled inputs (optional PCA). Kind ``tcr``: features learnt by NMCE's
stage 1 (TCR, the ``nmce`` section's network, augmentation and ``tcr`` settings) on the train
split, so the spectral methods can run on them; vector data start from the ``raw`` features,
image networks from the images. The pipeline passes the ``nmce_tcr`` stage's model (``model``),
so stage 1 is trained once; without it the stage trains its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .. import data
from ..errors import ConfigError
from ..features import FEATURE_KINDS, raw_features
from ..io import save_npz, write_json

log = logging.getLogger(__name__)


def run_features(
    params: dict[str, Any], prepared: Path, out: Path, model: Path | None = None
) -> Path:
    kind = params["kind"]
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"run.features: unknown kind {kind!r}; kinds: {', '.join(FEATURE_KINDS)}")
    ds = data.load_prepared(prepared)
    opts = params["features"]
    extra: dict[str, Any] = {}
    if kind != "tcr" or params["nmce"]["network"] == "mlp":
        train, test = raw_features(
            ds.x_train,
            ds.x_test,
            scale=opts.get("scale", "standard"),
            pca=opts.get("pca"),
            seed=params["seed"],
        )
    if kind == "tcr":
        from .nmce import tcr_features

        vectors = {"train": train, "test": test} if params["nmce"]["network"] == "mlp" else None
        train, test, extra["tcr"] = tcr_features(params, ds, vectors, model)
    elif model is not None:
        raise ConfigError(f"features kind {kind!r} takes no --model (only kind tcr does)")
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
            **extra,
        },
    )
    log.info("features %s: train %s, test %s", kind, train.shape, test.shape)
    return out
