"""Stage ``evaluate``: score one method's embedding as the BASiS paper does (Sec. 5.1).

Always on the held-out split: d_G against the exact eigenvectors of the test split's own
graph (the ``analytic`` stage's ``test``), d_perp of the test output, k-means NMI / ACC / ARI
on the test output, and a linear probe fitted on the train outputs and scored on the test.

The exact embedding has no out-of-sample map: its train and test coordinates come from two
different graphs, so a probe fitted on one cannot be scored on the other. For ``analytic``
the probe is 2-fold cross-validated on the test embedding (``linear_protocol`` says which).

A method trained on batches of m points learns the eigenvectors of its batch graph (k_b of m
points); beside the paper's same-k d_G, methods that record a batch size also get
``grassmann_matched``: the distance to the exact eigenvectors of the test graph at the batch
graph's density, k_b and the sigma neighbour scaled by n_test / m
(:func:`basis_nmce.graph.batch.matched_graph`). With BASiS's ``derived`` batch graph (at the
test graph's density) the two protocols nearly coincide; with ``same_k`` they differ.

The NMCE methods (``nmce_tcr``, ``nmce_cluster``, ``nmce_finetune``) are scored by
:func:`run_evaluate_nmce` instead (cluster head, kNN / SVM / nearest-subspace accuracies,
subspace clustering, :mod:`basis_nmce.evaluation.nmce`; test split); they need no reference.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from basis_nmce.evaluation.metrics import (
    circular_correlation,
    clustering_scores,
    embedding_angle,
    grassmann_distance,
    kmeans_labels,
    linear_probe_accuracy,
    orthogonality,
    orthogonality_authors,
)
from basis_nmce.evaluation.nmce import (
    PROTOCOLS,
    cluster_scores,
    embed_augmented,
    feature_scores,
    nearsub_components,
    subspace_clusters,
)
from basis_nmce.graph.batch import matched_graph
from basis_nmce.graph.laplacian import spectral_embedding
from basis_nmce.nmce.inputs import augmenter_from, network_inputs, resolve_n_clusters
from basis_nmce.nmce.networks import load_network

from .. import data
from ..errors import ConfigError
from ..io import load_npz, read_json, save_npz, write_json
from ..models import resolve_device
from .params import NMCE_METHODS

log = logging.getLogger(__name__)


def _probe(params: dict[str, Any], ztr, ytr, zte, yte) -> float:
    ev = params["evaluate"]
    return linear_probe_accuracy(
        ztr,
        ytr,
        zte,
        yte,
        epochs=ev["linear_probe_epochs"],
        lr=ev["linear_probe_lr"],
        seed=params["seed"],
    )


def _cross_validated_probe(params: dict[str, Any], z: np.ndarray, y: np.ndarray) -> float:
    rng = np.random.default_rng(params["seed"])
    order = rng.permutation(len(z))
    halves = np.array_split(order, 2)
    accs = [_probe(params, z[a], y[a], z[b], y[b]) for a, b in (halves, halves[::-1])]
    return float(np.mean(accs))


def _matched_grassmann(
    params: dict[str, Any], test: np.ndarray, features: Path | None, fit: dict[str, Any]
) -> dict[str, Any]:
    """d_G against the test graph at the density of the batch graph the method trained on
    (recorded as ``batch_graph`` in its ``embedding.json``; else the ``graph`` section's k)."""
    batch_size = fit.get("batch_size")
    if features is None or not batch_size:
        return {}
    x = load_npz(features)["test"]
    trained_on = dict(params["graph"])
    trained_on.update(fit.get("batch_graph") or {})
    graph = matched_graph(trained_on, int(batch_size), len(x))
    graph.pop("n_components", None)
    ref = spectral_embedding(x, test.shape[1], seed=params["seed"], **graph)
    return {
        "grassmann_matched": grassmann_distance(test, ref.embedding),
        "grassmann_matched_protocol": (
            f"matched: test graph with k {graph['n_neighbors']} and sigma neighbour "
            f"{graph['sigma_neighbor']} (the batch graph's k {trained_on['n_neighbors']} and "
            f"k_sigma {trained_on['sigma_neighbor']} x n_test / batch {batch_size})"
        ),
    }


def record_inputs(
    metrics: dict[str, Any], embedding: Path, **inputs: Path | None
) -> dict[str, Any] | None:
    """Store the input paths and the method's own record (``embedding.json``, when written) in
    ``metrics``; return that record."""
    metrics["inputs"] = {
        "embedding": str(embedding),
        **{k: str(v) if v else None for k, v in inputs.items()},
    }
    meta_path = Path(embedding).with_suffix(".json")
    if meta_path.exists():
        metrics["fit"] = read_json(meta_path)
    return metrics.get("fit")


def write_evaluation(out: Path, metrics: dict[str, Any], clusters_test: np.ndarray) -> None:
    """Write ``out`` (metrics.json) and, beside it, ``predictions.npz``."""
    save_npz(Path(out).with_name("predictions.npz"), clusters_test=clusters_test.astype(np.int64))
    write_json(out, metrics)


def run_evaluate(
    params: dict[str, Any],
    method: str,
    embedding: Path,
    reference: Path | None,
    prepared: Path,
    out: Path,
    features: Path | None = None,
) -> dict[str, Any]:
    """Write ``out`` (metrics.json) and, beside it, ``predictions.npz`` (k-means clusters)."""
    if method in NMCE_METHODS:
        return run_evaluate_nmce(params, method, embedding, prepared, out, features)
    if reference is None:
        raise ConfigError(f"evaluate {method}: needs --reference (the analytic embedding.npz)")
    emb = load_npz(embedding)
    ref = load_npz(reference)
    ds = data.load_prepared(prepared)
    train, test = emb["train"], emb["test"]
    n_clusters = ds.n_classes or test.shape[1]
    seed = params["seed"]
    # -1 marks unlabelled points; the metrics drop them, so a partly labelled split still scores.
    labelled = ds.n_classes is not None and bool(np.any(ds.y_test >= 0))

    metrics: dict[str, Any] = {
        "method": method,
        "dataset": ds.meta.get("name"),
        "n_train": len(train),
        "n_test": len(test),
        "n_components": test.shape[1],
        "grassmann": grassmann_distance(test, ref["test"]),
        "grassmann_protocol": "same-k: exact eigenvectors of the test split's own graph",
        "orthogonality": orthogonality(test),
        "orthogonality_protocol": "||Y^T Y / n - I||_F^2 (Eq. 17, sqrt(n)-scaled Y)",
        "orthogonality_authors": orthogonality_authors(test),
        "orthogonality_authors_protocol": "||U^T U - I||_F, U: unit-norm columns (authors' code)",
        "split": "test",
    }
    clusters = kmeans_labels(
        test, n_clusters, seed=seed, n_init=params["evaluate"]["kmeans_n_init"]
    )
    metrics["n_clusters"] = n_clusters
    if labelled:
        metrics.update(clustering_scores(ds.y_test, clusters))
        if method == "analytic":
            metrics["linear_acc"] = _cross_validated_probe(params, test, ds.y_test)
            metrics["linear_protocol"] = "2-fold cross-validation on the test embedding"
        else:
            metrics["linear_acc"] = _probe(params, train, ds.y_train, test, ds.y_test)
            metrics["linear_protocol"] = "fitted on train outputs, scored on test outputs"
    else:
        metrics.update({"nmi": None, "acc": None, "ari": None, "linear_acc": None})
        metrics["linear_protocol"] = "no labels"
    if ds.meta.get("source") == "rotating" and test.shape[1] == 2:
        from ..data.rotating import bin_angle

        angle = bin_angle(ds.y_test, int(ds.meta["options"]["angle_bins"]))
        rho = circular_correlation(embedding_angle(test), angle)
        metrics["circular_correlation"] = abs(rho)
        metrics["circular_correlation_protocol"] = (
            "|Fisher-Lee rho_T| between the whitened test embedding's angle and the true angle "
            "(label bin centres)"
        )
    fit = record_inputs(
        metrics, embedding, reference=reference, prepared=prepared, features=features
    )
    if fit is not None:
        metrics.update(_matched_grassmann(params, test, features, fit))
    write_evaluation(out, metrics, clusters)
    log.info(
        "evaluate %s: d_G %.4f d_perp %.4f nmi %s acc %s",
        method,
        metrics["grassmann"],
        metrics["orthogonality"],
        metrics.get("nmi"),
        metrics.get("acc"),
    )
    return metrics


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
        idx, sc = subspace_clusters(ev, zte, n_clusters, seed)
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
        metrics.update(feature_scores(ev, ztr, ds.y_train, zte, ds.y_test, seed))
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
            metrics.update(feature_scores(ev, atr, ds.y_train, ate, ds.y_test, seed, "_aug"))
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
