"""SpectralNet (Shaham et al. 2018; "SpecNet1" in BASiS Table 1).

The network ends in ``tanh`` and an orthonormalisation layer: a ``K x K`` matrix computed from
a separate batch (Cholesky of ``Y^T Y / m``, or QR) so that that batch's output satisfies
``Y^T Y / m = I``. Training alternates an orthogonalisation step (a fresh batch sets the
layer) and a gradient step on another fresh batch through that layer (not recomputed from
the gradient batch; as in SpectralNet's code, not detached either), minimising
the Rayleigh quotient (BASiS Eq. 8, degree-normalised for ``L_sym`` as the BASiS supplement
used). The layer stored by the last orthogonalisation step is used for inference.

Ours, where the paper and the code are silent: after training, a Rayleigh-Ritz rotation on
that last batch orders the columns by their Rayleigh quotients (ascending), so column 0 is the
trivial direction and ``drop_first`` can drop it (the network then learns K + 1 columns); the
rotation is orthogonal, so ``Y^T Y / m = I`` still holds. ``laplacian="rw"`` orthonormalises
in the degree-weighted inner product (``Y^T D Y / vol = I``, :mod:`basis_nmce.graph.laplacian`'s rw
convention) and minimises ``tr(Y^T (D - W) Y)``: the generalised problem of ``(L, D)``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from basis_nmce.graph.laplacian import batch_affinity

from ..errors import ConfigError, DataError
from .base import NeuralSpectralEstimator

ORTHONORM_METHODS = ("cholesky", "qr")
STREAM_ORTHO, STREAM_GRAD = 1, 2


def metric_weights(W: torch.Tensor, laplacian: str) -> torch.Tensor:
    """Per-point weights of the inner product the output is orthonormal in: 1 (``sym``,
    ``unnormalized``) or ``d_i / mean(d)`` (``rw``)."""
    if laplacian == "rw":
        d = W.sum(dim=1)
        return d / d.mean()
    return torch.ones(W.shape[0], dtype=W.dtype, device=W.device)


def orthonorm_weights(
    y: torch.Tensor, weights: torch.Tensor | None = None, method: str = "cholesky"
) -> torch.Tensor:
    """The ``K x K`` matrix ``Q`` with ``(y Q)^T diag(w) (y Q) / m = I`` (SpectralNet's
    orthonormalisation layer), float64, differentiable in ``y``.

    ``cholesky`` (SpectralNet's TensorFlow code): ``G = y^T diag(w) y / m = L L^T``,
    ``Q = L^-T``; a rank-deficient ``G`` gets the smallest diagonal shift (relative to its
    trace, from 1e-12 up) that factorises. ``qr`` (its PyTorch code): ``sqrt(w / m) y = Q_ R``,
    ``Q = R^-1`` with ``R``'s diagonal made positive.
    """
    if method not in ORTHONORM_METHODS:
        raise ConfigError(f"orthonorm {method!r}: choose one of {', '.join(ORTHONORM_METHODS)}")
    y = y.double()
    m, k = y.shape
    w = torch.ones(m, dtype=y.dtype, device=y.device) if weights is None else weights.double()
    eye = torch.eye(k, dtype=y.dtype, device=y.device)
    if method == "qr":
        _, r = torch.linalg.qr(y * torch.sqrt(w / m)[:, None])
        sign = torch.sign(torch.diagonal(r)).detach()
        r = r * torch.where(sign == 0, torch.ones_like(sign), sign)[:, None]
        return torch.linalg.solve_triangular(r, eye, upper=True)
    g = (y * w[:, None]).T @ y / m
    g = (g + g.T) / 2
    scale = max(float(torch.trace(g.detach())) / k, 1e-300)
    for shift in (0.0, *(10.0**e for e in range(-12, -3))):
        if int(torch.linalg.cholesky_ex(g.detach() + shift * scale * eye)[1]) == 0:
            lower = torch.linalg.cholesky(g + shift * scale * eye)
            return torch.linalg.solve_triangular(lower, eye, upper=False).T
    raise DataError(
        "SpectralNet: the orthogonalisation batch's output has rank < K (Cholesky failed "
        "even with a diagonal shift of 1e-4 of its trace): raise batch_size or lower lr"
    )


def laplacian_form(y: torch.Tensor, W: torch.Tensor, laplacian: str) -> torch.Tensor:
    """``Y^T L Y / m`` (``K x K``, float64) on one batch of affinity ``W``.

    ``sym``: ``L_N = I - D^-1/2 W D^-1/2`` (the degree-normalised form of Eq. 8,
    ``sum_ij W_ij |y_i/sqrt(d_i) - y_j/sqrt(d_j)|^2 / 2``); ``unnormalized``: ``D - W``;
    ``rw``: ``(D - W) / mean(d)`` (with the ``rw`` orthonormalisation, the generalised problem
    of ``(L, D)``).
    """
    y = y.double()
    m = y.shape[0]
    d = W.sum(dim=1)
    if laplacian == "sym":
        ys = y * d.rsqrt()[:, None]
        form = y.T @ y - ys.T @ (W @ ys)
    else:
        form = (y * d[:, None]).T @ y - y.T @ (W @ y)
        if laplacian == "rw":
            form = form / d.mean()
    return (form + form.T) / (2 * m)


def rayleigh_loss(y: torch.Tensor, W: torch.Tensor, laplacian: str) -> torch.Tensor:
    """``tr(Y^T L Y) / m`` (BASiS Eq. 8 times ``m / 2``): with ``Y^T Y / m = I`` the sum of the
    K columns' Rayleigh quotients (:func:`laplacian_form`)."""
    return torch.trace(laplacian_form(y, W, laplacian))


class SpectralNet(NeuralSpectralEstimator):
    """SpectralNet with BASiS's graph, batches and network (scikit-learn API).

    Parameters as :class:`basis_nmce.BASiS` (same names and graph; ``lr`` defaults to
    SpectralNet's 1e-3); ``orthonorm``: ``cholesky`` (default) or ``qr``. Fitted:
    ``orthonorm_`` (the frozen layer, rotation included), ``eigenvalues_`` (the Rayleigh
    quotients on the last orthogonalisation batch), ``orthonorm_index_`` (that batch's rows),
    ``history_`` (per step: loss, the orthogonalisation's condition number).
    """

    LOG_FIELDS: ClassVar[tuple[str, ...]] = ("step", "loss", "lr", "condition", "seconds")

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
        orthonorm: str = "cholesky",
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
        self.orthonorm = orthonorm
        self.checkpoint_every = checkpoint_every
        self.n_threads = n_threads
        self.verbose = verbose

    def _out_dim(self) -> int:
        return int(self.n_components) + int(bool(self.drop_first))

    def _check_params(self, n: int) -> int:
        if self.orthonorm not in ORTHONORM_METHODS:
            raise ConfigError(
                f"orthonorm {self.orthonorm!r}: choose one of {', '.join(ORTHONORM_METHODS)}"
            )
        return super()._check_params(n)

    def _features(self, xb: torch.Tensor) -> torch.Tensor:
        """The network's output before the orthonormalisation layer (SpectralNet's tanh)."""
        return torch.tanh(self.model_(xb))

    def _orthogonalise(self, x, m: int, step: int) -> tuple[torch.Tensor, np.ndarray, float]:
        """One orthogonalisation step: the layer from a fresh batch. As in SpectralNet's code
        the layer stays a function of the network's parameters (not detached) for the
        gradient step that follows: a gradient through a detached layer can lower the loss
        by shrinking the output, which collapses it (seen: condition numbers of 10^3 and a
        rising loss on three blobs)."""
        index = self._sample(len(x), m, step, STREAM_ORTHO)
        xb = self._rows(x, index)
        y = self._features(xb)
        w = None
        if self.laplacian == "rw":
            w = metric_weights(batch_affinity(xb, **self.batch_graph_), "rw")
        q = orthonorm_weights(y, w, self.orthonorm)
        s = torch.linalg.svdvals(q.detach())
        return q, index, float(s.max() / s.min())

    def _loss(self, x, m, step):
        q, _, cond = self._orthogonalise(x, m, step)
        index = self._sample(len(x), m, step, STREAM_GRAD)
        xb = self._rows(x, index)
        W = batch_affinity(xb, **self.batch_graph_)
        y = self._features(xb).double() @ q
        return rayleigh_loss(y, W, self.laplacian), {"condition": cond}

    def _finish(self, x, m):
        """The last orthogonalisation step, then the Rayleigh-Ritz rotation on that batch."""
        q, index, _ = self._orthogonalise(x, m, int(self.n_iter))
        xb = self._rows(x, index)
        W = batch_affinity(xb, **self.batch_graph_)
        y = self._features(xb).double() @ q
        vals, rot = torch.linalg.eigh(laplacian_form(y, W, self.laplacian))
        self.orthonorm_ = q @ rot  # float64: the head is applied in float64
        self.eigenvalues_ = vals[int(bool(self.drop_first)) :].cpu().numpy()
        self.orthonorm_index_ = index

    def _head(self, out):
        y = torch.tanh(out).double() @ self.orthonorm_.to(out.device)
        return (y[:, 1:] if self.drop_first else y).float()

    def _extra_state(self):
        return {"orthonorm": self.orthonorm_} if hasattr(self, "orthonorm_") else {}

    def _set_extra_state(self, state):
        if "orthonorm" in state:
            self.orthonorm_ = state["orthonorm"].double()

    def _extra_meta(self):
        return {"eigenvalues": np.asarray(self.eigenvalues_).tolist()}

    def _set_extra_meta(self, meta):
        self.eigenvalues_ = np.asarray(meta.get("eigenvalues", [math.nan] * self.n_components))
