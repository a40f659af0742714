"""Stages ``nmce_tcr``, ``nmce_cluster``, ``nmce_finetune`` and the NMCE scores (NMCE Sec. 3-4).

Each stage is one call of the :mod:`basis_nmce.nmce` library on the train split:

* ``nmce_tcr`` - stage 1, Total Coding Rate (Eq. 5) from a fresh network;
* ``nmce_cluster`` - stage 2 from stage 1's model: backbone frozen, fresh heads, NMCE (Eq. 4);
* ``nmce_finetune`` - stage 3 from stage 2's model, every parameter (0 steps keeps stage 2's
  model); with ``nmce.joint`` it trains the full objective from a fresh network instead and
  reads no earlier stage (the double spiral, Sec. 4.1).

Every stage writes, in its output folder: ``embedding.npz`` (``train`` / ``test`` features, and
``clusters_train`` / ``clusters_test`` from the cluster head after stages 2-3) with
``embedding.json``, ``model.pt`` + ``model.json`` (:func:`~basis_nmce.nmce.load_network`) and
``log.csv`` (the logged training steps). So each stage is also a method the ``evaluate`` stage
can score (:func:`run_evaluate_nmce`). Inputs: vector data (network ``mlp``) are the
``features`` of the rule's kind; image networks take the prepared images scaled to [0, 1].

Restarts: ``nmce.restarts`` > 1 trains the stage that starts the cluster head (``nmce_cluster``,
or ``nmce_finetune`` with ``joint``) that many times with seeds ``seed, seed + 1, ...``, on up
to the rule's threads in parallel processes, and keeps the restart whose hard assignments break
the augmentation constraint least (:mod:`basis_nmce.nmce.restarts`; labels are never read).
Other stages train once.

Checkpoints: with ``checkpoint`` set the library writes its full state every
``checkpoint_every`` steps and a rerun resumes it. A JSON sidecar records what the checkpoint
was started from (the stage's settings, the input model's hash, the data's shape); a checkpoint
from other settings or another input model is discarded with a warning, never resumed. The
checkpoint is removed once the stage's outputs exist.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data
from ..errors import ConfigError
from ..io import atomic_path, load_npz, read_json, save_npz, sha256_file, write_json
from ..models import resolve_device
from ..nmce import (
    TrainConfig,
    embed,
    embed_and_predict,
    load_network,
    train_tcr,
)
from ..nmce.estimator import NMCE
from ..nmce.inputs import (
    augmenter_from,
    network_inputs,
    new_network,
    resolve_n_clusters,
)
from ..nmce.restarts import restart_checkpoint

log = logging.getLogger(__name__)

STAGE_KEY = {"nmce_tcr": "tcr", "nmce_cluster": "cluster", "nmce_finetune": "finetune"}
LOG_FIELDS = (
    "step",
    "loss",
    "lr",
    "effective_rank",
    "R",
    "Rc",
    "delta_R",
    "similarity",
    "marginal_entropy",
    "max_cluster_fraction",
    "D",
)


# --------------------------------------------------------------------------- settings


def train_config(nmce: dict[str, Any], stage: str, seed: int, device: str) -> TrainConfig:
    """The library's :class:`TrainConfig` for ``stage`` (tcr, cluster, finetune) of ``nmce``."""
    n_clusters = int(nmce.get("n_clusters") or 2)
    return NMCE.from_config(nmce, n_clusters, seed, device).train_config(stage)


def write_log(path: Path, history: list[dict[str, Any]]) -> None:
    """The logged steps as CSV (``max_cluster_fraction`` from the cluster fractions)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
        w.writeheader()
        for rec in history:
            row = dict(rec)
            if "cluster_fractions" in rec:
                row["max_cluster_fraction"] = max(rec["cluster_fractions"])
            w.writerow(row)


def _checkpoint_guard(checkpoint: Path | None, key: str) -> None:
    """Discard a checkpoint started from other settings or inputs; record what this one is."""
    if checkpoint is None:
        return
    checkpoint = Path(checkpoint)
    side = checkpoint.with_suffix(".json")
    if checkpoint.exists():
        hint = f"delete {checkpoint} and {side} to start afresh"
        old = read_json(side, what="the checkpoint's record", hint=hint) if side.exists() else {}
        old = old.get("key") if isinstance(old, dict) else None
        if old != key:
            log.warning("%s: written with other settings or inputs, starting afresh", checkpoint)
            checkpoint.unlink()
    else:
        log.info("no checkpoint at %s: starting from step 0", checkpoint)
    write_json(side, {"key": key})


def _run_key(params: dict[str, Any], model_in: Path | None, x: torch.Tensor) -> str:
    """What a checkpoint must match: settings (but how often to save), input model, data shape."""
    settings = {
        **params,
        "nmce": {k: v for k, v in params["nmce"].items() if k != "checkpoint_every"},
    }
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    h.update(sha256_file(model_in).encode() if model_in is not None else b"fresh")
    h.update(repr((tuple(x.shape), str(x.dtype))).encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- training stages


def tcr_features(
    params: dict[str, Any],
    ds: data.Dataset,
    vectors: dict[str, np.ndarray] | None,
    model_path: Path | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Features kind ``tcr``: stage 1's (Eq. 5) features of both splits.

    With ``model_path`` (the ``nmce_tcr`` stage's ``model.pt``) that network embeds them;
    without it, stage 1 is trained here on the train split.
    """
    nmce = params["nmce"]
    x_tr, x_te = network_inputs(nmce["network"], ds, vectors)
    if model_path is not None:
        model, _ = load_network(model_path)
        expected = tuple(int(s) for s in x_tr.shape[1:])
        if tuple(model.spec["in_shape"]) != expected:
            raise ConfigError(
                f"{model_path}: the network takes inputs {tuple(model.spec['in_shape'])}, the "
                f"data set's are {expected}; rerun nmce_tcr for this data set"
            )
        info = {"network": model.spec["name"], "model": str(model_path), "from": "nmce_tcr"}
    else:
        model = new_network(nmce, x_tr.shape[1:], resolve_n_clusters(nmce, ds), params["seed"])
        cfg = train_config(nmce, "tcr", params["seed"], params["device"])
        res = train_tcr(model, x_tr, augmenter_from(nmce), cfg)
        info = {"network": nmce["network"], "steps": res.steps, "seconds": res.seconds}
    batch = int(nmce["embed_batch"])
    z_tr, z_te = embed(model, x_tr, batch).numpy(), embed(model, x_te, batch).numpy()
    return z_tr, z_te, info


def _train(
    method: str,
    params: dict[str, Any],
    features: Path | None,
    prepared: Path,
    out: Path,
    model_in: Path | None,
    checkpoint: Path | None,
) -> Path:
    """One NMCE stage through the :class:`~basis_nmce.nmce.NMCE` estimator."""
    nmce = params["nmce"]
    seed = int(params["seed"])
    stage = STAGE_KEY[method]
    joint = method == "nmce_finetune" and bool(nmce.get("joint"))
    ds = data.load_prepared(prepared)
    vectors = None
    if features is not None and nmce["network"] == "mlp":
        vectors = load_npz(features, ("train", "test")).require_finite("train", "test")
    x_tr, x_te = network_inputs(nmce["network"], ds, vectors)
    n_clusters = resolve_n_clusters(nmce, ds)
    if joint and int(nmce["finetune"]["steps"]) < 1:
        raise ConfigError("nmce.joint trains in nmce_finetune: nmce.finetune.steps must be >= 1")
    device = str(resolve_device(params["device"]))
    est = NMCE.from_config(nmce, n_clusters, seed, device)
    if method == "nmce_tcr" or joint:
        if model_in is not None and joint:
            log.info("nmce.joint: %s is not used, training from a fresh network", model_in)
        model_in = None
    else:
        if model_in is None:
            raise ConfigError(f"{method} starts from the previous stage's model: pass --model")
        settings = est.get_params()
        est = NMCE.load(model_in, device=device)
        if tuple(est.spec_["in_shape"]) != tuple(int(s) for s in x_tr.shape[1:]):
            raise ConfigError(
                f"{model_in}: the network takes inputs {tuple(est.spec_['in_shape'])}, the "
                f"data set's are {tuple(x_tr.shape[1:])}; rerun the earlier NMCE stages"
            )
        est.set_params(**settings)
    name = "joint" if joint else stage
    out = Path(out)
    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    steps = int(est.stage_settings(name)["steps"])
    t0 = time.perf_counter()
    restarts = int(est.restarts) if name in ("cluster", "joint") and steps > 0 else 1
    checkpoints = [restart_checkpoint(checkpoint, k, restarts) for k in range(restarts)]
    if steps > 0:
        for path in checkpoints:
            _checkpoint_guard(path, _run_key(params, model_in, x_tr))
    est.fit(x_tr, stages=(name,), checkpoint=checkpoint if steps > 0 else None)
    model = est.network_
    wall = time.perf_counter() - t0
    batch = int(nmce["embed_batch"])
    arrays = {}
    for split, x in (("train", x_tr), ("test", x_te)):
        z, clusters = embed_and_predict(model, x, batch)
        arrays[split] = z.numpy()
        if method != "nmce_tcr":  # stage 1 has no trained cluster head
            arrays[f"clusters_{split}"] = clusters.numpy()
    history = est.history_.get(name, [])
    last = history[-1] if history else {}
    kept: dict[str, Any] = {}
    if name != "tcr" and steps > 0:
        kept = {"budget": est.budget_, "outcome": est.outcome_}
        if restarts > 1 or est.restarts_:
            kept["kept_seed"] = est.kept_seed_
            kept["restarts"] = est.restarts_
    meta = {
        "method": method,
        "stage": name,
        "network": nmce["network"],
        "n_components": int(model.feature_dim),
        "n_clusters": n_clusters,
        "steps": steps,
        "steps_trained": est.steps_.get(name, 0),
        "resumed_from": est.resumed_from_.get(name, 0),
        "initial_model": str(model_in) if model_in is not None else None,
        "final_loss": last.get("loss"),
        "final_effective_rank": last.get("effective_rank"),
        "nmce": nmce,
        "seconds": est.seconds_.get(name, 0.0),  # training, earlier runs of a resumed job included
        "wall_seconds": wall,  # this run's training
        **kept,  # D's budget and outcome; with restarts each restart's D and the seed kept
    }
    write_log(folder / "log.csv", history)
    est.save(folder / "model.pt", extra={"method": method, "stage": name, "steps": steps})
    save_npz(out, **arrays)
    write_json(out.with_suffix(".json"), meta)
    for path in checkpoints:
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
    log.info(
        "%s: %d steps (resumed from %d) in %.1fs, final loss %s, D %s",
        method,
        est.steps_.get(name, 0),
        est.resumed_from_.get(name, 0),
        wall,
        last.get("loss"),
        kept.get("outcome", {}).get("D"),
    )
    return out


def run_nmce_tcr(
    params: dict[str, Any],
    features: Path | None,
    prepared: Path,
    out: Path,
    checkpoint: Path | None = None,
) -> Path:
    """Stage 1 (TCR, Eq. 5) from a fresh network; writes ``out`` (embedding.npz) and, beside
    it, embedding.json, model.pt + model.json and log.csv."""
    return _train("nmce_tcr", params, features, prepared, out, None, checkpoint)


def run_nmce_cluster(
    params: dict[str, Any],
    features: Path | None,
    prepared: Path,
    model: Path,
    out: Path,
    checkpoint: Path | None = None,
) -> Path:
    """Stage 2 from stage 1's ``model``: frozen backbone, fresh heads, NMCE objective (Eq. 4)."""
    return _train("nmce_cluster", params, features, prepared, out, model, checkpoint)


def run_nmce_finetune(
    params: dict[str, Any],
    features: Path | None,
    prepared: Path,
    model: Path | None,
    out: Path,
    checkpoint: Path | None = None,
) -> Path:
    """Stage 3 from stage 2's ``model`` (every parameter; 0 steps keeps it), or, with
    ``nmce.joint``, the full objective from a fresh network (``model`` unused)."""
    return _train("nmce_finetune", params, features, prepared, out, model, checkpoint)


# --------------------------------------------------------------------------- evaluation
