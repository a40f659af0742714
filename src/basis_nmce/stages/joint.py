"""Stage ``basis_joint``: BASiS Algorithm 2, features and spectral module trained together.

``variant`` ``tg`` runs Algorithm 2 as the paper (Sec. 4.3, 5.4); ``no_tg`` the ablation with
``T_G`` switched off (the identity: Algorithm 1 on drifting features). Both train
:class:`~basis_nmce.spectral.joint.BASiSJoint` from the prepared data: images feed the grey /
RGB Siamese CNN; vectors whose data set records a 2-D ``image_shape`` (digits) are reshaped into
images for it; other vectors (scaled as ``features.raw``) feed an MLP. ``joint.classes`` keeps
only those classes (Fig. 8: three digits).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from basis_nmce.evaluation.metrics import grassmann_distance, kmeans_labels, nmi
from basis_nmce.features.siamese import resolve_network
from basis_nmce.graph.laplacian import spectral_embedding
from basis_nmce.spectral.joint import BASiSJoint, meeting_iteration, write_history

from .. import data
from ..errors import ConfigError
from ..features import raw_features
from ..io import save_npz, write_json
from .analytic import resolve_n_components

log = logging.getLogger(__name__)

VARIANTS = ("tg", "no_tg")
BASIS_KEYS = (
    "batch_size",
    "n_anchors",
    "anchors_per_cluster",
    "batch_graph",
    "graph_size",
    "hidden",
    "ransac_hypotheses",
    "ransac_sample",
    "ransac_tolerance",
    "ransac_tolerance_mode",
    "ransac_min_inliers",
)


def _subset(ds: data.Dataset, classes: list[int] | None) -> data.Dataset:
    """Only ``classes`` (labels renumbered 0..len-1 in the given order); all when None."""
    if not classes:
        return ds
    if ds.n_classes is None:
        raise ConfigError(f"joint.classes: data set {ds.name!r} has no labels to select by")
    bad = [c for c in classes if c >= ds.n_classes]
    if bad:
        raise ConfigError(
            f"joint.classes: {bad} not among the {ds.n_classes} classes of {ds.name!r}"
        )
    lookup = np.full(ds.n_classes, -1)
    lookup[np.asarray(classes)] = np.arange(len(classes))
    keep_tr = np.isin(ds.y_train, classes)
    keep_te = np.isin(ds.y_test, classes)
    meta = {**ds.meta, "n_classes": len(classes), "classes_kept": list(classes)}
    return data.Dataset(
        ds.x_train[keep_tr],
        lookup[ds.y_train[keep_tr]],
        ds.x_test[keep_te],
        lookup[ds.y_test[keep_te]],
        meta,
    )


def inputs_for(params: dict[str, Any], ds: data.Dataset) -> tuple[torch.Tensor, torch.Tensor, str]:
    """``(train, test, network)``: the feature network's inputs and its resolved name."""
    from ..nmce.inputs import images_to_tensor

    network = params["joint"]["network"]
    shape = ds.meta.get("image_shape")
    as_images = ds.is_image or (
        network in ("auto", "grey") and shape is not None and len(shape) == 2
    )
    if as_images and network != "mlp":
        if ds.is_image:
            tr, te = images_to_tensor(ds.x_train), images_to_tensor(ds.x_test)
        else:  # vectors of a known image shape (digits): grey images, scaled to [0, 1]
            hi = float(max(ds.x_train.max(), 1e-12))
            tr = torch.from_numpy(ds.x_train.reshape(-1, 1, *shape) / hi).float()
            te = torch.from_numpy(ds.x_test.reshape(-1, 1, *shape) / hi).float()
        return tr, te, resolve_network("auto" if network == "auto" else network, True, tr.shape[1])
    if network != "mlp" and network != "auto":
        raise ConfigError(
            f"joint.network {network!r} needs images, but data set {ds.name!r} holds vectors "
            "without an image_shape; use network mlp (or auto)"
        )
    raw = params["raw"]
    vectors = raw_features(
        ds.x_train,
        ds.x_test,
        scale=raw.get("scale", "standard"),
        pca=raw.get("pca"),
        seed=params["seed"],
    )
    tr, te = (torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for v in vectors)
    return tr, te, "mlp"


def estimator_from_params(
    params: dict[str, Any], n_components: int, network: str, variant: str, n_clusters: int
) -> BASiSJoint:
    """The :class:`BASiSJoint` a pipeline config describes."""
    if variant not in VARIANTS:
        raise ConfigError(f"basis_joint variant {variant!r}: one of {', '.join(VARIANTS)}")
    graph, basis, joint = params["graph"], params["basis"], params["joint"]
    return BASiSJoint(
        n_components=n_components,
        n_iter=joint["n_iter"],
        spectral_every=joint["spectral_every"],
        use_tg=variant == "tg",
        feature_dim=joint["feature_dim"],
        feature_network=network,
        feature_hidden=tuple(joint["hidden"]),
        feature_lr=joint["feature_lr"],
        batch_pairs=joint["batch_pairs"],
        margin=joint["margin"],
        pairing=joint["pairing"],
        knn_positives=joint["knn_positives"],
        n_neighbors=graph["n_neighbors"],
        sigma_neighbor=graph["sigma_neighbor"],
        sigma_mode=graph["sigma_mode"],
        sigma_value=graph.get("sigma_value"),
        symmetrize=graph["symmetrize"],
        kernel=graph["kernel"],
        laplacian=graph["laplacian"],
        drop_first=graph["drop_first"],
        diffusion_time=graph.get("diffusion_time"),
        batch_size=basis["batch_size"],
        n_anchors=basis["n_anchors"],
        anchors_per_cluster=basis["anchors_per_cluster"],
        anchor_strategy=joint["anchor_strategy"],
        n_clusters=n_clusters,
        batch_graph=basis["batch_graph"],
        graph_size=basis["graph_size"],
        lr=joint["lr"],
        hidden=tuple(basis["hidden"]),
        ransac_hypotheses=basis["ransac_hypotheses"],
        ransac_sample=basis["ransac_sample"],
        ransac_tolerance=basis["ransac_tolerance"],
        ransac_tolerance_mode=basis["ransac_tolerance_mode"],
        ransac_min_inliers=basis["ransac_min_inliers"],
        eval_every=joint["eval_every"],
        snapshots=tuple(joint["snapshots"]),
        checkpoint_every=joint["checkpoint_every"],
        random_state=params["seed"],
        device=params["device"],
    )


def run_basis_joint(
    params: dict[str, Any],
    prepared: Path,
    variant: str,
    out: Path,
    checkpoint: Path | None = None,
    verbose: bool = False,
) -> Path:
    """Train and write, in ``out``'s folder: ``embedding.npz`` (``train``, ``test``: the
    spectral network's output; ``features_train``, ``features_test``; ``exact_test``: the exact
    embedding of the final test features; ``clusters_test``) and ``embedding.json`` (final NMIs,
    d_G, settings); ``model.pt`` + ``model.json`` (:meth:`BASiSJoint.load`); ``log.csv`` (one
    row per spectral step, Fig. 6); ``snapshots.npz`` (Fig. 8: ``before_<it>``, ``after_<it>``,
    ``network_<it>``, ``exact_<it>`` and the test labels ``labels``)."""
    ds = _subset(data.load_prepared(prepared), params["joint"].get("classes"))
    graph = dict(params["graph"])
    k = resolve_n_components(graph, ds.n_classes)
    n_clusters = ds.n_classes or k + int(bool(graph.get("drop_first")))
    x_tr, x_te, network = inputs_for(params, ds)
    est = estimator_from_params(params, k, network, variant, n_clusters)
    est.set_params(verbose=verbose)
    out = Path(out)
    folder = out.parent
    labelled = ds.n_classes is not None and bool((ds.y_test >= 0).any())
    t0 = time.perf_counter()
    est.fit(
        x_tr,
        ds.y_train,
        X_eval=x_te,
        y_eval=ds.y_test if labelled else None,
        checkpoint=checkpoint,
    )
    seconds = time.perf_counter() - t0
    write_history(folder / "log.csv", est.history_)
    f_tr, f_te = est.features(x_tr), est.features(x_te)
    with torch.no_grad():
        y_tr = est.model_(torch.from_numpy(f_tr).to(est.device_)).cpu().numpy()
        y_te = est.model_(torch.from_numpy(f_te).to(est.device_)).cpu().numpy()
    exact = spectral_embedding(f_te, k, seed=params["seed"], **est.eval_graph_).embedding
    clusters = est.predict(x_te)
    save_npz(
        out,
        train=y_tr,
        test=y_te,
        features_train=f_tr,
        features_test=f_te,
        exact_test=exact.astype(np.float32),
        clusters_test=clusters.astype(np.int64),
    )
    est.save(folder / "model.pt")
    snaps = dict(est.snapshots_)
    save_npz(
        folder / "snapshots.npz",
        labels=ds.y_test.astype(np.int64),
        reference_labels=ds.y_train[est.reference_index_].astype(np.int64),
        **snaps,
    )
    final: dict[str, Any] = {"grassmann": grassmann_distance(y_te, exact)}
    if labelled:
        part = est._cluster_part
        final["nmi_network"] = nmi(ds.y_test, kmeans_labels(part(y_te), n_clusters, seed=0))
        final["nmi_exact"] = nmi(ds.y_test, kmeans_labels(part(exact), n_clusters, seed=0))
    hist = est.history_
    write_json(
        out.with_suffix(".json"),
        {
            "method": "basis_joint",
            "variant": variant,
            "dataset": ds.name,
            "classes": params["joint"].get("classes"),
            "n_train": len(x_tr),
            "n_test": len(x_te),
            "n_components": k,
            "n_clusters": n_clusters,
            "network": network,
            "graph": graph,
            "batch_graph": est.batch_graph_,
            "eval_graph": est.eval_graph_,
            "batch_size": est.batch_size_,
            "n_anchors": len(est.anchor_index_),
            "joint": params["joint"],
            "n_iter": est.n_iter_,
            "spectral_steps": len(hist),
            "resumed_from": est.resumed_from_,
            "snapshot_iterations": est.snapshot_iterations_,
            "final_feature_loss": hist[-1]["feature_loss"] if hist else None,
            "final_spectral_loss": hist[-1]["spectral_loss"] if hist else None,
            "nmi_protocol": "k-means on the test split, NMI normalised by max(H) (Eq. 18)",
            "meeting_iteration": meeting_iteration(hist, 0.02),
            **final,
            "seconds": seconds,
        },
    )
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    log.info(
        "basis_joint %s (%s): %d iterations in %.1fs; test NMI network %s, exact %s, d_G %.4f",
        ds.name,
        variant,
        est.n_iter_,
        seconds,
        final.get("nmi_network"),
        final.get("nmi_exact"),
        final["grassmann"],
    )
    return out
