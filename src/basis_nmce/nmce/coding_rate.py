"""Coding rates and the TCR / NMCE objectives (NMCE paper, Eqs. 2-5; MCR^2, Yu et al. 2020).

Conventions
-----------
``Z`` is an ``(m, d)`` tensor whose rows are samples (callers put them on the unit sphere).
The Gaussian coding rate (NMCE Eq. 2, with cov(Z) = Z^T Z / m) is::

    R(Z, eps) = 1/2 logdet(I + d / (m eps^2) Z^T Z)

**eps is the paper's epsilon (the distortion), never its square.** The authors' public code
takes ``--eps`` as eps^2 (its scale is ``d / (m * eps)``); convert a value from that code, or
from a table that quotes it, with :func:`eps_from_authors_code` (``sqrt``), and back with
:func:`authors_code_eps`.

The cluster rate (MCR^2 with soft memberships, summed in NMCE Eq. 3-4) is::

    R_c(Z, Pi, eps) = sum_j tr(Pi_j) / (2m) logdet(I + d / (tr(Pi_j) eps^2) Z^T Pi_j Z)

with ``Pi_j = diag(pi[:, j])``. Log-determinants go through a Cholesky factor of the SPD matrix
``I + a G`` in float32 or wider (half inputs are upcast, autocast is switched off inside), with an
eigenvalue fallback when the factorisation fails.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from basis_nmce.errors import DataError

__all__ = [
    "authors_code_eps",
    "cluster_coding_rate",
    "coding_rate",
    "eps_from_authors_code",
    "gumbel_softmax_memberships",
    "nmce_loss",
    "total_coding_rate_loss",
]

GramForm = Literal["auto", "feature", "sample"]
TcrMode = Literal["mean_of_views", "view_mean"]

# Largest number of elements of the (k, m, d) weighted-feature intermediate built at once by
# cluster_coding_rate; larger problems are processed in chunks of clusters.
_CHUNK_ELEMENTS = 1 << 25


def eps_from_authors_code(code_eps: float) -> float:
    """Paper epsilon from the authors' code's ``--eps`` (which is epsilon squared): ``sqrt``."""
    return math.sqrt(_positive(code_eps, "code_eps"))


def authors_code_eps(eps: float) -> float:
    """The authors' code's ``--eps`` (epsilon squared) for a paper epsilon ``eps``."""
    eps = _check_eps(eps)
    return eps * eps


# --------------------------------------------------------------------------- helpers


def _positive(value: float, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _check_eps(eps: float) -> float:
    return _positive(eps, "eps")


def _check_matrix(z: Tensor, name: str) -> tuple[int, int]:
    if not isinstance(z, Tensor) or z.dim() != 2:
        shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
        raise DataError(f"{name} must be a 2-D tensor (samples, dims), got {shape}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise DataError(
            f"{name} must have at least one sample and one dimension, got {tuple(z.shape)}"
        )
    if not z.is_floating_point():
        raise DataError(f"{name} must be a floating-point tensor, got {z.dtype}")
    return int(z.shape[0]), int(z.shape[1])


def _compute_dtype(t: Tensor, compute_dtype: torch.dtype | None) -> torch.dtype:
    """float32 or wider: half/bfloat16 inputs are upcast, float64 stays float64."""
    if compute_dtype is not None:
        if compute_dtype not in (torch.float32, torch.float64):
            raise ValueError(f"compute_dtype must be float32 or float64, got {compute_dtype}")
        return compute_dtype
    return torch.promote_types(t.dtype, torch.float32)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Switch autocast off for ``device`` (a no-op where autocast does not exist)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _logdet_i_plus(gram: Tensor, scale: Tensor | float) -> Tensor:
    """``logdet(I + scale * gram)`` for PSD ``gram`` of shape ``(..., n, n)``; returns ``(...)``.

    Cholesky of the SPD matrix (eigenvalues >= 1), ``2 sum log diag(L)``; if any factorisation in
    the batch fails (non-finite or badly rounded input), falls back to the eigenvalues of the PSD
    part, clamped at 0: ``sum log1p(lambda_i)``.
    """
    n = gram.shape[-1]
    eye = torch.eye(n, dtype=gram.dtype, device=gram.device)
    scaled = scale * gram
    chol, info = torch.linalg.cholesky_ex(eye + scaled)
    if bool((info == 0).all()):
        return 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(dim=-1)
    warnings.warn(
        "Cholesky factorisation of I + a Z^T Z failed; using the eigenvalue route instead",
        RuntimeWarning,
        stacklevel=3,
    )
    sym = 0.5 * (scaled + scaled.mT)
    return torch.log1p(torch.linalg.eigvalsh(sym).clamp_min(0.0)).sum(dim=-1)


def _mean_cosine(z1: Tensor, z2: Tensor) -> Tensor:
    return F.cosine_similarity(z1, z2, dim=1, eps=1e-12).mean()


# --------------------------------------------------------------------------- rates


def coding_rate(
    z: Tensor,
    eps: float,
    *,
    form: GramForm = "auto",
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """Gaussian coding rate ``R(Z, eps) = 1/2 logdet(I + d/(m eps^2) Z^T Z)`` (NMCE Eq. 2).

    ``z`` is ``(m, d)`` with rows as samples; ``eps`` is the paper's distortion epsilon (see the
    module docstring for the authors' code's convention). ``form="auto"`` uses the smaller Gram
    matrix: ``Z^T Z`` (d x d, ``"feature"``) when d <= m, else ``Z Z^T`` (m x m, ``"sample"``);
    both give the same value (Sylvester: det(I + a Z^T Z) = det(I + a Z Z^T), NMCE Eq. 6).
    Computed in float32 or wider (``compute_dtype`` forces float32/float64) with autocast off;
    returns a scalar of that dtype.
    """
    m, d = _check_matrix(z, "z")
    eps = _check_eps(eps)
    if form not in ("auto", "feature", "sample"):
        raise ValueError(f"form must be 'auto', 'feature' or 'sample', got {form!r}")
    dtype = _compute_dtype(z, compute_dtype)
    with _no_autocast(z.device):
        zc = z.to(dtype)
        use_feature = (d <= m) if form == "auto" else (form == "feature")
        gram = zc.mT @ zc if use_feature else zc @ zc.mT
        return 0.5 * _logdet_i_plus(gram, d / (m * eps * eps))


def cluster_coding_rate(
    z: Tensor,
    pi: Tensor,
    eps: float,
    *,
    compute_dtype: torch.dtype | None = None,
) -> Tensor:
    """Cluster coding rate ``sum_j tr(Pi_j)/(2m) logdet(I + d/(tr(Pi_j) eps^2) Z^T Pi_j Z)``.

    The compression term of MCR^2 with soft memberships (NMCE Eqs. 3-4: ``sum_i R(Z_i, eps)``
    weighted by cluster mass). ``pi`` is ``(m, k)`` with non-negative rows (soft memberships
    summing to 1). All k matrices ``I + d/eps^2 * Z^T Q_j Z`` (``Q_j = Pi_j / tr(Pi_j)``) are
    factorised by one batched Cholesky. A cluster with ``tr(Pi_j) ~ 0`` contributes 0: its
    normalisation is clamped at the dtype's machine epsilon, so value and gradient stay finite.
    With hard (one-hot) memberships this is ``sum_j (m_j/m) R(Z_j, eps)``.
    """
    m, d = _check_matrix(z, "z")
    if not isinstance(pi, Tensor) or pi.dim() != 2 or pi.shape[0] != m or pi.shape[1] == 0:
        shape = tuple(pi.shape) if isinstance(pi, Tensor) else type(pi).__name__
        raise DataError(f"pi must be a ({m}, k) tensor of memberships matching z, got {shape}")
    eps = _check_eps(eps)
    dtype = _compute_dtype(z, compute_dtype)
    with _no_autocast(z.device):
        zc = z.to(dtype)
        pc = pi.to(dtype)
        k = pc.shape[1]
        trace = pc.sum(dim=0)  # (k,) = tr(Pi_j)
        weights = pc / trace.clamp_min(torch.finfo(dtype).eps)  # (m, k) = diag of Q_j
        # (k, d, d) second moments Z^T Q_j Z, chunked over clusters to bound the (k, d, m)
        # intermediate.
        step = max(1, _CHUNK_ELEMENTS // (m * d))
        moments = torch.cat(
            [
                (zc.mT.unsqueeze(0) * weights[:, j : j + step].mT.unsqueeze(1)) @ zc
                for j in range(0, k, step)
            ],
            dim=0,
        )
        logdets = _logdet_i_plus(moments, d / (eps * eps))  # (k,)
        return (trace * logdets).sum() / (2.0 * m)


# --------------------------------------------------------------------------- objectives


def _stats_value(t: Tensor) -> float:
    return float(t.detach())


def total_coding_rate_loss(
    z1: Tensor,
    z2: Tensor,
    eps: float,
    lam: float,
    *,
    mode: TcrMode = "mean_of_views",
) -> tuple[Tensor, dict[str, float]]:
    """Total Coding Rate objective ``L_TCR = -R(Z, eps) + lam * D`` (NMCE Eq. 5).

    ``D = -mean_i cos(z1_i, z2_i)`` (Sec. 3.5, cosine similarity of two augmented views).
    ``mode="mean_of_views"``: ``R = (R(Z1) + R(Z2)) / 2``; ``mode="view_mean"``: ``R`` of the
    renormalised view mean ``normalize((z1 + z2) / 2)``. ``z1``, ``z2`` are ``(m, d)`` features
    on the unit sphere. Returns the loss (float32 or wider) and detached stats
    ``{"loss", "R", "similarity"}``.
    """
    _check_matrix(z1, "z1")
    if z2.shape != z1.shape:
        raise DataError(f"z2 must have the shape of z1 {tuple(z1.shape)}, got {tuple(z2.shape)}")
    dtype = _compute_dtype(z1, None)
    with _no_autocast(z1.device):
        a, b = z1.to(dtype), z2.to(dtype)
        if mode == "mean_of_views":
            rate = 0.5 * (coding_rate(a, eps) + coding_rate(b, eps))
        elif mode == "view_mean":
            rate = coding_rate(F.normalize(0.5 * (a + b), dim=1), eps)
        else:
            raise ValueError(f"mode must be 'mean_of_views' or 'view_mean', got {mode!r}")
        similarity = _mean_cosine(a, b)
        loss = -rate - lam * similarity
    stats = {
        "loss": _stats_value(loss),
        "R": _stats_value(rate),
        "similarity": _stats_value(similarity),
    }
    return loss, stats


def nmce_loss(
    z1: Tensor,
    z2: Tensor,
    pi1: Tensor,
    pi2: Tensor,
    eps: float,
    lam: float,
) -> tuple[Tensor, dict[str, float | list[float]]]:
    """NMCE objective ``R_c(Z_bar, Pi_bar) - R(Z_bar) + lam * D`` (NMCE Eq. 4, stages 2-3).

    ``Z_bar = normalize((z1 + z2)/2)`` and ``Pi_bar = (pi1 + pi2)/2`` (features and memberships
    averaged over the two views, Sec. 4); ``D = -mean cos(z1, z2)``. Returns the loss and detached
    stats: ``loss``, ``R``, ``Rc``, ``delta_R`` (= R - Rc), ``similarity``, ``cluster_sizes``
    (sum of ``Pi_bar`` per cluster) and ``marginal_entropy`` (nats, of the mean membership).
    """
    m, _ = _check_matrix(z1, "z1")
    if z2.shape != z1.shape:
        raise DataError(f"z2 must have the shape of z1 {tuple(z1.shape)}, got {tuple(z2.shape)}")
    if pi1.dim() != 2 or pi1.shape[0] != m or pi2.shape != pi1.shape:
        raise DataError(
            f"pi1 and pi2 must both be ({m}, k) memberships, got {tuple(pi1.shape)} and "
            f"{tuple(pi2.shape)}"
        )
    dtype = _compute_dtype(z1, None)
    with _no_autocast(z1.device):
        a, b = z1.to(dtype), z2.to(dtype)
        z_bar = F.normalize(0.5 * (a + b), dim=1)
        pi_bar = 0.5 * (pi1.to(dtype) + pi2.to(dtype))
        rate = coding_rate(z_bar, eps)
        rate_c = cluster_coding_rate(z_bar, pi_bar, eps)
        similarity = _mean_cosine(a, b)
        loss = rate_c - rate - lam * similarity
        with torch.no_grad():
            sizes = pi_bar.sum(dim=0)
            marginal = pi_bar.mean(dim=0)
            marginal = marginal / marginal.sum().clamp_min(torch.finfo(dtype).tiny)
            entropy = -torch.special.xlogy(marginal, marginal).sum()
    stats: dict[str, float | list[float]] = {
        "loss": _stats_value(loss),
        "R": _stats_value(rate),
        "Rc": _stats_value(rate_c),
        "delta_R": _stats_value(rate - rate_c),
        "similarity": _stats_value(similarity),
        "cluster_sizes": [float(s) for s in sizes.cpu().tolist()],
        "marginal_entropy": _stats_value(entropy),
    }
    return loss, stats


# --------------------------------------------------------------------------- memberships


def gumbel_softmax_memberships(
    logits: Tensor,
    tau: float,
    *,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Gumbel-softmax memberships ``softmax((log_softmax(l) + g) / tau)`` (Jang et al., 2016).

    ``g`` is standard Gumbel noise drawn from ``generator`` (on the generator's device, then
    moved to ``logits``' device). ``hard=True`` returns one-hot rows in the forward pass with the
    soft sample's gradient (straight-through). The paper's code uses ``tau = 1`` for images and
    ``0.2`` for the toy. Rows sum to 1; the result has ``logits``' dtype.
    """
    tau = _positive(tau, "tau")
    if logits.dim() < 1 or logits.shape[-1] == 0:
        raise DataError(
            f"logits must have a non-empty last (cluster) axis, got {tuple(logits.shape)}"
        )
    dtype = _compute_dtype(logits, None)
    noise_device = generator.device if generator is not None else logits.device
    exp_noise = torch.empty(logits.shape, dtype=dtype, device=noise_device)
    exp_noise.exponential_(generator=generator)  # -log(U), U ~ Uniform(0, 1)
    gumbel = -torch.log(exp_noise.clamp_min(torch.finfo(dtype).tiny)).to(logits.device)
    soft = torch.softmax((torch.log_softmax(logits.to(dtype), dim=-1) + gumbel) / tau, dim=-1)
    if hard:
        index = soft.argmax(dim=-1, keepdim=True)
        one_hot = torch.zeros_like(soft).scatter_(-1, index, 1.0)
        soft = one_hot - soft.detach() + soft
    return soft.to(logits.dtype)
