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

from basis_nmce.evaluation.metrics import (
    clustering_scores,
    knn_accuracy,
    nearest_subspace_accuracy,
    svm_accuracy,
)
from basis_nmce.nmce.augment import make_augmenter

from .. import data
from ..errors import ConfigError
from ..io import atomic_path, load_npz, read_json, save_npz, sha256_file, write_json
from ..models import resolve_device
from ..nmce import (
    NMCENet,
    TrainConfig,
    build_network,
    embed,
    embed_and_predict,
    load_network,
    train_tcr,
)
from ..nmce.estimator import NMCE
from ..nmce.restarts import restart_checkpoint
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
    "D",
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
    n_clusters = int(nmce.get("n_clusters") or 2)
    return NMCE.from_config(nmce, n_clusters, seed, device).train_config(stage)


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
        f"svm_acc{suffix}": svm_accuracy(ztr, ytr, zte, yte, seed=seed, standardize=False),
        f"nearsub_acc{suffix}": nearest_subspace_accuracy(ztr, ytr, zte, yte, n_components=comps),
    }


def cluster_scores(y: np.ndarray, pred: np.ndarray, prefix: str = "") -> dict[str, Any]:
    """ACC, ARI and NMI under both normalisations: ``nmi`` = ``nmi_max`` (max(H), BASiS
    Eq. 18, every NMI of this package) and ``nmi_arithmetic`` (scikit-learn's default, the
    NMCE / MCR^2 code's), each key with ``prefix``."""
    scores = clustering_scores(y, pred)
    arithmetic = clustering_scores(y, pred, average_method="arithmetic")["nmi"]
    out = {**scores, "nmi_max": scores["nmi"], "nmi_arithmetic": arithmetic}
    return {f"{prefix}{k}": v for k, v in out.items()}


#: what each score of an NMCE metrics.json measures (written into it as ``protocols``)
PROTOCOLS = {
    "acc, nmi, nmi_max, nmi_arithmetic, ari": "cluster head on the held-out test split (ours)",
    "train_acc, train_nmi, train_nmi_max, train_nmi_arithmetic, train_ari": (
        "cluster head on the training split it was trained on (the NMCE paper's transductive "
        "protocol: the authors' code scores clustering on the training set)"
    ),
    "nmi, nmi_max": "normalised by max(H(Y), H(C)) (BASiS Eq. 18)",
    "nmi_arithmetic": (
        "normalised by the arithmetic mean of H(Y), H(C) (scikit-learn's default, the NMCE "
        "authors' code)"
    ),
    "svm_acc": (
        "LinearSVC (C 1) on the unit-sphere features as they are (the MCR^2 / NMCE protocol), "
        "fitted on train, scored on test"
    ),
    "knn_acc, nearsub_acc": "fitted on train features, scored on test features",
}


def _subspace_clusters(
    ev: dict[str, Any], z: np.ndarray, n_clusters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(indices clustered, their labels): a seeded subsample of at most subspace_max_points."""
    from ..evaluation.subspace_clustering import subspace_clustering

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

    ``acc`` / ``nmi`` / ``ari``: Hungarian accuracy, NMI (max-normalised, also as ``nmi_max``;
    ``nmi_arithmetic``: scikit-learn's default normalisation, the NMCE code's) and ARI of the
    cluster head (stages 2-3) on the test split or, for ``nmce_tcr``, of the subspace clustering
    (``clusters_from`` says which); ``train_*``: the same of the cluster head on the training
    split (the paper's transductive protocol); ``sc_*`` the subspace clustering's;
    ``knn_acc`` / ``svm_acc`` / ``nearsub_acc`` the classifiers fitted on the train features
    and scored on the test features (the SVM on the unit-sphere features as they are, as the
    MCR^2 code; ``*_aug``: on features averaged over augmented copies). ``protocols`` names
    what each key measures.
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
            metrics.update(cluster_scores(ds.y_test, predictions))
        if "clusters_train" in emb and train_labelled:
            train_pred = emb["clusters_train"].astype(np.int64)
            metrics.update(cluster_scores(ds.y_train, train_pred, prefix="train_"))
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
            scores = cluster_scores(ds.y_test[idx], sc)
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
    metrics["protocols"] = PROTOCOLS
    metrics["svm_protocol"] = "raw unit-sphere features (no standardisation)"
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
