"""Stage ``features``: prepared data -> ``features.npz`` (``train``, ``test`` float32).

Kind ``raw``: flattened, scaled inputs (optional PCA). Kind ``siamese``: the BASiS paper's
Siamese network (contrastive loss, Eq. 21; :mod:`basis_nmce.features.siamese`) trained on the
train split, on the images (grey / RGB CNN) or on the raw features (network mlp), with pairs
from the labels or label-free from nearest neighbours (``features.json`` says which). Kind
``tcr``: features learnt by NMCE's
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
    params: dict[str, Any],
    prepared: Path,
    out: Path,
    model: Path | None = None,
    checkpoint: Path | None = None,
) -> Path:
    kind = params["kind"]
    if kind not in FEATURE_KINDS:
        raise ConfigError(f"run.features: unknown kind {kind!r}; kinds: {', '.join(FEATURE_KINDS)}")
    ds = data.load_prepared(prepared)
    opts = params["features"]
    extra: dict[str, Any] = {}
    if kind == "siamese":
        train, test, extra["siamese"] = _siamese(params, ds, checkpoint)
    elif kind != "tcr" or params["nmce"]["network"] == "mlp":
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
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)  # the outputs exist: nothing to resume
    log.info("features %s: train %s, test %s", kind, train.shape, test.shape)
    return out


def _siamese(params: dict[str, Any], ds: data.Dataset, checkpoint: Path | None):
    """Kind siamese: the images for the CNNs, the raw features for network mlp."""
    import numpy as np
    import torch

    from ..features.siamese import resolve_network, siamese_features
    from ..nmce.inputs import images_to_tensor

    opts = params["features"]
    network = resolve_network(opts["network"], ds.is_image)
    if network == "mlp":
        raw = params["raw"]
        vectors = raw_features(
            ds.x_train,
            ds.x_test,
            scale=raw.get("scale", "standard"),
            pca=raw.get("pca"),
            seed=params["seed"],
        )
        inputs = tuple(torch.from_numpy(v) for v in vectors)
    else:
        if not ds.is_image:
            raise ConfigError(
                f"features.siamese.network {network!r} needs images, but data set {ds.name!r} "
                "holds vectors; use network mlp (or auto)"
            )
        inputs = images_to_tensor(ds.x_train), images_to_tensor(ds.x_test)
        if opts["network"] == "auto":  # grey or RGB by the channels
            network = resolve_network("auto", True, int(inputs[0].shape[1]))
    y = None if ds.y_train is None else np.asarray(ds.y_train)
    return siamese_features(
        inputs,  # type: ignore[arg-type]
        y,
        {**opts, "network": network},
        seed=int(params["seed"]),
        device=params["device"],
        checkpoint=checkpoint,
    )
