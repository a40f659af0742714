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
import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import data
from ..augment import make_augmenter
from ..errors import ConfigError
from ..io import atomic_path, load_npz, read_json, save_npz, sha256_file, write_json
from ..metrics import (
    clustering_scores,
    knn_accuracy,
    nearest_subspace_accuracy,
    svm_accuracy,
)
from ..models import resolve_device
from ..nmce import (
    NMCENet,
    TrainConfig,
    build_network,
    embed,
    embed_and_predict,
    load_network,
    save_network,
    train_cluster,
    train_finetune,
    train_joint,
    train_tcr,
)
from ..nmce.restarts import kept_restart, restart_checkpoint, train_restarts
from .evaluate import record_inputs, write_evaluation

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
)


# --------------------------------------------------------------------------- settings


def resolve_n_clusters(nmce: dict[str, Any], ds: data.Dataset) -> int:
    """``nmce.n_clusters``, else the data set's declared class count (never read off labels)."""
    if nmce.get("n_clusters") is not None:
        return int(nmce["n_clusters"])
    if ds.n_classes:
        return int(ds.n_classes)
    raise ConfigError(
        f"nmce.n_clusters: data set {ds.name!r} declares no classes; set nmce.n_clusters"
    )


def train_config(nmce: dict[str, Any], stage: str, seed: int, device: str) -> TrainConfig:
    """The library's :class:`TrainConfig` for ``stage`` (tcr, cluster, finetune) of ``nmce``."""
    st = nmce[stage]
    return TrainConfig(
        steps=int(st["steps"]),
        batch_size=int(nmce["batch_size"]),
        lr=float(st["lr"]),
        weight_decay=float(st["weight_decay"]),
        optimizer=st["optimizer"],
        momentum=float(st["momentum"]),
        betas=(float(st["betas"][0]), float(st["betas"][1])),
        base_batch_size=st["base_batch_size"],
        schedule=st["schedule"],
        warmup_steps=int(st["warmup_steps"]),
        final_lr_factor=float(st["final_lr_factor"]),
        eps=float(nmce["eps"]),
        lam=float(nmce["lambda"] if st["lambda"] is None else st["lambda"]),
        tau=float(nmce["tau"]),
        tcr_mode=nmce["tcr_mode"],
        cluster_lr=st["cluster_lr"],
        cluster_weight_decay=st["cluster_weight_decay"],
        reset_feature_head=bool(nmce.get("reset_feature_head", True)),
        cluster_head_init=nmce.get("cluster_head_init", "default"),
        grad_clip=st["grad_clip"],
        seed=int(seed),
        device=str(resolve_device(device)),
        log_every=int(nmce["log_every"]),
        checkpoint_every=int(nmce["checkpoint_every"]),
        collapse_patience=nmce["collapse_patience"],
    )


def augmenter_from(nmce: dict[str, Any]):
    aug = nmce["augmentation"]
    return make_augmenter(aug.get("kind", "noise"), **(aug.get("options") or {}))


def images_to_tensor(x: np.ndarray) -> torch.Tensor:
    """Prepared images ``(n, H, W)`` / ``(n, H, W, C)`` -> float32 ``(n, C, H, W)`` in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(x))
    t = t.unsqueeze(1) if t.dim() == 3 else t.permute(0, 3, 1, 2)
    t = t.to(torch.float32)
    return t / 255.0 if x.dtype == np.uint8 else t


def network_inputs(
    network: str, ds: data.Dataset, vectors: dict[str, np.ndarray] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) inputs of ``network``: the given vectors for ``mlp``, else the images."""
    if network == "mlp":
        if vectors is None:
            raise ConfigError("nmce.network mlp reads the features of the rule's kind; none given")
        return (
            torch.from_numpy(np.ascontiguousarray(vectors["train"], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(vectors["test"], dtype=np.float32)),
        )
    if not ds.is_image:
        raise ConfigError(
            f"nmce.network {network!r} needs images, but data set {ds.name!r} holds vectors; "
            "use network mlp"
        )
    return images_to_tensor(ds.x_train), images_to_tensor(ds.x_test)


def new_network(nmce: dict[str, Any], in_shape, n_clusters: int, seed: int) -> NMCENet:
    try:
        return build_network(
            nmce["network"],
            tuple(in_shape),
            int(nmce["feature_dim"]),
            n_clusters,
            seed=seed,
            **(nmce.get("network_options") or {}),
        )
    except ValueError as exc:
        raise ConfigError(f"nmce.network: {exc}") from exc


def _saved_network(path: Path, seed: int) -> NMCENet:
    """The model saved at ``path`` (every restart of stage 2 starts from it; ``seed`` unused)."""
    return load_network(path)[0]


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
    if method == "nmce_tcr" or joint:
        if model_in is not None and joint:
            log.info("nmce.joint: %s is not used, training from a fresh network", model_in)
        model_in = None
        make = functools.partial(new_network, nmce, tuple(x_tr.shape[1:]), n_clusters)
    else:
        if model_in is None:
            raise ConfigError(f"{method} starts from the previous stage's model: pass --model")
        make = functools.partial(_saved_network, Path(model_in))
    out = Path(out)
    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    steps = int(nmce[stage]["steps"])
    t0 = time.perf_counter()
    history: list[dict[str, Any]] = []
    resumed, train_seconds = 0, 0.0
    restarts = int(nmce.get("restarts", 1)) if (joint or stage == "cluster") and steps > 0 else 1
    if restarts == 1:
        model = make(seed=seed)
    checkpoints = [restart_checkpoint(checkpoint, k, restarts) for k in range(restarts)]
    kept: dict[str, Any] = {}
    if steps > 0:
        cfg = train_config(nmce, stage, seed, params["device"])
        for path in checkpoints:
            _checkpoint_guard(path, _run_key(params, model_in, x_tr))
        fn = {"tcr": train_tcr, "cluster": train_cluster, "finetune": train_finetune}[stage]
        if joint:
            fn = train_joint
        if restarts == 1:
            res = fn(model, x_tr, augmenter_from(nmce), cfg, checkpoint=checkpoint)
        else:
            model, runs = train_restarts(
                fn,
                make,
                x_tr,
                augmenter_from(nmce),
                cfg,
                restarts=restarts,
                workers=min(restarts, torch.get_num_threads()),
                checkpoint=checkpoint,
            )
            best = kept_restart(runs)
            res = best.result
            kept = {
                "kept_seed": best.seed,
                "restarts": [
                    {
                        "seed": r.seed,
                        "violation": r.violation,
                        "clusters_used": r.clusters_used,
                        "final_loss": r.result.last.get("loss"),
                        "seconds": r.result.seconds,
                    }
                    for r in runs
                ],
            }
        history, resumed, train_seconds = res.history, res.resumed_at, res.seconds
    model.eval()
    wall = time.perf_counter() - t0
    batch = int(nmce["embed_batch"])
    arrays = {}
    for split, x in (("train", x_tr), ("test", x_te)):
        z, clusters = embed_and_predict(model, x, batch)
        arrays[split] = z.numpy()
        if method != "nmce_tcr":  # stage 1 has no trained cluster head
            arrays[f"clusters_{split}"] = clusters.numpy()
    last = history[-1] if history else {}
    meta = {
        "method": method,
        "stage": "joint" if joint else stage,
        "network": nmce["network"],
        "n_components": int(model.feature_dim),
        "n_clusters": n_clusters,
        "steps": steps,
        "resumed_from": resumed,
        "initial_model": str(model_in) if model_in is not None else None,
        "final_loss": last.get("loss"),
        "final_effective_rank": last.get("effective_rank"),
        "nmce": nmce,
        "seconds": train_seconds,  # training time, earlier runs of a resumed job included
        "wall_seconds": wall,  # this run's training
        **kept,  # with nmce.restarts > 1: each restart's D and the seed kept
    }
    write_log(folder / "log.csv", history)
    save_network(folder / "model.pt", model, {k: meta[k] for k in ("method", "stage", "steps")})
    save_npz(out, **arrays)
    write_json(out.with_suffix(".json"), meta)
    for path in checkpoints:
        if path is not None:
            path.unlink(missing_ok=True)
            path.with_suffix(".json").unlink(missing_ok=True)
    log.info(
        "%s: %d steps (resumed from %d) in %.1fs, final loss %s",
        method,
        steps,
        resumed,
        wall,
        last.get("loss"),
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


@torch.no_grad()
def embed_augmented(
    model: NMCENet, x: torch.Tensor, augmenter, copies: int, batch: int, seed: int
) -> np.ndarray:
    """Features averaged over ``copies`` augmented views of every row, back on the sphere."""
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(int(seed))
    model.eval()
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].to(device)
        z = sum(model(augmenter(xb, generator=g))[0] for _ in range(copies))
        out.append(torch.nn.functional.normalize(z, dim=1).cpu())
    return torch.cat(out).numpy()


def nearsub_components(ev: dict[str, Any], d: int, n_classes: int) -> int:
    """Class subspace dimension: the configured one, at most d_z / classes (so that the class
    subspaces can be independent; one filling the feature space makes the classifier moot)."""
    return max(1, min(int(ev["nearest_subspace_components"]), d // max(1, n_classes), d - 1))


def _feature_scores(
    ev: dict[str, Any], ztr, ytr, zte, yte, seed: int, suffix: str = ""
) -> dict[str, float]:
    d = zte.shape[1]
    comps = nearsub_components(ev, d, len(np.unique(ytr[ytr >= 0])))
    return {
        f"knn_acc{suffix}": knn_accuracy(ztr, ytr, zte, yte, k=int(ev["knn_k"])),
        f"svm_acc{suffix}": svm_accuracy(ztr, ytr, zte, yte, seed=seed),
        f"nearsub_acc{suffix}": nearest_subspace_accuracy(ztr, ytr, zte, yte, n_components=comps),
    }


def _subspace_clusters(
    ev: dict[str, Any], z: np.ndarray, n_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices clustered, their labels): a seeded subsample of at most subspace_max_points."""
    from ..subspace_clustering import subspace_clustering

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.permutation(len(z))[: int(ev["subspace_max_points"])])
    labels = subspace_clustering(
        z[idx],
        n_clusters,
        method=ev["subspace_clustering"],
        seed=seed,
        **(ev.get("subspace_options") or {}),
    )
    return idx, labels


def run_evaluate_nmce(
    params: dict[str, Any],
    method: str,
    embedding: Path,
    prepared: Path,
    out: Path,
    features: Path | None = None,
) -> dict[str, Any]:
    """Score an NMCE method on the test split; write ``out`` (metrics.json) and, beside it,
    ``predictions.npz`` (``clusters_test``: the cluster head's, else the subspace clustering's
    with -1 for points outside its subsample).

    ``acc`` / ``nmi`` / ``ari``: Hungarian accuracy, NMI (max-normalised) and ARI of the cluster
    head (stages 2-3) or, for ``nmce_tcr``, of the subspace clustering (``clusters_from`` says
    which); ``sc_*`` the subspace clustering's; ``knn_acc`` / ``svm_acc`` / ``nearsub_acc`` the
    classifiers fitted on the train features and scored on the test features (``*_aug``: on
    features averaged over augmented copies).
    """
    ev = params["evaluate"]["nmce"]
    seed = int(params["seed"])
    emb = load_npz(embedding)
    ds = data.load_prepared(prepared)
    ztr, zte = emb["train"], emb["test"]
    n_clusters = resolve_n_clusters(params["nmce"], ds)
    labelled = ds.n_classes is not None and bool(np.any(ds.y_test >= 0))
    train_labelled = ds.n_classes is not None and bool(np.any(ds.y_train >= 0))
    metrics: dict[str, Any] = {
        "method": method,
        "dataset": ds.meta.get("name"),
        "split": "test",
        "n_train": len(ztr),
        "n_test": len(zte),
        "n_components": int(zte.shape[1]),
        "n_clusters": n_clusters,
        "nmi": None,
        "acc": None,
        "ari": None,
    }
    predictions = np.full(len(zte), -1, dtype=np.int64)
    if "clusters_test" in emb:
        predictions = emb["clusters_test"].astype(np.int64)
        metrics["clusters_from"] = "cluster head (argmax of its logits) on the test split"
        if labelled:
            metrics.update(clustering_scores(ds.y_test, predictions))
    if ev["subspace_clustering"] != "none":
        t0 = time.perf_counter()
        idx, sc = _subspace_clusters(ev, zte, n_clusters, seed)
        metrics["subspace_clustering"] = {
            "method": ev["subspace_clustering"],
            "n_points": len(idx),
            "options": ev.get("subspace_options") or {},
            "seconds": time.perf_counter() - t0,
        }
        if labelled:
            scores = clustering_scores(ds.y_test[idx], sc)
            metrics.update({f"sc_{k}": v for k, v in scores.items()})
        if "clusters_test" not in emb:
            predictions[idx] = sc
            metrics["clusters_from"] = (
                f"subspace clustering ({ev['subspace_clustering']}) of {len(idx)} test points"
            )
            if labelled:
                metrics.update(scores)
    if labelled and train_labelled:
        metrics.update(_feature_scores(ev, ztr, ds.y_train, zte, ds.y_test, seed))
        metrics["feature_protocol"] = "fitted on train features, scored on test features"
        n_train_classes = len(np.unique(ds.y_train[ds.y_train >= 0]))
        metrics["nearsub_components"] = nearsub_components(ev, zte.shape[1], n_train_classes)
        copies = int(ev["augmented_copies"])
        if copies > 0:
            model, _ = load_network(Path(embedding).parent / "model.pt")
            model.to(resolve_device(params["device"]))
            vectors = load_npz(features) if features is not None else None
            x_tr, x_te = network_inputs(model.spec["name"], ds, vectors)
            aug = augmenter_from(params["nmce"])
            batch = int(params["nmce"]["embed_batch"])
            atr = embed_augmented(model, x_tr, aug, copies, batch, seed)
            ate = embed_augmented(model, x_te, aug, copies, batch, seed + 1)
            metrics.update(_feature_scores(ev, atr, ds.y_train, ate, ds.y_test, seed, "_aug"))
            metrics["augmented_copies"] = copies
    record_inputs(metrics, embedding, prepared=prepared, features=features)
    write_evaluation(out, metrics, predictions)
    log.info(
        "evaluate %s (test split): acc %s nmi %s knn %s",
        method,
        metrics.get("acc"),
        metrics.get("nmi"),
        metrics.get("knn_acc"),
    )
    return metrics
