"""Affine alignment of a batch embedding onto the reference (BASiS, Sec. 4.2 and 7.2).

Each mini-batch's exact eigenvectors live in their own basis (sign flips, rotations inside
eigenspaces, small distortions). The ``l`` anchors appear in every batch and in the reference,
so the affine map ``T = [A | b]`` in ``R^{K x (K+1)}`` minimising

    sum_i || phi_i^{a,ref} - (A phi_i^a + b) ||^2          (Eq. 12)
  = sum_i || phi_i^{a,ref} - T [phi_i^a; 1] ||^2            (Eq. 13)

carries the whole batch onto the reference, ``phi <- T [phi; 1]`` (Eq. 14). The map is fitted
inside RANSAC as in the paper's supplementary (Sec. 7.3.3): ``n_hypotheses`` random subsets of
``sample_size`` anchors, each fitted by least squares; an anchor is an inlier of a hypothesis
when its reconstruction error ``||phi^{a,ref}_i - T [phi^a_i; 1]||_2`` (Euclidean norm of the
K-vector) is below the tolerance; the hypothesis with the most inliers wins and the map is
refitted on its inliers, if there are at least ``min_inliers`` of them (else on all anchors:
a *fallback*).

Scale (ours; the paper's absolute tolerance 0.1 assumes O(1) errors): eigenvectors here are
scaled by ``sqrt(m)``, so each coordinate has RMS 1 and a K-vector's norm grows like
``sqrt(K)``; a batch's anchors then miss the reference by about 0.1-0.2 of the reference's
scale whatever K (measured: digits, Fashion-MNIST, the toys), so at K = 10 almost no anchor
was within 0.1. With ``relative=True`` the tolerance is a fraction of the reference anchors'
RMS distance from their centroid.

The trivial eigenvector (kept with ``drop_first=False``) is nearly constant, so in ``[phi, 1]``
it is nearly collinear with the intercept (condition 13-20 where the rest gives 1.3-2.2).
It is an eigenvector of its own eigenvalue 0 and never mixes with the others, so with
``trivial_first=True`` column 0 is mapped by a scale alone and the other columns by an affine
map of the other columns: the same family of maps for eigenvectors, well posed.

All hypotheses are solved in one batched QR factorisation and scored in one batched product,
in float64 whatever the input dtype; results come back in the input dtype and device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch
from torch import Tensor

from basis_nmce.errors import DataError

__all__ = ["AlignmentResult", "anchor_scale", "apply_affine", "fit_affine", "ransac_affine"]

#: A hypothesis whose design matrix ``[src, 1]`` has ``min |R_ii| <= _RCOND * max |R_ii|`` in
#: its QR factor (a lower bound of its condition number above 1e10) is treated as degenerate.
_RCOND = 1e-10


@dataclass
class AlignmentResult:
    """Outcome of :func:`ransac_affine`.

    ``inliers`` is the consensus set of the best hypothesis (anchors within ``tolerance``, the
    absolute value used) and ``inlier_ratio`` its fraction of the ``l`` anchors. ``transform``
    is the least-squares map (Eq. 13) refitted on the *fit set*: the inliers, or all anchors
    when ``fallback`` is set (fewer than ``min_inliers`` inliers). ``residual`` (RMS of
    ``||dst_i - T [src_i; 1]||``) and ``condition_number`` (of the affine design matrix,
    ``inf`` when singular) are computed on the fit set. ``heldout_error`` is the median over
    all anchors of the error of a map that did not see the anchor: the leave-one-out residual
    (``r_i / (1 - h_ii)``, ``h`` the hat matrix) for the fit set, the plain residual for the
    rest.
    """

    transform: Tensor
    inliers: Tensor
    residual: float
    inlier_ratio: float
    condition_number: float
    fallback: bool = False
    n_valid_hypotheses: int = 0
    tolerance: float = math.nan
    heldout_error: float = math.nan


# --------------------------------------------------------------------------- validation
def _check_pair(src: Tensor, dst: Tensor) -> tuple[int, int]:
    """Validate matching ``(..., l, K)`` anchor embeddings; return ``(l, K)``."""
    for name, t in (("src", src), ("dst", dst)):
        if not isinstance(t, Tensor):
            raise DataError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise DataError(f"{name} must have shape (..., l, K), got {tuple(t.shape)}")
    if src.shape != dst.shape:
        raise DataError(
            f"src and dst must have the same shape (..., l, K): src {tuple(src.shape)}, "
            f"dst {tuple(dst.shape)}"
        )
    if src.device != dst.device:
        raise DataError(f"src is on {src.device} but dst is on {dst.device}")
    l, k = src.shape[-2], src.shape[-1]
    if k < 1:
        raise DataError(f"src must have at least one embedding dimension, got shape {src.shape}")
    if l < k + 1:
        raise DataError(
            f"need at least K+1 = {k + 1} anchors for a {k}-dimensional affine map, got {l}; "
            "raise anchors.per_cluster or lower n_components"
        )
    for name, t in (("src", src), ("dst", dst)):
        if not bool(torch.isfinite(t).all()):
            raise DataError(f"{name} contains NaN or infinite values")
    return l, k


def _out_dtype(*tensors: Tensor) -> torch.dtype:
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype if dtype.is_floating_point else torch.get_default_dtype()


def _design(src: Tensor) -> Tensor:
    """Homogeneous coordinates ``[src, 1]`` (Eq. 13), shape ``(..., l, K+1)``."""
    return torch.cat([src, src.new_ones((*src.shape[:-1], 1))], dim=-1)


# --------------------------------------------------------------------------- Eq. 12-14
def _assemble(scale: Tensor | None, rest: Tensor, k: int) -> Tensor:
    """``T (..., K, K+1)`` from the trivial column's scale ``(...)`` and the affine map of the
    other columns ``(..., K-1, K)`` (``scale`` None: ``rest`` is the whole map)."""
    if scale is None:
        return rest
    T = torch.zeros((*scale.shape, k, k + 1), dtype=rest.dtype, device=rest.device)
    T[..., 0, 0] = scale
    T[..., 1:, 1:] = rest
    return T


def fit_affine(
    src: Tensor, dst: Tensor, weights: Tensor | None = None, *, trivial_first: bool = False
) -> Tensor:
    """Least-squares affine map ``T = [A | b]`` from ``src`` onto ``dst`` (Eq. 12-13).

    ``src`` is the batch anchors' embedding ``phi^a``, ``dst`` the reference ``phi^{a,ref}``,
    both ``(..., l, K)``; optional non-negative ``weights`` ``(..., l)`` weight each anchor's
    squared error (a 0/1 mask fits a subset). ``trivial_first``: column 0 is the trivial
    eigenvector, mapped by a scale alone (no intercept, no mixing); the other columns by an
    affine map of the other columns. Solved with ``torch.linalg.lstsq`` in float64; returns
    ``(..., K, K+1)`` in the promoted input dtype, on the input device. On CPU the solver
    (``gelsy``) returns a finite basic solution for rank-deficient anchors; on CUDA only
    ``gels`` exists, which assumes full rank.
    """
    _check_pair(src, dst)
    out = _out_dtype(src, dst)
    x = src.to(torch.float64)
    y = dst.to(torch.float64)
    if weights is not None:
        if not isinstance(weights, Tensor):
            weights = torch.as_tensor(weights)
        if weights.shape != src.shape[:-1]:
            raise DataError(
                f"weights must have shape {tuple(src.shape[:-1])} (one per anchor), "
                f"got {tuple(weights.shape)}"
            )
        w = weights.to(device=src.device, dtype=torch.float64)
        if not bool((torch.isfinite(w) & (w >= 0)).all()):
            raise DataError("weights must be finite and non-negative")
    else:
        w = torch.ones(src.shape[:-1], dtype=torch.float64, device=src.device)
    sw = w.sqrt().unsqueeze(-1)
    scale = None
    if trivial_first:
        scale = _scale_fit(x[..., 0] * sw[..., 0], y[..., 0] * sw[..., 0])
        x, y = x[..., 1:], y[..., 1:]
    rest = torch.linalg.lstsq(_design(x) * sw, y * sw).solution.mT  # (..., K', K'+1)
    return _assemble(scale, rest, src.shape[-1]).to(out)


def _scale_fit(s: Tensor, d: Tensor) -> Tensor:
    """Least-squares scale ``c`` of ``d ~ c s`` along the last dimension (0 when ``s = 0``)."""
    ss = (s * s).sum(dim=-1)
    return torch.where(ss > 0, (s * d).sum(dim=-1) / ss.clamp_min(1e-300), 0.0)


def apply_affine(T: Tensor, phi: Tensor) -> Tensor:
    """Align an embedding: ``phi <- T [phi; 1]`` (Eq. 14).

    ``T`` is ``(..., K', K+1)``, ``phi`` is ``(..., n, K)``; batch dimensions broadcast.
    Returns ``(..., n, K')`` in the promoted dtype of ``T`` and ``phi``.
    """
    if T.ndim < 2 or phi.ndim < 2:
        raise DataError(
            f"T must be (..., K', K+1) and phi (..., n, K), got {tuple(T.shape)} and "
            f"{tuple(phi.shape)}"
        )
    if T.shape[-1] != phi.shape[-1] + 1:
        raise DataError(
            f"T has {T.shape[-1]} columns but phi has {phi.shape[-1]} dimensions; an affine map "
            "of a K-dimensional embedding has K+1 columns"
        )
    dtype = _out_dtype(T, phi)
    T, phi = T.to(dtype), phi.to(dtype)
    return phi @ T[..., :-1].mT + T[..., -1].unsqueeze(-2)


# --------------------------------------------------------------------------- RANSAC
def _canonical_order(src: Tensor, dst: Tensor) -> Tensor:
    """A permutation that sorts the anchors (rows of ``[src, dst]``) lexicographically.

    RANSAC draws subsets by position; running it on canonically ordered anchors makes the
    result independent of the order the anchors were given in. A single sort on a fixed
    generic projection decides almost always; rows sharing a key but differing fall back to
    a full lexicographic sort. Identical rows may stay in any order: they are interchangeable.
    """
    rows = torch.cat([src, dst], dim=-1)
    n_col = rows.shape[-1]
    w = (torch.arange(1, n_col + 1, dtype=torch.float64, device=rows.device).sqrt() * math.pi) % 1
    key = rows @ (w + 0.5)
    perm = torch.sort(key, stable=True).indices
    same_key = key[perm][1:] == key[perm][:-1]
    if bool(same_key.any()):
        sorted_rows = rows[perm]
        differ = (sorted_rows[1:] != sorted_rows[:-1]).any(dim=-1)
        if bool((same_key & differ).any()):
            perm = torch.arange(rows.shape[0], device=rows.device)
            for c in range(n_col - 1, -1, -1):
                perm = perm[torch.sort(rows[perm, c], stable=True).indices]
    return perm


def _draw_subsets(
    n_hypotheses: int, l: int, size: int, generator: torch.Generator | None, device: torch.device
) -> Tensor:
    """``(n_hypotheses, size)`` anchor indices, without replacement within each row."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n_hypotheses, l, generator=generator, device=gen_device, dtype=torch.float64)
    # the ``size`` smallest of l iid uniforms: a uniformly random subset (O(l) per row)
    idx = torch.topk(u, size, dim=-1, largest=False, sorted=False).indices
    return torch.sort(idx, dim=-1).values.to(device)


def _solve_hypotheses(src: Tensor, dst: Tensor, trivial_first: bool) -> tuple[Tensor, Tensor]:
    """Batched least squares for all hypotheses via one QR: ``T (H, K, K+1)``, ``valid (H,)``.

    ``src``, ``dst``: ``(H, s, K)``. Degenerate subsets (the affine design numerically rank
    deficient) are flagged invalid and their maps zeroed, so no NaN reaches the scoring.
    """
    k = src.shape[-1]
    scale = None
    valid = torch.ones(src.shape[0], dtype=torch.bool, device=src.device)
    if trivial_first:
        scale = _scale_fit(src[..., 0], dst[..., 0])
        valid = src[..., 0].abs().amax(dim=-1) > 0
        src, dst = src[..., 1:], dst[..., 1:]
    q, r = torch.linalg.qr(_design(src))  # (H, s, K'+1)
    d = r.diagonal(dim1=-2, dim2=-1).abs()
    valid = valid & (d.amin(dim=-1) > _RCOND * d.amax(dim=-1))
    eye = torch.eye(r.shape[-1], dtype=r.dtype, device=r.device)
    r = torch.where(valid[:, None, None], r, eye)  # keep the triangular solve finite
    sol = torch.linalg.solve_triangular(r, q.mT @ dst, upper=True)  # (H, K'+1, K')
    T = _assemble(scale, sol.mT, k)
    return torch.where(valid[:, None, None], T, 0.0), valid


def _affine_design(src: Tensor, trivial_first: bool) -> Tensor:
    """The design matrix of the affine part: ``[src, 1]``, without column 0 if trivial."""
    return _design(src[..., 1:] if trivial_first else src)


def _leverage(x: Tensor) -> Tensor:
    """Diagonal of the hat matrix ``X (X^T X)^-1 X^T``: the squared row norms of Q."""
    q, _ = torch.linalg.qr(x)
    return q.square().sum(dim=-1)


def _heldout_error(src: Tensor, err_vec: Tensor, fit_mask: Tensor, trivial_first: bool) -> float:
    """Median over anchors of the error of a map fitted without that anchor (see
    :class:`AlignmentResult`): ``r_i / (1 - h_ii)`` per block of the map on the fit set,
    the plain residual off it. ``err_vec``: ``(l, K)`` residual vectors of the final map."""
    idx = torch.nonzero(fit_mask).flatten()
    k = src.shape[-1]
    if trivial_first:
        blocks = [(slice(0, 1), src[idx, :1])]
        if k > 1:
            blocks.append((slice(1, None), _design(src[idx, 1:])))
    else:
        blocks = [(slice(None), _design(src[idx]))]
    loo = err_vec.clone()
    for cols, x in blocks:
        h = _leverage(x)
        factor = torch.where(h < 1 - 1e-9, 1.0 / (1.0 - h).clamp_min(1e-9), math.inf)
        loo[idx, cols] = err_vec[idx, cols] * factor[:, None]
    return float(torch.quantile(torch.linalg.vector_norm(loo, dim=-1), 0.5))


def _condition_number(x: Tensor) -> float:
    s = torch.linalg.svdvals(x)
    smin, smax = float(s.min()), float(s.max())
    return math.inf if smin <= 0.0 else smax / smin


def anchor_scale(dst: Tensor) -> float:
    """RMS distance of the reference anchors from their centroid: the coordinates' scale that a
    relative tolerance multiplies (about ``sqrt(K)`` for eigenvectors scaled by ``sqrt(m)``)."""
    d = dst.to(torch.float64)
    return float((d - d.mean(dim=0)).square().sum(dim=-1).mean().sqrt())


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def ransac_affine(
    src: Tensor,
    dst: Tensor,
    *,
    n_hypotheses: int = 100,
    sample_size: int = 20,
    tolerance: float = 0.1,
    relative: bool = False,
    min_inliers: int | None = None,
    trivial_first: bool = False,
    generator: torch.Generator | None = None,
) -> AlignmentResult:
    """Robust affine map ``src -> dst`` (Eq. 13) by RANSAC, as in the paper's Sec. 7.3.3.

    ``src`` is the batch anchors' embedding ``phi^a`` and ``dst`` the reference
    ``phi^{a,ref}``, both ``(l, K)``. Draws ``n_hypotheses`` subsets of ``sample_size``
    anchors (distinct within a subset), fits each by least squares (one batched QR), counts
    the anchors with ``||dst_i - T [src_i; 1]||_2 < tol``, keeps the hypothesis with most
    inliers (ties: smaller RMS error over its inliers, then the first drawn) and refits on its
    inliers. ``tol`` is ``tolerance``, or with ``relative`` ``tolerance * anchor_scale(dst)``.
    Degenerate subsets score -1. If the best hypothesis has fewer than ``min_inliers``
    inliers (default ``4 (K + 1)``, at most ``l``: a map of ``K + 1`` unknowns per coordinate
    refitted on fewer would carry much of their noise) the map is fitted on all anchors and
    ``fallback`` is set. ``trivial_first``: column 0 is the trivial eigenvector (module
    docstring).

    ``sample_size`` below ``K + 1`` is raised to ``K + 1`` (the minimal sample) and above
    ``l`` clamped to ``l``. Anchors are put in a canonical (sorted) order first, so the result
    does not depend on their order; with the same ``generator`` state it is reproducible.
    Computation in float64; ``transform`` is returned in the input dtype and device.
    """
    if src.ndim != 2:
        raise DataError(f"src must have shape (l, K), got {tuple(src.shape)}")
    l, k = _check_pair(src, dst)
    n_hypotheses = _positive_int(n_hypotheses, "n_hypotheses")
    if isinstance(sample_size, bool) or not isinstance(sample_size, Integral):
        raise ValueError(f"sample_size must be an integer, got {sample_size!r}")
    if not (isinstance(tolerance, Real) and math.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
    min_fit = min(
        l, 4 * (k + 1) if min_inliers is None else _positive_int(min_inliers, "min_inliers")
    )
    size = min(max(int(sample_size), k + 1), l)

    out = _out_dtype(src, dst)
    device = src.device
    perm = _canonical_order(src.to(torch.float64), dst.to(torch.float64))
    s64 = src.to(torch.float64)[perm]
    d64 = dst.to(torch.float64)[perm]
    tol = float(tolerance) * (anchor_scale(d64) if relative else 1.0)

    idx = _draw_subsets(n_hypotheses, l, size, generator, device)  # (H, s)
    t_h, valid = _solve_hypotheses(s64[idx], d64[idx], trivial_first)  # (H, K, K+1), (H,)

    # all hypotheses scored in one product: [src, 1, dst] (l, 2K+1) @ [T^T; -I] (2K+1, H*K)
    h, kk = t_h.shape[0], k + 1
    neg_eye = -torch.eye(k, dtype=torch.float64, device=device).repeat(1, h)
    w = torch.cat([t_h.permute(2, 0, 1).reshape(kk, h * k), neg_eye])  # (2K+1, H*K)
    diff = (torch.cat([_design(s64), d64], dim=1) @ w).view(l, h, k)  # T [src; 1] - dst
    err = torch.linalg.vector_norm(diff, dim=-1).T  # (H, l)
    inl = (err < tol) & valid[:, None]
    count = inl.sum(dim=-1)
    rms = ((err.square() * inl).sum(dim=-1) / count.clamp_min(1)).sqrt()
    score = torch.where(valid, count, -1)
    best_count = score.max()
    rms = torch.where((score == best_count) & (count > 0), rms, math.inf)
    best = int(torch.argmin(rms))  # first of the smallest residuals among the top scores

    inliers_c = inl[best]
    n_best = int(best_count)
    fallback = n_best < min_fit
    fit_mask = torch.ones_like(inliers_c) if fallback else inliers_c
    T = fit_affine(s64, d64, weights=fit_mask.to(torch.float64), trivial_first=trivial_first)

    err_vec = apply_affine(T, s64) - d64
    residual = float(torch.linalg.vector_norm(err_vec[fit_mask], dim=-1).square().mean().sqrt())
    cond = _condition_number(_affine_design(s64[fit_mask], trivial_first))
    heldout = _heldout_error(s64, err_vec, fit_mask, trivial_first)

    inliers = torch.empty_like(inliers_c)
    inliers[perm] = inliers_c
    return AlignmentResult(
        transform=T.to(out),
        inliers=inliers,
        residual=residual,
        inlier_ratio=max(n_best, 0) / l,
        condition_number=cond,
        fallback=fallback,
        n_valid_hypotheses=int(valid.sum()),
        tolerance=tol,
        heldout_error=heldout,
    )
