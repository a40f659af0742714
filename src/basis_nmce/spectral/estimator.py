"""What the four spectral estimators share: BASiS and the learnt baselines (BASiS Table 1).

:class:`SpectralEstimator` owns what is the same for :class:`~basis_nmce.BASiS`,
SpectralNet, SpecNet2 and Diffusion Net: the graph settings and the rule deriving a batch's
graph from the target graph (:mod:`basis_nmce.graph.batch`), the thread pool, input checks
(:func:`check_array`), chunked out-of-sample :meth:`~SpectralEstimator.transform`, k-means
:meth:`~SpectralEstimator.predict`, and :meth:`~SpectralEstimator.save` /
:meth:`~SpectralEstimator.load` as a state dict plus JSON (never unpickling code). How a
method trains is its own: BASiS's aligned regression (:mod:`.basis`), the baselines' Adam loop
on a loss (:mod:`.base`).

Subclass hooks: :meth:`_head` (fixed post-processing of the network output),
:meth:`_extra_state` / :meth:`_extra_meta` (fitted values saved beside the network).
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from basis_nmce.errors import DataError
from basis_nmce.graph.batch import batch_graph as derive_batch_graph
from basis_nmce.io import atomic_path, load_model, load_npy, save_model
from basis_nmce.models import MLP, resolve_device


class SpectralEstimator(TransformerMixin, ClusterMixin, BaseEstimator):
    """Base of the spectral estimators (scikit-learn API; see the module docstring).

    Expected attributes (constructor parameters of every subclass): ``n_components``,
    ``n_neighbors``, ``sigma_neighbor``, ``laplacian``, ``batch_size``, ``hidden``,
    ``random_state``, ``device``, ``sigma_mode``, ``sigma_value``, ``symmetrize``, ``kernel``,
    ``drop_first``, ``n_clusters``, ``batch_graph``, ``graph_size``, ``n_threads``.
    """

    # ------------------------------------------------------------ settings
    @property
    def graph_kwargs(self) -> dict[str, Any]:
        """The graph the user means (over ``graph_size`` points); batches use
        :meth:`batch_graph_kwargs`."""
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

    def _build_network(self) -> torch.nn.Module:
        return MLP(self.n_features_in_, self._out_dim(), self.hidden).to(self.device_)

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

    # ------------------------------------------------------- subclass hooks
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
        X = check_array(X, "X", self.n_features_in_)
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
        emb = check_array(embedding, "embedding", self.n_components).astype(np.float64)
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
            net = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
            est.model_.load_state_dict(net or state)  # files saved before the prefix: all net
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


def check_array(X, name: str, n_features: int | None = None):
    """``X`` as scikit-learn's ``check_array`` would accept it: 2-D, numeric, finite, not
    empty, ``n_features`` columns when given. Lists, tensors and arrays become float32; a
    path or memory-mapped ``.npy`` stays memory-mapped (checked chunk by chunk)."""
    from sklearn.utils import check_array as sk_check_array

    if isinstance(X, str | Path):
        X = load_npy(X, what=f"{name}: a 2-D numeric .npy array")
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if isinstance(X, np.memmap):
        if X.ndim != 2 or not len(X) or not X.shape[1]:
            raise DataError(f"{name} must be a non-empty 2-D array (n, d); got shape {X.shape}")
        if not (np.issubdtype(X.dtype, np.integer) or np.issubdtype(X.dtype, np.floating)):
            raise DataError(f"{name} must hold real numbers; got dtype {X.dtype}")
    else:
        try:
            if np.ndim(X) != 2:
                raise DataError(
                    f"{name} must be 2-D (n_samples, n_features); got shape {np.shape(X)}: "
                    "reshape(1, -1) makes one sample a row, reshape(-1, 1) one feature a column"
                )
            with np.errstate(over="ignore"):  # overflow to inf is reported below
                X = sk_check_array(X, dtype=np.float32, ensure_all_finite=False, input_name=name)
        except DataError:
            raise
        except (TypeError, ValueError) as e:  # ragged lists, strings, complex numbers
            raise DataError(f"{name}: {e}") from e
    for start in range(0, len(X), 65536):  # chunks: a memory-mapped X is never all in RAM
        finite = np.isfinite(np.asarray(X[start : start + 65536])).all(axis=1)
        if not finite.all():
            raise DataError(
                f"{name} contains NaN or infinite values (first in row "
                f"{start + int(np.argmin(finite))}; values beyond the float32 range overflow "
                "to inf); remove or impute them first"
            )
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(
            f"{name} has {X.shape[1]} features per row (shape {tuple(X.shape)}), but this model "
            f"was fitted on {n_features}; pass data with the fitted features"
        )
    return X


def write_history(path: str | Path, history: list[dict[str, float]], fields: tuple[str, ...]):
    """The per-step training log as CSV (missing values empty)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, math.nan) for k in fields})


def progress_bar(desc: str, total: int, start: int, verbose: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, disable=not verbose, desc=desc, unit="it")
