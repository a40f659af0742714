"""Graphs, Laplacians and exact spectral embeddings (BASiS paper, Sec. 2).

* :func:`knn` exact k nearest neighbours (torch, chunked, any device).
* :func:`affinity` the Gaussian kernel on the kNN graph, Eq. (1), symmetrised (paper: W + W^T).
* :func:`laplacian` ``L = D - W`` (Eq. 2), ``L_N = I - D^-1/2 W D^-1/2`` (Eq. 4) or
  ``I - D^-1 W`` (random walk, the generator of ``P``, Eq. 5).
* :func:`spectral_embedding` the K smallest eigenpairs of a data set's Laplacian (Eq. 3), or
  diffusion-map coordinates (Eq. 6), with a dense or a sparse solver (see ``eigensolvers``).
* :func:`batch_affinity` / :func:`batch_spectral_embedding` the same construction on one batch,
  in torch on the batch's device, for the learnt methods' training loops.

Conventions (shared by every function here, so that batch and whole-set results agree):

* kNN excludes the point itself (by index, so duplicates still count as neighbours); sigma
  ``local`` is the distance to the ``sigma_neighbor``-th neighbour (1-based, self excluded).
* Scale: sym / unnormalized embeddings are ``sqrt(n) U`` with ``U`` orthonormal, so
  ``Y^T Y / n = I``. rw embeddings (and diffusion maps) are ``psi = sqrt(vol) D^-1/2 U`` with
  ``vol = sum(D)``: orthonormal in the stationary measure, ``Psi^T D Psi / vol = I``, and the
  trivial eigenvector is exactly the constant 1 (on a connected graph). With uniform degrees both
  conventions coincide.
* Sign: each column is flipped so that its entry of largest magnitude is positive (the first such
  entry on exact ties).
* Eigenvalues are those of the chosen Laplacian, ascending (sym and rw share them); with
  ``diffusion_time`` the coordinates are ``(1 - lambda)^t psi`` (``1 - lambda`` are the
  eigenvalues of ``P``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.graph.eigensolvers import (
    EigensolverError,
    dense_smallest,
    normalized_smallest_lanczos,
    sparse_smallest,
)
from basis_nmce.graph.neighbours import exact_knn

__all__ = [
    "EigensolverError",
    "SpectralResult",
    "affinity",
    "batch_affinity",
    "batch_spectral_embedding",
    "knn",
    "knn_affinity",
    "laplacian",
    "spectral_embedding",
    "spectral_embedding_from_affinity",
]

log = logging.getLogger(__name__)

SIGMA_MODES = ("local", "median", "fixed")
SYMMETRIZE = ("sum", "mean", "max")
KERNELS = ("paper", "authors")
LAPLACIANS = ("sym", "rw", "unnormalized")
SOLVERS = ("auto", "dense", "sparse")


# --------------------------------------------------------------------------- helpers


def _device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _as_tensor(x: Any, device: torch.device, name: str = "x") -> torch.Tensor:
    """``x`` as a 2-D floating tensor (float32 unless it already is float64) on ``device``."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise DataError(f"{name}: expected an (n, d) array of points, got shape {tuple(t.shape)}")
    if t.dtype != torch.float64:
        t = t.to(torch.float32)
    t = t.to(device)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).any(dim=1).sum())
        raise DataError(f"{name}: {bad} rows contain NaN or inf; clean or drop them first")
    return t


def _check_k(n: int, k: int, name: str) -> None:
    if k < 1:
        raise ConfigError(f"graph.{name}: must be >= 1, got {k}")
    if k > n - 1:
        raise DataError(
            f"graph.{name}={k} but only {n} points: each point has at most {n - 1} neighbours; "
            f"lower graph.{name} or use more points"
        )


def _knn_torch(
    x: torch.Tensor, k: int, chunk_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact kNN (self excluded) of the rows of ``x``: ``(distances, indices)`` tensors, ascending
    by distance then index; distances correct to the rounding of the true distance
    (:func:`basis_nmce.graph.neighbours.exact_knn`)."""
    _check_k(x.shape[0], k, "n_neighbors")
    return exact_knn(x, k, chunk_size)


def _other_neighbours(n_neighbors: int, kernel: str) -> int:
    """Edges to other points per node: k (paper), k - 1 (authors: the point itself counts)."""
    return int(n_neighbors) - int(kernel == "authors")


def _kernel_weights(
    dist: torch.Tensor,
    idx: torch.Tensor,
    *,
    n_neighbors: int,
    sigma_mode: str,
    sigma_neighbor: int,
    sigma_value: float | None,
    kernel: str = "paper",
) -> torch.Tensor:
    """Gaussian weights (Eq. 1) of each node's edges to its nearest other points, float64.

    ``paper``: ``exp(-d^2 / (2 s_i s_j))`` (``local``) or ``exp(-d^2 / (2 s^2))``, on the
    ``n_neighbors`` nearest others. ``authors`` (the BASiS code): ``exp(-(d / s_i)^2)`` row by
    row, on the ``n_neighbors - 1`` nearest others (the point itself is the k-th neighbour; its
    self-loop of weight 1 is added by the callers). Returns ``(n, k_other)``.
    """
    d = dist.to(torch.float64)
    if sigma_mode not in SIGMA_MODES:
        raise ConfigError(f"graph.sigma_mode: {sigma_mode!r} is not one of {list(SIGMA_MODES)}")
    d_edges = d[:, : _other_neighbours(n_neighbors, kernel)]
    authors = kernel == "authors"
    if sigma_mode == "fixed":
        if sigma_value is None or not sigma_value > 0:
            raise ConfigError(
                "graph.sigma_value: sigma_mode 'fixed' needs a positive sigma_value, "
                f"got {sigma_value!r}"
            )
        s2 = float(sigma_value) ** 2
        return torch.exp(-(d_edges**2) / (s2 if authors else 2.0 * s2))
    sig = d[:, sigma_neighbor - 1]
    if sigma_mode == "median":
        s = float(sig.median())
        if not s > 0:
            s = float(sig.max()) if float(sig.max()) > 0 else 1.0
        return torch.exp(-(d_edges**2) / (s * s if authors else 2.0 * s * s))
    # local: sigma_i sigma_j; a zero sigma (>= sigma_neighbor duplicates) is replaced by the
    # smallest positive one, so duplicates get weight 1 and no 0/0 appears.
    pos = sig[sig > 0]
    floor = float(pos.min()) if pos.numel() else 1.0
    sig = torch.where(sig > 0, sig, torch.full_like(sig, floor))
    if authors:
        return torch.exp(-((d_edges / sig[:, None]) ** 2))
    denom = 2.0 * sig[:, None] * sig[idx[:, : d_edges.shape[1]]]
    return torch.exp(-(d_edges**2) / denom)


def _neighbours_needed(
    n: int, n_neighbors: int, sigma_mode: str, sigma_neighbor: int, kernel: str = "paper"
) -> int:
    """Nearest others each node needs for its edges and its sigma."""
    _check_kernel(kernel)
    if kernel == "authors" and n_neighbors < 2:
        raise ConfigError(
            f"graph.n_neighbors={n_neighbors}: kernel 'authors' counts the point itself among its "
            "k neighbours; use at least 2"
        )
    k_other = _other_neighbours(n_neighbors, kernel)
    _check_k(n, k_other, "n_neighbors")
    if sigma_mode in ("local", "median"):
        _check_k(n, sigma_neighbor, "sigma_neighbor")
        return max(k_other, sigma_neighbor)
    return k_other


def _check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ConfigError(
            f"graph.kernel: {kernel!r} is not one of {list(KERNELS)} (paper: Eq. 1 on the k "
            "nearest others; authors: the BASiS code's kernel, the point itself among its k)"
        )


def _resolve_symmetrize(symmetrize: str | None, kernel: str) -> str:
    """``symmetrize``, or the kernel's own when None: ``sum`` (paper), ``mean`` (authors)."""
    if symmetrize is None:
        return "mean" if kernel == "authors" else "sum"
    _check_symmetrize(symmetrize)
    return symmetrize


def _check_symmetrize(symmetrize: str) -> None:
    if symmetrize not in SYMMETRIZE:
        raise ConfigError(f"graph.symmetrize: {symmetrize!r} is not one of {list(SYMMETRIZE)}")


def _check_degrees(deg: np.ndarray) -> None:
    zero = np.flatnonzero(~(deg > 0))
    if zero.size:
        raise DataError(
            f"graph: {zero.size} node(s) have zero degree (first: {zero[:5].tolist()}), so the "
            "normalised Laplacian is undefined; their kernel weights all underflowed. Use a "
            "wider kernel (graph.sigma_value, sigma_mode local/median) or more neighbours "
            "(graph.n_neighbors)"
        )


# --------------------------------------------------------------------------- public API


def knn(
    x: Any,
    k: int,
    *,
    chunk_size: int | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact (brute-force) k nearest neighbours of every row of ``x``, the point itself excluded.

    ``x``: numpy array or torch tensor ``(n, d)``. Rows are processed in chunks of
    ``chunk_size`` (default: about 2^25 distances per chunk), one matrix product and one ``topk``
    each for the candidates, so memory is O(chunk_size * n); the candidates' distances are then
    recomputed directly (:mod:`basis_nmce.graph.neighbours`). Returns ``(distances, indices)``,
    ``(n, k)`` each, ascending by distance then index; distances float64 for float64 input, else
    float32 (the float64 distance rounded once); indices int64.
    """
    t = _as_tensor(x, _device(device))
    dist, idx = _knn_torch(t, int(k), chunk_size)
    return dist.cpu().numpy(), idx.cpu().numpy()


def knn_affinity(
    distances: Any,
    indices: Any,
    *,
    n_neighbors: int = 50,
    sigma_mode: str = "local",
    sigma_neighbor: int = 7,
    sigma_value: float | None = None,
    symmetrize: str | None = None,
    kernel: str = "paper",
    **_ignored: Any,
) -> sp.csr_matrix:
    """The affinity of :func:`affinity` from precomputed :func:`knn` output (at least as many
    columns as :func:`affinity` needs, ascending, self excluded)."""
    symmetrize = _resolve_symmetrize(symmetrize, kernel)
    _check_kernel(kernel)
    dist = torch.as_tensor(np.asarray(distances))
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    n = dist.shape[0]
    if sigma_mode not in SIGMA_MODES:
        raise ConfigError(f"graph.sigma_mode: {sigma_mode!r} is not one of {list(SIGMA_MODES)}")
    k = _other_neighbours(n_neighbors, kernel)
    need = max(k, int(sigma_neighbor)) if sigma_mode in ("local", "median") else k
    if dist.ndim != 2 or idx.shape != dist.shape or dist.shape[1] < need:
        raise DataError(
            f"knn_affinity: distances {tuple(dist.shape)} / indices {tuple(idx.shape)} given, "
            f"{need} neighbours per row needed "
            f"(n_neighbors={n_neighbors}, sigma_neighbor={sigma_neighbor}, kernel={kernel})"
        )
    w = _kernel_weights(
        dist,
        idx,
        n_neighbors=int(n_neighbors),
        sigma_mode=sigma_mode,
        sigma_neighbor=int(sigma_neighbor),
        sigma_value=sigma_value,
        kernel=kernel,
    ).numpy()
    W = sp.csr_matrix(
        (w.ravel(), idx[:, :k].numpy().ravel(), np.arange(0, n * k + 1, k)), shape=(n, n)
    )
    if kernel == "authors":  # the point itself is one of its k neighbours, at distance 0
        W = W + sp.identity(n, format="csr")
    W.sort_indices()
    WT = W.T.tocsr()
    if symmetrize == "sum":
        W = W + WT
    elif symmetrize == "mean":
        W = (W + WT) * 0.5
    else:
        W = W.maximum(WT)
    W = sp.csr_matrix(W)
    W.eliminate_zeros()
    W.sort_indices()
    return W


def affinity(
    x: Any,
    *,
    n_neighbors: int = 50,
    sigma_mode: str = "local",
    sigma_neighbor: int = 7,
    sigma_value: float | None = None,
    symmetrize: str | None = None,
    kernel: str = "paper",
    chunk_size: int | None = None,
    device: str | torch.device = "cpu",
    **_ignored: Any,
) -> sp.csr_matrix:
    """Gaussian-kernel kNN affinity ``W`` (paper Eq. 1), symmetric, float64.

    ``kernel="paper"``: each node links to its ``n_neighbors`` nearest other points with
    ``exp(-d^2 / (2 s_i s_j))`` (``local``: ``s_i`` = distance to the ``sigma_neighbor``-th
    neighbour), ``exp(-d^2/(2 s^2))`` (``median``: ``s`` = median of those distances;
    ``fixed``: ``s = sigma_value``); zero diagonal. ``kernel="authors"`` (the BASiS code): the
    point itself is one of its ``n_neighbors`` (a self-loop of weight 1), the others weigh
    ``exp(-(d / s_i)^2)`` row by row. Then ``W <- W + W^T`` (``sum``, the paper's default),
    ``(W + W^T) / 2`` (``mean``, the authors' default) or ``max(W, W^T)``; ``None`` takes the
    kernel's default. Weights that underflow to 0 are dropped. Other keyword arguments (the
    rest of a ``graph`` config section) are ignored.
    """
    symmetrize = _resolve_symmetrize(symmetrize, kernel)
    if sigma_mode not in SIGMA_MODES:
        raise ConfigError(f"graph.sigma_mode: {sigma_mode!r} is not one of {list(SIGMA_MODES)}")
    t = _as_tensor(x, _device(device))
    kk = _neighbours_needed(t.shape[0], int(n_neighbors), sigma_mode, int(sigma_neighbor), kernel)
    dist, idx = _knn_torch(t, kk, chunk_size)
    return knn_affinity(
        dist.cpu(),
        idx.cpu(),
        n_neighbors=n_neighbors,
        sigma_mode=sigma_mode,
        sigma_neighbor=sigma_neighbor,
        sigma_value=sigma_value,
        symmetrize=symmetrize,
        kernel=kernel,
    )


def laplacian(W: Any, kind: str = "sym") -> sp.csr_matrix:
    """Graph Laplacian of the symmetric affinity ``W`` (scipy sparse or dense), as CSR float64.

    ``unnormalized``: ``D - W`` (Eq. 2); ``sym``: ``I - D^-1/2 W D^-1/2`` (Eq. 4);
    ``rw``: ``I - D^-1 W`` (the random walk ``P`` of Eq. 5 is ``D^-1 W`` up to transposition;
    not symmetric). Zero-degree nodes raise :class:`DataError` (normalised kinds).
    """
    if kind not in LAPLACIANS:
        raise ConfigError(f"graph.laplacian: {kind!r} is not one of {list(LAPLACIANS)}")
    W = sp.csr_matrix(W, dtype=np.float64)
    n = W.shape[0]
    deg = np.asarray(W.sum(axis=1)).ravel()
    if kind == "unnormalized":
        return sp.csr_matrix(sp.diags(deg) - W)
    _check_degrees(deg)
    if kind == "sym":
        s = 1.0 / np.sqrt(deg)
        M = sp.diags(s) @ W @ sp.diags(s)
    else:
        M = sp.diags(1.0 / deg) @ W
    return sp.csr_matrix(sp.identity(n, format="csr") - M)


@dataclass
class SpectralResult:
    """An exact spectral embedding and how it was obtained.

    ``embedding`` (n, K) float32 in the scale/sign convention of the module docstring;
    ``eigenvalues`` (K,) float64 ascending, of the chosen Laplacian; ``degrees`` (n,) of ``W``;
    ``solver`` what ran ("dense-cpu", "dense-cuda", or "sparse:" + per-component methods);
    ``n_connected_components`` of the kNN graph; ``max_residual`` ``max ||L u - lambda u||`` of
    the orthonormal sym/unnormalized eigenvectors.
    """

    embedding: np.ndarray
    eigenvalues: np.ndarray
    degrees: np.ndarray
    laplacian: str
    solver: str
    n_connected_components: int
    max_residual: float
    diffusion_time: int | None = None
    drop_first: bool = False

    @property
    def n_components(self) -> int:
        return int(self.embedding.shape[1])


def _resolve_k(n_components: int | None, extra: dict[str, Any], fn: str) -> int:
    cfg_k = extra.pop("n_components", None)
    if extra:
        raise TypeError(f"{fn}() got unexpected keyword argument(s): {', '.join(sorted(extra))}")
    k = n_components if n_components is not None else cfg_k
    if k is None:
        raise ConfigError(
            "graph.n_components: no number of eigenvectors given; pass K "
            "(e.g. the number of classes)"
        )
    k = int(k)
    if k < 1:
        raise ConfigError(f"graph.n_components: must be >= 1, got {k}")
    return k


def _check_options(laplacian_kind: str, solver: str, diffusion_time: int | None) -> None:
    if laplacian_kind not in LAPLACIANS:
        raise ConfigError(f"graph.laplacian: {laplacian_kind!r} is not one of {list(LAPLACIANS)}")
    if solver not in SOLVERS:
        raise ConfigError(f"graph.solver: {solver!r} is not one of {list(SOLVERS)}")
    if diffusion_time is not None:
        if laplacian_kind == "unnormalized":
            raise ConfigError(
                "graph.diffusion_time: diffusion maps use the random walk D^-1 W; set "
                "graph.laplacian to rw or sym (they share eigenvalues), not unnormalized"
            )
        if diffusion_time < 0:
            raise ConfigError(f"graph.diffusion_time: must be >= 0, got {diffusion_time}")


#: batches at least this large use Lanczos on the sparse normalised adjacency when connected
#: (2.5x faster than dense MRRR at 512 nodes); smaller ones, and CUDA, solve densely.
LANCZOS_MIN_NODES = 256
NULL_TOL = 1e-8  # eigenvalues of the symmetric operator this close to the smallest are tied


def _trivial_first(
    vals: torch.Tensor, U: torch.Tensor, deg: torch.Tensor, kind: str, min_overlap: float = 0.5
) -> torch.Tensor:
    """Rotate the smallest eigenspace so that its first vector is the trivial one.

    The trivial eigenvector is D^1/2 1 for the normalised operators and 1 for D - W. When the
    smallest eigenvalue is repeated (a graph with several connected components) a solver
    returns any basis of that eigenspace, and dropping its first column would drop an arbitrary
    direction: the "first non-trivial" eigenvectors are then the rest of that eigenspace
    *orthogonal to the trivial vector*, which this rotation makes explicit.
    """
    tied = int(torch.sum(vals <= vals[0] + NULL_TOL * max(1.0, float(vals[0].abs()))))
    if tied < 2:
        return U
    u0 = torch.ones_like(deg) if kind == "unnormalized" else torch.sqrt(deg)
    u0 = (u0 / torch.linalg.norm(u0)).to(U.dtype)
    block = U[:, :tied]
    q = block.T @ u0  # coordinates of the trivial vector in the tied block
    if float(torch.linalg.norm(q)) < min_overlap:  # not in the block: the solver's order stands
        return U
    # Orthonormal basis of the block with q first: Householder reflection of e_1 onto q.
    q = q / torch.linalg.norm(q)
    e1 = torch.zeros_like(q)
    e1[0] = 1.0
    v = e1 - q
    H = torch.eye(tied, dtype=U.dtype, device=U.device)
    if float(torch.linalg.norm(v)) > 1e-12:
        v = v / torch.linalg.norm(v)
        H = H - 2.0 * torch.outer(v, v)  # H e_1 = q
    out = U.clone()
    out[:, :tied] = block @ H
    return out


def _postprocess(
    vals: torch.Tensor,
    U: torch.Tensor,
    deg: torch.Tensor,
    *,
    kind: str,
    drop_first: bool,
    diffusion_time: int | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal eigenvectors ``U`` of the symmetric operator -> embedding coordinates.

    The trivial eigenvector comes first even when eigenvalue 0 is repeated (a disconnected
    graph): dropped with ``drop_first`` (the direction nearest to it, when K is smaller than
    the number of components), else kept as the column BASiS aligns by a scale alone (only
    when the tied block holds it: otherwise the solver's basis stands)."""
    U = _trivial_first(vals, U, deg, kind, 0.5 if drop_first else 1.0 - 1e-6)
    if drop_first:
        vals, U = vals[1:], U[:, 1:]
    n = U.shape[0]
    if kind == "unnormalized" or (kind == "sym" and diffusion_time is None):
        Y = U * math.sqrt(n)
    else:  # rw eigenvectors psi = sqrt(vol) D^-1/2 u (Psi^T D Psi / vol = I)
        vol = deg.sum()
        Y = U * (torch.sqrt(vol) / torch.sqrt(deg))[:, None]
        if diffusion_time is not None:
            Y = Y * ((1.0 - vals) ** int(diffusion_time))[None, :]
    # deterministic sign: largest-magnitude entry of each column positive
    piv = Y.abs().argmax(dim=0)
    sign = torch.sign(Y[piv, torch.arange(Y.shape[1], device=Y.device)])
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return vals, Y * sign[None, :]


def _sym_operator(W: sp.csr_matrix, kind: str) -> sp.csr_matrix:
    """The symmetric operator whose eigenvectors are solved for (D - W, or I - D^-1/2 W D^-1/2)."""
    return laplacian(W, "unnormalized" if kind == "unnormalized" else "sym")


def spectral_embedding(
    x: Any,
    n_components: int | None = None,
    /,
    *,
    n_neighbors: int = 50,
    sigma_mode: str = "local",
    sigma_neighbor: int = 7,
    sigma_value: float | None = None,
    symmetrize: str | None = None,
    kernel: str = "paper",
    laplacian: str = "sym",
    drop_first: bool = False,
    diffusion_time: int | None = None,
    solver: str = "auto",
    dense_max_nodes: int = 4000,
    device: str | torch.device = "cpu",
    seed: int = 0,
    **config: Any,
) -> SpectralResult:
    """Exact spectral embedding of the points ``x`` (paper Eq. 3; Eq. 4 for ``sym``, Eq. 6 for
    diffusion maps): the ``n_components`` smallest eigenpairs of the kNN graph's Laplacian.

    ``drop_first`` skips the first eigenpair and still returns ``n_components`` columns.
    ``diffusion_time`` t: diffusion-map coordinates ``(1 - lambda)^t psi``.
    ``solver``: ``dense`` (LAPACK on CPU, ``torch.linalg.eigh`` on CUDA), ``sparse`` (Lanczos per
    connected component, checked), ``auto`` (dense up to ``dense_max_nodes``).
    Keyword names are the ``graph`` config keys, so ``spectral_embedding(x, K, **graph_cfg)``
    works; a ``n_components`` key in ``graph_cfg`` is used only when ``K`` is not given.
    """
    K = _resolve_k(n_components, dict(config), "spectral_embedding")
    _check_options(laplacian, solver, diffusion_time)
    W = affinity(
        x,
        n_neighbors=n_neighbors,
        sigma_mode=sigma_mode,
        sigma_neighbor=sigma_neighbor,
        sigma_value=sigma_value,
        symmetrize=symmetrize,
        kernel=kernel,
        device=device,
    )
    return spectral_embedding_from_affinity(
        W,
        K,
        laplacian=laplacian,
        drop_first=drop_first,
        diffusion_time=diffusion_time,
        solver=solver,
        dense_max_nodes=dense_max_nodes,
        device=device,
        seed=seed,
    )


def spectral_embedding_from_affinity(
    W: Any,
    n_components: int,
    *,
    laplacian: str = "sym",
    drop_first: bool = False,
    diffusion_time: int | None = None,
    solver: str = "auto",
    dense_max_nodes: int = 4000,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> SpectralResult:
    """:func:`spectral_embedding` of a given symmetric affinity ``W`` (any graph, not only kNN)."""
    K = _resolve_k(n_components, {}, "spectral_embedding_from_affinity")
    _check_options(laplacian, solver, diffusion_time)
    dev = _device(device)
    W = sp.csr_matrix(W, dtype=np.float64)
    n = W.shape[0]
    if W.shape != (n, n):
        raise DataError(f"W: expected a square affinity matrix, got shape {W.shape}")
    if (W.data < 0).any() or not np.isfinite(W.data).all():
        raise DataError("W: affinities must be finite and non-negative")
    n_eig = K + int(bool(drop_first))
    if n_eig > n:
        raise DataError(f"graph.n_components={K} (drop_first={drop_first}) exceeds the {n} points")
    deg = np.asarray(W.sum(axis=1)).ravel()
    if laplacian != "unnormalized":
        _check_degrees(deg)
    n_cc, labels = connected_components(W, directed=False)
    L = _sym_operator(W, laplacian)
    use_dense = solver == "dense" or (solver == "auto" and n <= dense_max_nodes)
    if use_dense:
        vals_t, U_t = dense_smallest(L.toarray(), n_eig, device=dev)
        vals_t, U_t = vals_t.cpu(), U_t.cpu()
        name = f"dense-{dev.type}"
    else:
        null_w = np.ones(n) if laplacian == "unnormalized" else np.sqrt(deg)
        vals_np, U_np, info = sparse_smallest(
            L, n_eig, null_weights=null_w, labels=labels, seed=seed
        )
        vals_t, U_t = torch.from_numpy(vals_np), torch.from_numpy(U_np)
        name = f"sparse:{info.summary}"
    U_np, vals_np = U_t.numpy(), vals_t.numpy()
    max_res = float(np.linalg.norm(L @ U_np - U_np * vals_np, axis=0).max())
    vals_t, Y = _postprocess(
        vals_t,
        U_t,
        torch.from_numpy(deg),
        kind=laplacian,
        drop_first=drop_first,
        diffusion_time=diffusion_time,
    )
    log.debug("spectral embedding: n=%d K=%d %s, %d component(s)", n, K, name, n_cc)
    return SpectralResult(
        embedding=Y.numpy().astype(np.float32),
        eigenvalues=vals_t.numpy().astype(np.float64),
        degrees=deg,
        laplacian=laplacian,
        solver=name,
        n_connected_components=int(n_cc),
        max_residual=max_res,
        diffusion_time=diffusion_time,
        drop_first=bool(drop_first),
    )


def batch_affinity(
    x: torch.Tensor,
    *,
    n_neighbors: int = 50,
    sigma_mode: str = "local",
    sigma_neighbor: int = 7,
    sigma_value: float | None = None,
    symmetrize: str | None = None,
    kernel: str = "paper",
    **_ignored: Any,
) -> torch.Tensor:
    """Dense ``(m, m)`` float64 affinity of one batch on ``x``'s device; same as :func:`affinity`.

    For losses that need ``W`` (SpectralNet, SpecNet2). No gradient flows through it.
    """
    symmetrize = _resolve_symmetrize(symmetrize, kernel)
    with torch.no_grad():
        if sigma_mode not in SIGMA_MODES:
            raise ConfigError(f"graph.sigma_mode: {sigma_mode!r} is not one of {list(SIGMA_MODES)}")
        xt = _as_tensor(x.detach(), x.device)
        m = xt.shape[0]
        kk = _neighbours_needed(m, int(n_neighbors), sigma_mode, int(sigma_neighbor), kernel)
        dist, idx = _knn_torch(xt, kk, chunk_size=m)
        w = _kernel_weights(
            dist,
            idx,
            n_neighbors=int(n_neighbors),
            sigma_mode=sigma_mode,
            sigma_neighbor=int(sigma_neighbor),
            sigma_value=sigma_value,
            kernel=kernel,
        )
        idx = idx[:, : w.shape[1]]
        W = torch.zeros((m, m), dtype=torch.float64, device=xt.device).scatter_(1, idx, w)
        if kernel == "authors":  # the point itself is one of its k neighbours
            W.diagonal().fill_(1.0)
        if symmetrize == "sum":
            W = W + W.T
        elif symmetrize == "mean":
            W = (W + W.T) * 0.5
        else:
            W = torch.maximum(W, W.T)
    return W


def batch_spectral_embedding(
    x: torch.Tensor,
    n_components: int | None = None,
    /,
    *,
    n_neighbors: int = 50,
    sigma_mode: str = "local",
    sigma_neighbor: int = 7,
    sigma_value: float | None = None,
    symmetrize: str | None = None,
    kernel: str = "paper",
    laplacian: str = "sym",
    drop_first: bool = False,
    diffusion_time: int | None = None,
    dtype: torch.dtype = torch.float32,
    **config: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact spectral embedding of one batch (Eq. 3/4/6), on ``x``'s device, without gradient.

    Same graph, operator, scale (``sqrt(m)``) and sign as ``spectral_embedding(..., solver=
    "dense")`` on the same points. Eigen-solve on CPU: for a connected batch of at least
    ``LANCZOS_MIN_NODES`` nodes with a normalised operator, the sparse graph is built from the
    kNN lists and Lanczos runs on its normalised adjacency (about 4.5 ms for 11 pairs of 512
    nodes on 2 cores); else the dense graph and LAPACK MRRR for the K wanted pairs (12 ms;
    ``torch.linalg.eigh`` took 100 ms); ``torch.linalg.eigh`` in float64 on CUDA. Returns ``(embedding (m, K) in dtype, eigenvalues (K,) float64)``.
    Extra keys of a ``graph`` config (``solver``, ``dense_max_nodes``, ...) are accepted and
    ignored.
    """
    for key in ("solver", "dense_max_nodes", "device", "seed"):
        config.pop(key, None)
    K = _resolve_k(n_components, config, "batch_spectral_embedding")
    _check_options(laplacian, "dense", diffusion_time)
    graph = {
        "n_neighbors": n_neighbors,
        "sigma_mode": sigma_mode,
        "sigma_neighbor": sigma_neighbor,
        "sigma_value": sigma_value,
        "symmetrize": symmetrize,
        "kernel": kernel,
    }
    m = x.shape[0]
    n_eig = K + int(bool(drop_first))
    if n_eig > m:
        raise DataError(
            f"graph.n_components={K} (drop_first={drop_first}) exceeds the batch of {m}"
        )
    solved = W = None
    if x.device.type == "cpu" and laplacian != "unnormalized" and m >= LANCZOS_MIN_NODES:
        # the batch graph as sparse as it is: O(m k) to build, Lanczos on it
        Ws = affinity(x.detach(), **graph)
        deg = torch.from_numpy(np.asarray(Ws.sum(axis=1)).ravel())
        _check_degrees(deg.numpy())
        solved = normalized_smallest_lanczos(Ws, n_eig)
        if solved is None:  # disconnected or not converged: the dense solve
            W = torch.from_numpy(Ws.toarray())
    if solved is None:
        if W is None:
            W = batch_affinity(x, **graph)
            deg = W.sum(dim=1)
            if laplacian != "unnormalized":
                _check_degrees(deg.cpu().numpy())
        if laplacian == "unnormalized":
            L = torch.diag(deg) - W
        else:
            s = deg.rsqrt()
            L = torch.eye(m, dtype=W.dtype, device=W.device) - s[:, None] * W * s[None, :]
        solved = dense_smallest(L, n_eig, device=W.device)
    vals, U = solved
    vals, U, deg = vals.to(x.device), U.to(x.device), deg.to(x.device)
    vals, Y = _postprocess(
        vals, U, deg, kind=laplacian, drop_first=drop_first, diffusion_time=diffusion_time
    )
    return Y.to(dtype), vals
