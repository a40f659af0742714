"""Stage ``spectral_train``: a learnt baseline (SpectralNet, SpecNet2, Diffusion Net) as a
pipeline method, on BASiS's features, graph, K, batch size and iterations (BASiS Table 1).

The settings a baseline shares with BASiS come from ``graph`` and ``basis`` (``batch_size``,
``n_iter``, ``hidden``, ``batch_graph``, ``graph_size``, ``checkpoint_every``); its own from
``baselines.<method>``. It writes what ``basis_train`` writes (bar the anchors), so
``evaluate`` and the report treat every spectral method alike.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from basis_nmce.spectral import DiffusionNet, NeuralSpectralEstimator, SpecNet2, SpectralNet

from .. import data
from ..io import load_npz, save_npz, write_json
from .basis import _setup, graph_size, shared_params

log = logging.getLogger(__name__)

#: pipeline method name -> estimator class
BASELINES: dict[str, type[NeuralSpectralEstimator]] = {
    "spectralnet": SpectralNet,
    "specnet2": SpecNet2,
    "diffusionnet": DiffusionNet,
}
#: the ``basis`` keys a baseline shares with BASiS
SHARED_BASIS_KEYS = ("batch_size", "n_iter", "hidden", "batch_graph", "graph_size")


def baseline_from_params(
    method: str, params: dict[str, Any], n_components: int, graph_size: int | None = None
) -> NeuralSpectralEstimator:
    """The estimator of pipeline method ``method`` that a stage's params describe."""
    basis = params["basis"]
    return BASELINES[method](
        **shared_params(params, n_components, graph_size),
        n_iter=basis["n_iter"],
        hidden=tuple(basis["hidden"]),
        checkpoint_every=basis.get("checkpoint_every", 100),
        **params["baselines"][method],
    )


def run_spectral_train(
    params: dict[str, Any],
    method: str,
    features: Path,
    prepared: Path,
    out: Path,
    checkpoint: Path | None = None,
    verbose: bool = False,
) -> Path:
    """Train ``method`` on the train split and write, in ``out``'s folder: ``embedding.npz``
    (train, test, clusters_train, clusters_test), ``embedding.json``, ``model.pt`` +
    ``model.json`` (the estimator's ``load``) and ``log.csv``. ``checkpoint`` is resumed from
    and removed once the outputs exist."""
    feats = load_npz(features, ("train", "test")).require_finite("train", "test")
    ds = data.load_prepared(prepared)
    graph, k, n_clusters, m = _setup(params, ds)
    est = baseline_from_params(method, params, k, graph_size(params, ds))
    est.set_params(n_clusters=n_clusters, verbose=verbose)
    out = Path(out)
    folder = out.parent
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    est.fit(feats["train"], checkpoint=checkpoint, log_csv=folder / "log.csv")
    seconds = time.perf_counter() - t0
    arrays = {split: est.transform(feats[split]) for split in ("train", "test")}
    for split in ("train", "test"):
        arrays[f"clusters_{split}"] = est.predict(feats[split])
    save_npz(out, **arrays)
    est.save(folder / "model.pt")
    history = est.history_
    write_json(
        out.with_suffix(".json"),
        {
            "method": method,
            "estimator": type(est).__name__,
            "n_components": k,
            "n_clusters": n_clusters,
            "batch_size": min(m, len(feats["train"])),
            "graph": graph,
            "graph_size": est.graph_size_,
            "batch_graph": est.batch_graph_,
            "basis": {key: params["basis"][key] for key in SHARED_BASIS_KEYS},
            "baselines": params["baselines"][method],
            "n_iter": est.n_iter_,
            "resumed_from": est.resumed_from_,
            "final_loss": history[-1]["loss"] if history else None,
            "seconds": seconds,
            "seconds_per_iteration": seconds / max(est.n_iter_ - est.resumed_from_, 1),
        },
    )
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    log.info(
        "%s: %d iterations (resumed from %d) in %.1fs, final loss %.4g",
        method,
        est.n_iter_,
        est.resumed_from_,
        seconds,
        history[-1]["loss"] if history else float("nan"),
    )
    return out
