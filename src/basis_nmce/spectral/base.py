"""What every learnt spectral embedding shares: one base class for the estimators.

:class:`NeuralSpectralEstimator` holds the machinery that is the same for SpectralNet,
SpecNet2 and Diffusion Net (and mirrors :class:`basis_nmce.BASiS`): the graph settings and the
rule that derives a batch's graph from the target graph (:mod:`basis_nmce.graph.batch`), the
device and thread pool, seeded batch sampling, the Adam loop with checkpoint/resume, chunked
out-of-sample :meth:`~NeuralSpectralEstimator.transform`, k-means :meth:`predict`, and
:meth:`save` / :meth:`load` as a state dict plus JSON (never unpickling code).

A subclass declares its ``__init__`` with explicit keyword parameters (scikit-learn's
``get_params`` reads the signature) and implements three hooks: :meth:`_loss` (one training
step's loss), :meth:`_finish` (what is computed once after training, e.g. SpecNet2's rotation)
and :meth:`_head` (the fixed post-processing of the network's output at inference).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from basis_nmce.graph.batch import batch_graph as derive_batch_graph
from basis_nmce.spectral import batch_limits
from basis_nmce.spectral.anchors import rows
from basis_nmce.spectral.basis import _check_array

from ..errors import ConfigError, DataError, SettingWarning
from ..io import atomic_path, load_checkpoint, load_model, save_checkpoint, save_model
from ..models import MLP, resolve_device

log = logging.getLogger(__name__)

#: parameters that do not change a fit's result (a checkpoint may be resumed with others)
NON_RESULT_PARAMS = ("verbose", "device", "n_threads", "checkpoint_every")


class NeuralSpectralEstimator(TransformerMixin, ClusterMixin, BaseEstimator):
    """Base of the learnt spectral embeddings (scikit-learn API; see the module docstring).

    Expected attributes (constructor parameters of every subclass): ``n_components``,
    ``n_neighbors``, ``sigma_neighbor``, ``laplacian``, ``batch_size``, ``n_iter``, ``lr``,
    ``hidden``, ``random_state``, ``device``, ``sigma_mode``, ``sigma_value``, ``symmetrize``,
    ``kernel``, ``drop_first``, ``n_clusters``, ``batch_graph``, ``graph_size``,
    ``checkpoint_every``, ``n_threads``, ``verbose``.
    """

    #: columns of the per-step training log (``history_``, ``log_csv``)
    LOG_FIELDS: ClassVar[tuple[str, ...]] = ("step", "loss", "lr", "seconds")

    # ------------------------------------------------------------ settings
    @property
    def graph_kwargs(self) -> dict[str, Any]:
        """The graph the user means (over ``graph_size`` points), as BASiS's."""
        return {
            "n_neighbors": self.n_neighbors,
            "sigma_mode": self.sigma_mode,
            "sigma_neighbor": self.sigma_neighbor,
            "sigma_value": self.sigma_value,
            "symmetrize": self.symmetrize,
            "kernel": self.kernel,
            "laplacian": self.laplacian,
            "drop_first": self.drop_first,
        }

    def graph_for(self, m: int, n: int) -> dict[str, Any]:
        """The graph of ``m`` points drawn from ``n`` training points (``batch_graph`` rule)."""
        return derive_batch_graph(self.graph_kwargs, m, int(self.graph_size or n), self.batch_graph)

    def batch_graph_kwargs(self, n: int) -> dict[str, Any]:
        """The graph each training batch is built with, for ``n`` training points."""
        return self.graph_for(min(int(self.batch_size), n), n)

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _n_clusters(self) -> int:
        return int(self.n_clusters or self.n_components + int(bool(self.drop_first)))

    def _out_dim(self) -> int:
        """Width of the network's output (the embedding's by default)."""
        return int(self.n_components)

    def _check_params(self, n: int) -> int:
        """The batch size actually used; refuses what the data cannot honour."""
        batch_limits.check_components(self.n_components, self.drop_first)
        m = int(self.batch_size)
        if m > n:
            warnings.warn(
                f"batch_size {m} exceeds the {n} training points: every batch is the whole "
                f"training set; set batch_size <= {n} to choose",
                SettingWarning,
                stacklevel=3,
            )
            m = n
        k_b = self.batch_graph_kwargs(n)["n_neighbors"]
        if m <= k_b or m < self._out_dim() + 1:
            raise ConfigError(
                f"batch_size {m} must exceed the batch graph's {k_b} neighbours and "
                f"n_components ({self._out_dim()} network outputs); raise batch_size"
            )
        if int(self.n_iter) < 0:
            raise ConfigError(f"n_iter {self.n_iter}: must be >= 0")
        return m

    # ----------------------------------------------------------- machinery
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """torch's and BLAS's thread pools at ``n_threads`` (``None``: left as they are)."""
        if self.n_threads is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        before = torch.get_num_threads()
        torch.set_num_threads(int(self.n_threads))
        try:
            with threadpool_limits(int(self.n_threads)):
                yield
        finally:
            torch.set_num_threads(before)

    def _sample(self, n: int, m: int, step: int, stream: int) -> np.ndarray:
        """``m`` distinct training rows for ``step``, from seed, step and ``stream`` alone (so a
        resumed run draws the batches an uninterrupted one would)."""
        rng = np.random.default_rng([self._seed(), int(step), int(stream)])
        return np.sort(rng.choice(n, size=m, replace=False))

    def _rows(self, x, index: np.ndarray) -> torch.Tensor:
        return rows(x, index, self.device_)

    def _build_network(self) -> torch.nn.Module:
        return MLP(self.n_features_in_, self._out_dim(), self.hidden).to(self.device_)

    def _fingerprint(self, x) -> str:
        """What a checkpoint must match to be resumed: settings and data."""
        params = {k: v for k, v in self.get_params().items() if k not in NON_RESULT_PARAMS}
        h = hashlib.sha256(type(self).__name__.encode())
        h.update(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(repr((tuple(x.shape), str(x.dtype))).encode())
        h.update(np.ascontiguousarray(np.asarray(x[:64], dtype=np.float32)).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------- subclass hooks
    def _prepare(self, x, m: int) -> None:
        """Before the first step (also on resume): e.g. Diffusion Net's fixed targets."""

    def _loss(self, x, m: int, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One training step's loss (with gradient) and extra log values."""
        raise NotImplementedError

    def _finish(self, x, m: int) -> None:
        """After the last step: what inference needs besides the network."""

    def _head(self, out: torch.Tensor) -> torch.Tensor:
        """Fixed post-processing of the network output at inference (float32 tensor)."""
        return out

    def _extra_state(self) -> dict[str, torch.Tensor]:
        """Tensors saved beside the network (model file and checkpoint)."""
        return {}

    def _set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`_extra_state`."""

    def _extra_meta(self) -> dict[str, Any]:
        """JSON-able fitted values saved in ``model.json`` besides the common ones."""
        return {}

    def _set_extra_meta(self, meta: dict[str, Any]) -> None:
        """Restore :meth:`_extra_meta`."""

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X,
        y=None,
        *,
        checkpoint: str | Path | None = None,
        log_csv: str | Path | None = None,
    ):
        """Train on ``X`` (n, d); ``y`` is ignored (label-free).

        ``checkpoint``: a file written every ``checkpoint_every`` steps and, when it exists
        and was written by the same settings on the same data, resumed from (batches depend
        on seed and step only, so a resumed run equals an uninterrupted one). ``log_csv``:
        the per-step training log.
        """
        x = _check_array(X, "X")
        n = len(x)
        m = self._check_params(n)
        self.device_ = resolve_device(self.device)
        self.n_features_in_ = x.shape[1]
        self.batch_graph_ = self.batch_graph_kwargs(n)
        self.graph_size_ = int(self.graph_size or n)  # the target graph's number of points
        with self._threads():
            torch.manual_seed(self._seed())
            self.model_ = self._build_network()
            opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
            fingerprint = self._fingerprint(x)
            start, history = self._resume(checkpoint, fingerprint, opt)
            self.resumed_from_ = start
            self._prepare(x, m)
            self.model_.train()
            t0 = time.perf_counter()
            progress = _progress(type(self).__name__, int(self.n_iter), start, self.verbose)
            for step in range(start, int(self.n_iter)):
                loss, extra = self._loss(x, m, step)
                if not torch.isfinite(loss):
                    raise DataError(
                        f"{type(self).__name__}: the loss became {float(loss)} at step {step + 1}; "
                        "lower lr or check the features for duplicates and extreme values"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                row = {"step": step + 1, "loss": float(loss.detach()), "lr": float(self.lr)}
                row.update(extra)
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                progress.update(1)
                last = step + 1 == int(self.n_iter)
                if checkpoint and ((step + 1) % int(self.checkpoint_every) == 0 or last):
                    self._save_checkpoint(checkpoint, step + 1, opt, history, fingerprint)
            progress.close()
            self.history_ = history
            self.n_iter_ = len(history)
            self.model_.eval()
            with torch.no_grad():
                self._finish(x, m)
            if log_csv:
                write_history(log_csv, history, self.LOG_FIELDS)
            self._fit_kmeans(x)
        return self

    def _resume(
        self, checkpoint: str | Path | None, fingerprint: str, opt: torch.optim.Optimizer
    ) -> tuple[int, list[dict[str, float]]]:
        ckpt = load_checkpoint(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
            log.warning("%s was written by other settings or data; starting afresh", checkpoint)
            ckpt = None
        if ckpt is None:
            return 0, []
        try:
            self.model_.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            self._set_extra_state(dict(ckpt.get("extra", {})))
            start, history = int(ckpt["step"]), [dict(h) for h in ckpt["history"]]
        except (KeyError, RuntimeError, ValueError) as e:
            raise DataError(
                f"{checkpoint}: not a {type(self).__name__} checkpoint ({e}); delete it to start "
                "the training afresh"
            ) from e
        log.info("resuming from %s at step %d", checkpoint, start)
        return start, history

    def _save_checkpoint(self, path, step: int, opt, history, fingerprint: str) -> None:
        save_checkpoint(
            path,
            {
                "model": self.model_.state_dict(),
                "optimizer": opt.state_dict(),
                "extra": self._extra_state(),
                "step": step,
                "history": history,
                "fingerprint": fingerprint,
            },
        )

    def _fit_kmeans(self, x) -> None:
        """k-means centres on the training embedding (up to 20,000 points), for :meth:`predict`.

        With ``drop_first=False`` column 0 is the trivial eigenvector and is left out."""
        from sklearn.cluster import KMeans

        rng = np.random.default_rng([self._seed(), 0xC1])
        sub = np.sort(rng.permutation(len(x))[: min(len(x), 20000)])
        emb = self._embed_train(x, sub)
        if not self.drop_first and emb.shape[1] > 1:
            emb = emb[:, 1:]
        km = KMeans(self._n_clusters(), n_init=10, random_state=self._seed()).fit(emb)
        self.cluster_centers_ = km.cluster_centers_.astype(np.float64)

    def _embed_train(self, x, index: np.ndarray) -> np.ndarray:
        """The embedding of training rows ``index`` (for k-means)."""
        return self.transform(np.asarray(x[index]))

    # ------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(
                f"this {type(self).__name__} instance is not fitted yet; call fit(X) first"
            )

    @torch.no_grad()
    def _network_output(self, X, chunk_size: int = 8192) -> np.ndarray:
        """The network followed by :meth:`_head` on every row of ``X``, chunk by chunk."""
        self._check_fitted()
        X = _check_array(X, "X", self.n_features_in_)
        out = np.empty((len(X), self.n_components), dtype=np.float32)
        self.model_.eval()
        for s in range(0, len(X), chunk_size):
            xb = torch.from_numpy(np.array(X[s : s + chunk_size], dtype=np.float32))
            out[s : s + chunk_size] = self._head(self.model_(xb.to(self.device_))).cpu().numpy()
        return out

    def transform(self, X, chunk_size: int = 8192) -> np.ndarray:
        """Embed any number of points (numpy, memory-mapped .npy or tensor): ``(n, K)``."""
        return self._network_output(X, chunk_size)

    def predict(self, X) -> np.ndarray:
        """Cluster labels: k-means (fitted on the training embedding) on the embedding of X."""
        return self.clusters_of(self.transform(X))

    def clusters_of(self, embedding: np.ndarray) -> np.ndarray:
        """Cluster labels of points already embedded by :meth:`transform` (nearest centre)."""
        self._check_fitted()
        emb = _check_array(embedding, "embedding", self.n_components).astype(np.float64)
        c = np.asarray(self.cluster_centers_, dtype=np.float64)
        emb = emb[:, emb.shape[1] - c.shape[1] :]
        d2 = (emb**2).sum(1)[:, None] - 2 * emb @ c.T + (c**2).sum(1)[None, :]
        return np.argmin(d2, axis=1)

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        return self.fit(X, y, **kwargs).predict(X)

    # -------------------------------------------------------------- persist
    def save(self, path: str | Path) -> None:
        """State dict in ``path`` (network and fixed heads), parameters and k-means in
        ``path`` with suffix ``.json``."""
        self._check_fitted()
        params = self.get_params()
        params["hidden"] = list(params["hidden"])
        state = {f"net.{k}": v for k, v in self.model_.state_dict().items()}
        state.update({f"extra.{k}": v for k, v in self._extra_state().items()})
        meta = {
            "class": type(self).__name__,
            "params": params,
            "n_features_in": self.n_features_in_,
            "graph_size": getattr(self, "graph_size_", None),
            "cluster_centers": self.cluster_centers_.tolist(),
            "n_iter": getattr(self, "n_iter_", None),
            "resumed_from": getattr(self, "resumed_from_", None),
            "history": list(getattr(self, "history_", [])),
            **self._extra_meta(),
        }
        save_model(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu"):
        """Load a model saved by :meth:`save`; never unpickles code (``weights_only``)."""
        name = cls.__name__
        hint = f"save the estimator again with {name}.save (model.pt and model.json together)"
        state, meta = load_model(path, hint=hint)
        if meta.get("class") != name:
            raise DataError(
                f"{path}: not a {name} model (class {meta.get('class')!r} in "
                f"{Path(path).with_suffix('.json').name}); load it with the code that saved it"
            )
        missing = [k for k in ("params", "n_features_in", "cluster_centers") if k not in meta]
        if missing:
            raise DataError(
                f"{Path(path).with_suffix('.json')}: lacks {', '.join(missing)}; {hint}"
            )
        params = dict(meta["params"])
        params["hidden"] = tuple(params["hidden"])
        params["device"] = device
        try:
            est = cls(**params)
            est.device_ = resolve_device(device)
            est.n_features_in_ = int(meta["n_features_in"])
            est.graph_size_ = meta.get("graph_size")
            est.model_ = est._build_network()
            est.model_.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("net.")})
            est._set_extra_state(
                {k[6:]: v.to(est.device_) for k, v in state.items() if k.startswith("extra.")}
            )
            est._set_extra_meta(meta)
        except (TypeError, RuntimeError, KeyError) as e:
            raise DataError(f"{path}: does not match the settings in its JSON ({e}); {hint}") from e
        est.model_.eval()
        est.cluster_centers_ = np.asarray(meta["cluster_centers"], dtype=np.float64)
        est.history_ = [dict(h) for h in meta.get("history", [])]
        est.n_iter_ = meta.get("n_iter")
        est.resumed_from_ = meta.get("resumed_from")
        return est


def write_history(path: str | Path, history: list[dict[str, float]], fields: tuple[str, ...]):
    """The per-step training log as CSV (missing values empty)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, math.nan) for k in fields})


def _progress(desc: str, total: int, start: int, verbose: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not verbose, desc=desc, unit="it")
