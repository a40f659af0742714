"""Exact k nearest neighbours, correct to the rounding of the true distance on every CPU.

Brute-force kNN finds neighbours fast with the squared-distance expansion
``|a|^2 + |b|^2 - 2 a.b`` (one matrix product per row chunk), but the expansion cancels: its
error is up to ``gamma_(d+8) (|a| + |b|)^2`` (``gamma_n = n u / (1 - n u)``, ``u`` the unit
roundoff; :func:`expansion_error_bound`), which in float32 changes the distances of points far
from the origin against their nearest distances, and even their order; the rounding depends on
the BLAS kernel (AVX2 and AVX-512 gave distances 1.8e-4 apart). So every row is *certified*:

1. candidates: the ``k + margin`` smallest expansion values of the row (self excluded by
   index, so duplicates still count as neighbours), in the input precision; for small sets
   (``n <= DENSE64_FACTOR (k + margin)``) the whole expansion is computed in float64 instead;
2. the candidates' squared distances in float64 (the float64 expansion on float64-centred
   coordinates), with error at most ``e_i``; the row's values are certified when ``e_i`` is
   below ``2^-3`` of the input's unit roundoff times its smallest squared distance, so that
   each distance, rounded to the input precision, is within 0.53 ulp of the true one;
3. the neighbour set is certified when the k-th candidate is no farther than the nearest a
   non-candidate can be (the largest candidate value minus the candidate search's error bound);
4. rows that fail (coordinates ~10^6 times their nearest distances, float64 inputs, near
   duplicates) get their candidates' distances directly, ``||x_i - x_j||^2`` from float64
   differences of the input values, and, if the set is still not certified, the direct
   distance to every point.

Neighbours come back sorted by distance, then index. They are exact up to ties at the
certificate's resolution; distances are within 0.53 ulp of the truth whatever the chunking,
processor or BLAS kernel. Only the route a row takes depends on the kernel.
"""

from __future__ import annotations

import math

import torch

__all__ = ["CHUNK_ELEMENTS", "DENSE64_FACTOR", "exact_knn", "expansion_error_bound"]

#: elements of one expansion chunk (2^25 = 128 MiB in float32)
CHUNK_ELEMENTS = 1 << 25
#: sets of at most this many times ``k + margin`` points are expanded in float64 at once
#: (cheaper than gathering every candidate's coordinates when the candidates are a large share)
DENSE64_FACTOR = 12
#: elements of one float64 gather of candidate coordinates (2^22 = 32 MiB)
_GATHER_ELEMENTS = 1 << 22
#: certified values err by at most this fraction of the output precision's unit roundoff
_VALUE_SLACK = 2.0**-3


def expansion_error_bound(norms: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Per-row bound on ``|fl(|a|^2 + |b|^2 - 2 a.b) - |a - b|^2|`` over every ``b``.

    ``norms``: float64 norms of the centred points ``a``, ``b``. Any summation order of a
    length-``dim`` dot product errs by at most ``gamma_dim |a| |b|`` (Higham, Accuracy and
    Stability of Numerical Algorithms, Eq. 3.5); the two squared norms by ``gamma_dim`` of
    themselves; the two additions and the rounding of the centring by a few ``u`` more.
    ``gamma_(dim + 8) (r_i + max_j r_j)^2`` covers all of it.
    """
    u = torch.finfo(dtype).eps / 2
    n_ops = dim + 8
    gamma = n_ops * u / (1 - n_ops * u)
    return gamma * (norms + norms.max()) ** 2


def _blocks(n_rows: int, per_row: int) -> tuple[range, int]:
    """Row blocks of at most ``_GATHER_ELEMENTS`` gathered elements: ``(starts, step)``."""
    step = max(1, _GATHER_ELEMENTS // max(per_row, 1))
    return range(0, n_rows, step), step


def _centred_norms64(x: torch.Tensor, mean64: torch.Tensor) -> torch.Tensor:
    """Float64 norms of ``x - mean``, a block of rows at a time (no float64 copy of ``x``)."""
    out = torch.empty(x.shape[0], dtype=torch.float64, device=x.device)
    starts, step = _blocks(x.shape[0], x.shape[1])
    for s in starts:
        out[s : s + step] = torch.linalg.vector_norm(x[s : s + step].double() - mean64, dim=1)
    return out


def _expansion64_of_candidates(
    x64: torch.Tensor, sqn64: torch.Tensor, rows: torch.Tensor, cand: torch.Tensor
) -> torch.Tensor:
    """Float64 expansion values of the candidates, from the float64-centred points ``x64``."""
    out = torch.empty(cand.shape, dtype=torch.float64, device=x64.device)
    starts, step = _blocks(len(rows), cand.shape[1] * x64.shape[1])
    for s in starts:
        r, c = rows[s : s + step], cand[s : s + step]
        dot = torch.bmm(x64[c], x64[r, :, None]).squeeze(-1)
        out[s : s + step] = sqn64[c] + sqn64[r, None] - 2.0 * dot
    return out


def _direct_sq(x: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``||x_rows[:, None] - x_cols||^2`` from float64 differences of the input values (exact,
    or within 2^-53 of exact), gathered in bounded blocks. ``cols`` is ``(r, c)``."""
    out = torch.empty(cols.shape, dtype=torch.float64, device=x.device)
    starts, step = _blocks(len(rows), cols.shape[1] * x.shape[1])
    for s in starts:
        diff = x[cols[s : s + step]].double() - x[rows[s : s + step], None, :].double()
        out[s : s + step] = (diff * diff).sum(dim=-1)
    return out


def _sort_by_distance(dist: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sort each row by (distance, index), so that ties come in index order.

    Non-negative float32 distances sort like their bit patterns, so one int64 sort of
    ``bits << 32 | index`` does it; other dtypes take a sort by index, then a stable one.
    """
    if dist.dtype == torch.float32 and idx.shape[1] and int(idx.max()) < 2**31:
        key = (dist.view(torch.int32).to(torch.int64) << 32) | idx
        key = torch.sort(key, dim=1).values
        return (key >> 32).to(torch.int32).view(torch.float32), key & 0xFFFFFFFF
    idx, by_index = torch.sort(idx, dim=1)
    dist = torch.gather(dist, 1, by_index)
    dist, order = torch.sort(dist, dim=1, stable=True)
    return dist, torch.gather(idx, 1, order)


def _full_rows(x: torch.Tensor, rows: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct distances of ``rows`` to every point, self excluded; the k nearest, sorted."""
    n, d = x.shape
    sq_out = torch.empty((len(rows), k), dtype=torch.float64, device=x.device)
    idx_out = torch.empty((len(rows), k), dtype=torch.int64, device=x.device)
    n_rows = max(1, _GATHER_ELEMENTS // n)
    n_cols = max(1, _GATHER_ELEMENTS // (n_rows * max(d, 1)))
    every = torch.arange(n, device=x.device)
    for s in range(0, len(rows), n_rows):
        r = rows[s : s + n_rows]
        sq = torch.empty((len(r), n), dtype=torch.float64, device=x.device)
        for c in range(0, n, n_cols):
            diff = x[None, c : c + n_cols, :].double() - x[r, None, :].double()
            sq[:, c : c + n_cols] = (diff * diff).sum(dim=-1)
        sq[torch.arange(len(r), device=x.device), r] = math.inf
        sq, idx = _sort_by_distance(sq, every.expand(len(r), n))
        sq_out[s : s + n_rows], idx_out[s : s + n_rows] = sq[:, :k], idx[:, :k]
    return sq_out, idx_out


def exact_knn(
    x: torch.Tensor, k: int, chunk_size: int | None = None, margin: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact kNN (self excluded) of the rows of ``x``: ``(distances, indices)``, ascending.

    ``x`` is a floating ``(n, d)`` tensor (float32 or float64), ``1 <= k <= n - 1``.
    ``chunk_size`` rows are expanded at a time (default: about 2^25 values per chunk);
    ``margin`` extra candidates per row (default ``max(8, k // 4)``) trade speed against the
    share of rows recomputed against every point. Neither changes the result beyond ties at
    the certificate's resolution. Distances come back in ``x``'s dtype, indices int64, both
    ``(n, k)``, sorted by distance and then by index.
    """
    n, d = x.shape
    out_dtype = x.dtype
    margin = max(8, k // 4) if margin is None else int(margin)
    kc = min(n - 1, k + margin)
    mean64 = x.mean(dim=0, keepdim=True, dtype=torch.float64)
    x64 = x.double() - mean64  # centred (the float64 expansion's input)
    sqn64 = (x64 * x64).sum(dim=1)
    norms64 = sqn64.sqrt()
    # the candidate search: float64 for small sets, else in the input precision
    dense64 = out_dtype == torch.float64 or n <= DENSE64_FACTOR * kc
    xs = x64 if dense64 else x - mean64.to(out_dtype)
    sqn = sqn64 if dense64 else (xs * xs).sum(dim=1)
    e_search = expansion_error_bound(norms64, d, xs.dtype)
    e_value = expansion_error_bound(norms64, d, torch.float64)
    u_out = torch.finfo(out_dtype).eps / 2
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(n, 1))
    chunk_size = int(min(max(chunk_size, 1), n))
    dist = torch.empty((n, k), dtype=out_dtype, device=x.device)
    idx = torch.empty((n, k), dtype=torch.int64, device=x.device)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        rows = torch.arange(start, stop, device=x.device)
        approx = torch.addmm(sqn[None, :], xs[start:stop], xs.T, alpha=-2.0)
        approx += sqn[start:stop, None]
        approx[rows - start, rows] = math.inf  # self excluded by index
        vals, cand = torch.topk(approx, kc, dim=1, largest=False, sorted=False)
        sq = vals.double() if dense64 else _expansion64_of_candidates(x64, sqn64, rows, cand)
        # a non-candidate's true squared distance is at least the largest candidate value
        # minus the search's error bound
        if kc < n - 1:
            floor = vals.amax(dim=1).double() - e_search[rows]
        else:
            floor = torch.full((len(rows),), math.inf, dtype=torch.float64, device=x.device)
        e_row = e_value[rows]
        kth = torch.kthvalue(sq, k, dim=1).values
        ok = (e_row <= _VALUE_SLACK * u_out * sq.amin(dim=1)) & (kth + e_row <= floor)
        redo = torch.nonzero(~ok).flatten()
        if redo.numel():
            sq_r = _direct_sq(x, rows[redo], cand[redo])
            full = torch.nonzero(torch.kthvalue(sq_r, k, dim=1).values > floor[redo]).flatten()
            sq[redo] = sq_r
            if full.numel():
                # the direct distance to every point; padded beyond k so the sort keeps them
                sq_f, cand_f = _full_rows(x, rows[redo[full]], k)
                pad = torch.full(
                    (len(full), kc - k), math.inf, dtype=torch.float64, device=x.device
                )
                sq[redo[full]] = torch.cat([sq_f, pad], dim=1)
                cand[redo[full]] = torch.cat([cand_f, cand_f[:, :1].expand(-1, kc - k)], dim=1)
        # rounded to the output precision, then ties in index order, whatever each row's route
        d_out, cand = _sort_by_distance(sq.clamp_min(0).sqrt().to(out_dtype), cand)
        dist[start:stop], idx[start:stop] = d_out[:, :k], cand[:, :k]
    return dist, idx
