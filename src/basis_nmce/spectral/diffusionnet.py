"""Diffusion Net's encoder (Mishne, Shaham, Cloninger, Cohen 2019), as BASiS Table 1 trains it.

Diffusion Net needs the embedding of its whole training set in advance, so (BASiS Sec. 5.2,
7.3.3) it is trained on one batch-sized sample of the training set: the exact diffusion-map
embedding ``phi`` of that sample (its batch graph; :func:`basis_nmce.graph.laplacian.
batch_spectral_embedding` with ``diffusion_time`` t: ``psi_j (1 - lambda_j)^t``, the
eigenvectors of ``P = D^-1 W``) is the regression target of the encoder's loss, Eq. 7:

    L = 1/(2m) sum_i |f(x_i) - phi_i|^2 + mu/2 sum_{l<L} |theta_l|_F^2
        + eta/(2m) sum_j |(P - gamma_j I) o_j|^2,

``o_j`` the j-th output column on the sample, ``gamma_j = 1 - lambda_j`` the eigenvalues of
``P`` (``(P - gamma_j I) o = -(L_rw - lambda_j I) o``), ``theta_l`` the weight matrices of all
layers but the output one. BASiS's settings: ``mu = 1e-8``, ``eta = 100``. With
``diffusion_time=None`` the targets are the plain eigenvectors of ``laplacian`` (BASiS's
scale) and the regulariser uses that Laplacian. Full batch: every step sees the same sample.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from basis_nmce.graph.laplacian import batch_affinity, batch_spectral_embedding

from ..errors import ConfigError
from .base import NeuralSpectralEstimator

STREAM_SAMPLE = 4


def laplacian_matrix(W: torch.Tensor, kind: str) -> torch.Tensor:
    """Dense Laplacian of a batch affinity: ``I - D^-1/2 W D^-1/2`` (sym), ``I - D^-1 W``
    (rw), ``D - W`` (unnormalized)."""
    d = W.sum(dim=1)
    eye = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    if kind == "sym":
        s = d.rsqrt()
        return eye - s[:, None] * W * s[None, :]
    if kind == "rw":
        return eye - W / d[:, None]
    return torch.diag(d) - W


def eigen_regulariser(y: torch.Tensor, L: torch.Tensor, eigenvalues: torch.Tensor) -> torch.Tensor:
    """``sum_j |(L - lambda_j I) y_j|^2 / (2m)``: zero when each column ``y_j`` is an
    eigenvector of ``L`` with eigenvalue ``lambda_j`` (Eq. 7's last term without ``eta``)."""
    m = y.shape[0]
    r = L @ y - y * eigenvalues[None, :]
    return torch.sum(r * r) / (2 * m)


class DiffusionNet(NeuralSpectralEstimator):
    """Diffusion Net's encoder with BASiS's graph, batch and network (scikit-learn API).

    Parameters as :class:`basis_nmce.BASiS` (same names and graph; ``lr`` 1e-3); ``mu``,
    ``eta`` (Eq. 7), ``diffusion_time`` (t of the diffusion map; ``None``: the Laplacian's
    eigenvectors). Fitted: ``eigenvalues_`` (the sample's, of the Laplacian), ``train_index_``
    (the sample's rows), ``history_`` (loss, its MSE and regulariser parts).
    """

    LOG_FIELDS: ClassVar[tuple[str, ...]] = ("step", "loss", "lr", "mse", "regulariser", "seconds")

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
        mu: float = 1e-8,
        eta: float = 100.0,
        diffusion_time: int | None = 1,
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
        self.mu = mu
        self.eta = eta
        self.diffusion_time = diffusion_time
        self.checkpoint_every = checkpoint_every
        self.n_threads = n_threads
        self.verbose = verbose

    def _check_params(self, n: int) -> int:
        if self.diffusion_time is not None and self.laplacian == "unnormalized":
            raise ConfigError(
                "diffusion_time: diffusion maps use the random walk D^-1 W; set laplacian to "
                "sym or rw, or diffusion_time=None for the eigenvectors of D - W"
            )
        if self.mu < 0 or self.eta < 0:
            raise ConfigError(f"mu {self.mu}, eta {self.eta}: both must be >= 0")
        return super()._check_params(n)

    def _prepare(self, x, m):
        """The sample, its exact (diffusion-map) embedding and its Laplacian: fixed targets."""
        index = self._sample(len(x), m, 0, STREAM_SAMPLE)
        xb = self._rows(x, index)
        t = self.diffusion_time
        phi, vals = batch_spectral_embedding(
            xb, self.n_components, **self.batch_graph_, diffusion_time=t, dtype=torch.float64
        )
        W = batch_affinity(xb, **self.batch_graph_)
        kind = "rw" if t is not None else self.laplacian
        self._sample_x = xb
        self._target = phi.float()
        self._operator = laplacian_matrix(W, kind).float()
        self._eigenvalues_t = vals.float()
        self.eigenvalues_ = vals.cpu().numpy()
        self.train_index_ = index

    def _loss(self, x, m, step):
        y = self.model_(self._sample_x)
        mse = torch.sum((y - self._target) ** 2) / (2 * len(y))
        linears = [p for name, p in self.model_.named_parameters() if name.endswith("weight")]
        weights = sum(torch.sum(w * w) for w in linears[:-1]) * (self.mu / 2)
        reg = self.eta * eigen_regulariser(y, self._operator, self._eigenvalues_t)
        return mse + weights + reg, {"mse": float(mse.detach()), "regulariser": float(reg.detach())}

    def _finish(self, x, m):
        for name in ("_sample_x", "_target", "_operator", "_eigenvalues_t"):
            self.__dict__.pop(name, None)  # the sample's tensors are not kept

    def _extra_meta(self) -> dict[str, Any]:
        return {"eigenvalues": np.asarray(self.eigenvalues_).tolist()}

    def _set_extra_meta(self, meta: dict[str, Any]) -> None:
        self.eigenvalues_ = np.asarray(meta.get("eigenvalues", []), dtype=np.float64)
