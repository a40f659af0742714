"""SpecNet2 (Chen, Yang, Cheng et al. 2022): orthogonalisation-free loss, then a rotation.

The network (no orthonormalisation layer) minimises BASiS Eq. 9 on each batch,

    f(Y) = -2 tr(Y^T A Y) / m + tr((Y^T B Y / m)^2),

for the pencil ``(A, B)``: ``rw`` the authors' ``(W, D)`` (both divided by the mean degree, so
the minimiser's coordinates are O(1): ``f`` is Eq. 9 of ``sqrt(m) Y`` times ``m``, the same
minimisers up to that scale); ``sym`` its normalised form ``(D^-1/2 W D^-1/2, I)``, whose
eigenvectors are those of ``L_N``. At the minimum ``span(Y)`` is the pencil's leading
K-dimensional eigenspace, ``Y^T B Y / m = M_K`` (its K largest eigenvalues ``mu = 1 - lambda``).

Deflation (the authors' code, ``loss2.m`` / ``specnet2_grad_local``): ``A`` minus
``D 1 1^T D / vol`` (``rw``; ``sqrt(d) sqrt(d)^T / vol`` for ``sym``) moves the trivial
eigenvector to eigenvalue 0, so the K learnt directions are the first non-trivial ones. It is
applied when ``drop_first`` is set: without it the trivial direction is one of the K wanted.

The rotation (Eq. 10): the generalised eigenproblem ``Y^T A Y O = Y^T B Y O Lambda``, sorted by
descending ``mu``, ``O`` scaled so that ``U = Y O`` has ``U^T B U / n = I``. ``rotation="train"``
(the authors' code) computes ``O`` once, on the training points (up to ``rotation_size``, with
the graph the ``batch_graph`` rule gives that many points), and applies it to new points;
``"test"`` (the BASiS paper's Table 1) recomputes it on every :meth:`transform` call's whole
input, with that input's own graph.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch

from basis_nmce.graph.batch import MIN_NEIGHBORS
from basis_nmce.graph.laplacian import affinity, batch_affinity

from ..errors import ConfigError, DataError
from .base import NeuralSpectralEstimator

ROTATIONS = ("train", "test")
PENCIL_LAPLACIANS = ("sym", "rw")


def pencil(W: torch.Tensor, laplacian: str, deflate: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, b)`` of one batch's dense affinity ``W``: the matrix ``A`` and the diagonal ``b``
    of ``B`` (module docstring), float64."""
    _check_laplacian(laplacian)
    W = W.double()
    d = W.sum(dim=1)
    vol = d.sum()
    if laplacian == "rw":
        dbar = d.mean()
        A = W / dbar
        if deflate:
            A = A - torch.outer(d, d) / (vol * dbar)
        return A, d / dbar
    s = d.rsqrt()
    A = s[:, None] * W * s[None, :]
    if deflate:
        r = d.sqrt()
        A = A - torch.outer(r, r) / vol
    return A, torch.ones_like(d)


def specnet2_loss(y: torch.Tensor, A: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """BASiS Eq. 9 in the O(1) scale: ``-2 tr(Y^T A Y) / m + tr((Y^T B Y / m)^2)``, float64."""
    y = y.double()
    m = y.shape[0]
    yay = y.T @ (A @ y) / m
    yby = (y * b[:, None]).T @ y / m
    return -2.0 * torch.trace(yay) + torch.sum(yby * yby.T)


def sparse_pencil_forms(
    y: np.ndarray, W: sp.spmatrix, laplacian: str, deflate: bool
) -> tuple[np.ndarray, np.ndarray]:
    """``(Y^T A Y / n, Y^T B Y / n)`` for a sparse affinity ``W`` of ``n`` points (the pencil of
    :func:`pencil` without forming it densely), float64."""
    _check_laplacian(laplacian)
    y = np.asarray(y, dtype=np.float64)
    W = sp.csr_matrix(W, dtype=np.float64)
    n = y.shape[0]
    d = np.asarray(W.sum(axis=1)).ravel()
    vol = d.sum()
    if laplacian == "rw":
        dbar = d.mean()
        yay = y.T @ (W @ y) / dbar
        if deflate:
            dy = d @ y
            yay -= np.outer(dy, dy) / (vol * dbar)
        yby = (y * (d / dbar)[:, None]).T @ y
    else:
        ys = y / np.sqrt(d)[:, None]
        yay = ys.T @ (W @ ys)
        if deflate:
            ry = np.sqrt(d) @ y
            yay -= np.outer(ry, ry) / vol
        yby = y.T @ y
    return (yay + yay.T) / (2 * n), (yby + yby.T) / (2 * n)


def rotation(yay: np.ndarray, yby: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 10: ``(O, mu)`` with ``yay O = yby O diag(mu)``, ``mu`` descending and
    ``O^T yby O = I`` (so ``U = Y O`` has ``U^T B U / n = I`` when the forms are divided by n)."""
    try:
        mu, O = scipy.linalg.eigh(yay, yby)
    except np.linalg.LinAlgError as e:
        raise DataError(
            "SpecNet2: Y^T D Y is singular (the network's output columns are dependent); "
            "train longer or with another lr / seed"
        ) from e
    order = np.argsort(mu)[::-1]
    return O[:, order], mu[order]


def _check_laplacian(laplacian: str) -> None:
    if laplacian not in PENCIL_LAPLACIANS:
        raise ConfigError(
            f"laplacian {laplacian!r}: SpecNet2 solves the pencil (W, D) ('rw') or its "
            "normalised form (D^-1/2 W D^-1/2, I) ('sym'); 'unnormalized' has no such form"
        )


class SpecNet2(NeuralSpectralEstimator):
    """SpecNet2 with BASiS's graph, batches and network (scikit-learn API).

    Parameters as :class:`basis_nmce.BASiS` (same names and graph; ``lr`` 1e-3, the authors'
    example setting); ``rotation`` ``train`` (default) or ``test``, ``rotation_size`` (training
    points the rotation is computed on). Fitted: ``rotation_`` (``O``), ``eigenvalues_``
    (``1 - mu``, ascending: the Laplacian's), ``history_``.
    """

    LOG_FIELDS: ClassVar[tuple[str, ...]] = ("step", "loss", "lr", "seconds")

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 50,
        sigma_neighbor: int = 7,
        laplacian: str = "sym",
        batch_size: int = 512,
        n_iter: int = 1000,
        lr: float = 1e-3,
        hidden: tuple[int, ...] = (256, 512, 512, 256),
        random_state: int | None = None,
        device: str = "auto",
        *,
        sigma_mode: str = "local",
        sigma_value: float | None = None,
        symmetrize: str | None = None,
        kernel: str = "paper",
        drop_first: bool = False,
        n_clusters: int | None = None,
        batch_graph: str = "derived",
        graph_size: int | None = None,
        rotation: str = "train",
        rotation_size: int = 10000,
        checkpoint_every: int = 100,
        n_threads: int | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.sigma_neighbor = sigma_neighbor
        self.laplacian = laplacian
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.lr = lr
        self.hidden = hidden
        self.random_state = random_state
        self.device = device
        self.sigma_mode = sigma_mode
        self.sigma_value = sigma_value
        self.symmetrize = symmetrize
        self.kernel = kernel
        self.drop_first = drop_first
        self.n_clusters = n_clusters
        self.batch_graph = batch_graph
        self.graph_size = graph_size
        self.rotation = rotation
        self.rotation_size = rotation_size
        self.checkpoint_every = checkpoint_every
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_params(self, n: int) -> int:
        _check_laplacian(self.laplacian)
        if self.rotation not in ROTATIONS:
            raise ConfigError(f"rotation {self.rotation!r}: choose one of {', '.join(ROTATIONS)}")
        return super()._check_params(n)

    def _loss(self, x, m, step):
        index = self._sample(len(x), m, step, 1)
        xb = self._rows(x, index)
        A, b = pencil(batch_affinity(xb, **self.batch_graph_), self.laplacian, self.drop_first)
        return specnet2_loss(self.model_(xb), A, b), {}

    def rotation_on(self, X, graph_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Eq. 10 on the points ``X`` with their own graph: the target graph (``n_neighbors``
        over ``graph_size`` points) at ``len(X)`` points by the ``batch_graph`` rule.
        Returns ``(O, mu)``."""
        n_min = max(int(self.n_components) + 1, MIN_NEIGHBORS)
        if len(X) <= n_min:
            raise DataError(
                f"SpecNet2 rotation on {len(X)} points: their graph needs more than {n_min}; "
                "pass more points at once (rotation='test' rotates on each transform call's "
                "whole input), or use rotation='train'"
            )
        y = self._network_output_raw(X)
        graph = self.graph_for(len(X), graph_size)
        W = affinity(np.asarray(X, dtype=np.float32), **graph)
        O, mu = rotation(*sparse_pencil_forms(y, W, self.laplacian, self.drop_first))
        u = y @ O  # sign: each column's entry of largest magnitude positive (as graph.py)
        sign = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
        return O * np.where(sign == 0, 1.0, sign)[None, :], mu

    def _finish(self, x, m):
        size = min(len(x), int(self.rotation_size))
        index = self._sample(len(x), size, int(self.n_iter), 3)
        O, mu = self.rotation_on(np.asarray(x[index]), self.graph_size_)
        self.rotation_ = torch.from_numpy(O).float()
        self.eigenvalues_ = 1.0 - mu

    @torch.no_grad()
    def _network_output_raw(self, X) -> np.ndarray:
        xb = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        out = [
            self.model_(xb[s : s + 8192].to(self.device_)).double().cpu()
            for s in range(0, len(xb), 8192)
        ]
        return torch.cat(out).numpy()

    def _head(self, out):
        return out @ self.rotation_.to(out.device)

    def transform(self, X, chunk_size: int = 8192) -> np.ndarray:
        """Embed points: the training rotation (``rotation="train"``) or one computed on ``X``
        itself with ``X``'s own graph (``"test"``, the BASiS paper's protocol)."""
        if self.rotation == "train":
            return super().transform(X, chunk_size)
        from .estimator import check_array

        self._check_fitted()
        X = check_array(X, "X", self.n_features_in_)
        O, _ = self.rotation_on(X, int(self.graph_size_ or len(X)))
        return (self._network_output_raw(X) @ O).astype(np.float32)

    def _embed_train(self, x, index):
        # k-means always on the training rotation's output, whatever ``rotation`` says
        return self._network_output(np.asarray(x[index]))

    def _extra_state(self) -> dict[str, torch.Tensor]:
        return {"rotation": self.rotation_} if hasattr(self, "rotation_") else {}

    def _set_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        if "rotation" in state:
            self.rotation_ = state["rotation"].float()

    def _extra_meta(self) -> dict[str, Any]:
        return {"eigenvalues": np.asarray(self.eigenvalues_).tolist()}

    def _set_extra_meta(self, meta: dict[str, Any]) -> None:
        self.eigenvalues_ = np.asarray(meta.get("eigenvalues", []), dtype=np.float64)
