"""Self-expressive subspace clustering of features: EnSC and SSC-OMP (NMCE paper, Secs. 3.6, 4).

The NMCE paper clusters TCR features "with standard linear SC techniques such as EnSC (You et
al., 2016)" (end of Sec. 3.6; COIL20/COIL100 in Sec. 4.1; MCR^2-EnSC in Table 3, Sec. 4.2.2). Both methods here
write every point as a combination of the *other* points (self-expression, ``c_jj = 0``), build
an affinity from the codes and cut it by spectral clustering:

* :func:`ensc_coefficients` -- elastic-net subspace clustering (You, Li, Robinson & Vidal, CVPR
  2016, "Oracle based active set algorithm for scalable elastic net subspace clustering"),
  per point (the paper's lambda is ``tau`` here, as in the authors' code)::

      min_c  tau ||c||_1 + (1 - tau)/2 ||c||_2^2 + gamma/2 ||x_j - X^T c||_2^2   s.t. c_j = 0,

  solved by scikit-learn (LARS homotopy ``lars_path_gram``, as the authors' SPAMS solver, or
  coordinate-descent :class:`~sklearn.linear_model.ElasticNet`) inside the paper's
  oracle-guided active-set loop (ORGEN).
* :func:`ssc_omp_coefficients` -- SSC by orthogonal matching pursuit (You, Robinson & Vidal,
  CVPR 2016, "Scalable sparse subspace clustering by orthogonal matching pursuit")::

      min_c ||x_j - X^T c||_2   s.t. ||c||_0 <= n_nonzero, c_j = 0,

  greedily, vectorised over blocks of points (numpy), stopping a point once
  ``||residual|| <= thr`` (rows are unit norm).
* :func:`affinity_from_coefficients` -- ``W = |C_n| + |C_n|^T`` (sparse), with each row of ``C``
  first divided by its largest magnitude (``normalize="max"``, the column normalisation
  ``c_j / ||c_j||_inf`` of Elhamifar & Vidal's SSC code ``BuildAdjacency.m``; codes are rows
  here), or by its l2 norm (``"l2"``, the authors' Python code, ChongYou/subspace-clustering),
  or not at all (``"none"``).
* :func:`spectral_clustering_from_affinity` -- normalised spectral clustering (Ng, Jordan &
  Weiss): the ``n_clusters`` smallest eigenvectors of ``I - D^-1/2 W D^-1/2``
  (:func:`basis_nmce.graph.laplacian.spectral_embedding_from_affinity`, solved per connected component
  so that exactly block-diagonal affinities are handled), rows scaled to unit norm, k-means.
* :func:`subspace_clustering` -- the three steps above, ``X -> labels``.
* :func:`subspace_preserving_error` / :func:`subspace_preserving_rate` -- the diagnostics of
  both You et al. papers (share of a code's l1 mass outside its own subspace; share of points
  with no mass outside).

Conventions: ``X`` is ``(n, d)``, one point per row; rows are scaled to unit l2 norm before
coding (both papers assume it; a zero row is an error). Codes are returned as a CSR matrix
``C`` with ``C[j]`` the code of point ``j``, so ``x_j ~ C[j] @ X`` and ``C.diagonal() == 0``.
Invalid input raises :class:`~basis_nmce.errors.DataError` (a ``ValueError``) naming the
argument.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import ElasticNet, lars_path_gram
from threadpoolctl import threadpool_limits

from basis_nmce.errors import DataError
from basis_nmce.evaluation.metrics import kmeans_labels
from basis_nmce.graph.laplacian import spectral_embedding_from_affinity

__all__ = [
    "METHODS",
    "affinity_from_coefficients",
    "ensc_coefficients",
    "ensc_sklearn_params",
    "spectral_clustering_from_affinity",
    "ssc_omp_coefficients",
    "subspace_clustering",
    "subspace_preserving_error",
    "subspace_preserving_rate",
]

METHODS = ("ensc", "ssc_omp")
Normalize = Literal["max", "l2", "none"]

# Largest number of float64 entries of one (block of points x n) correlation block.
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- input checks


def _unit_rows(X: Any, name: str = "X") -> np.ndarray:
    """``X`` as a finite float64 ``(n, d)`` array with unit-l2 rows (a new array)."""
    try:
        a = np.array(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name}: expected a numeric array, got {type(X).__name__} ({exc})"
        ) from None
    if a.ndim != 2:
        raise DataError(
            f"{name}: expected a 2-D (n_points, n_features) array, got shape {a.shape}; "
            "reshape a single feature to (n, 1)"
        )
    if a.shape[0] < 2 or a.shape[1] == 0:
        raise DataError(f"{name}: need at least 2 points and 1 feature, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise DataError(f"{name}: {bad} non-finite entries (NaN or inf); clean the input first")
    norms = np.linalg.norm(a, axis=1)
    zero = np.flatnonzero(norms <= 1e-12 * max(1.0, float(norms.max())))
    if zero.size:
        raise DataError(
            f"{name}: {zero.size} row(s) have zero norm (first: row {zero[0]}); a zero point "
            "has no direction to code, drop it"
        )
    return a / norms[:, None]


def _int_at_least(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise DataError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _float_in(value: Any, name: str, low: float, high: float, *, low_open: bool) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{name} must be a number, got {value!r}") from None
    ok = math.isfinite(v) and (v > low if low_open else v >= low) and v <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise DataError(f"{name} must lie in {bracket}{low}, {high}], got {value!r}")
    return v


def _coo_to_csr(rows: list[np.ndarray], cols: list[np.ndarray], vals: list[np.ndarray], n: int):
    r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    v = np.concatenate(vals) if vals else np.zeros(0)
    C = sp.csr_matrix((v, (r, c)), shape=(n, n))
    C.eliminate_zeros()
    C.sort_indices()
    return C


def _keep_largest(
    idx: np.ndarray, val: np.ndarray, n_nonzero: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_nonzero`` entries of largest magnitude (the authors' ``n_nonzero`` cap)."""
    nz = val != 0
    idx, val = idx[nz], val[nz]
    if idx.size > n_nonzero:
        top = np.argsort(-np.abs(val), kind="stable")[:n_nonzero]
        idx, val = idx[top], val[top]
    return idx, val


# --------------------------------------------------------------------------- SSC-OMP


def ssc_omp_coefficients(
    X: Any, *, n_nonzero: int = 10, thr: float = 1e-6, block_size: int | None = None
) -> sp.csr_matrix:
    """Self-expressive codes by orthogonal matching pursuit (SSC-OMP, You, Robinson & Vidal 2016).

    For each unit-norm point ``x_j``: start from ``r = x_j`` and support ``S = {}``; repeat
    ``S <- S + argmax_{k not in S, k != j} |<x_k, r>|``, ``c_S = argmin ||x_j - X_S^T c||``,
    ``r = x_j - X_S^T c_S``, until ``|S| = n_nonzero`` or ``||r||_2 <= thr``. The authors' code
    (ChongYou/subspace-clustering) uses ``n_nonzero = 10``, ``thr = 1e-6`` (but compares the
    *squared* residual with ``thr ||x_j||``; here it is the residual norm).

    Vectorised: a block of points is advanced one OMP step at a time (one ``(block x n)``
    correlation product and one batched least-squares solve per step), so the cost is about
    ``n_nonzero * n^2 * d`` flops in BLAS.

    Returns the ``(n, n)`` CSR code matrix ``C`` (row ``j`` codes point ``j``; zero diagonal).
    """
    Xn = _unit_rows(X)
    n = Xn.shape[0]
    k = min(_int_at_least(n_nonzero, "n_nonzero", 1), n - 1)
    thr = _float_in(thr, "thr", 0.0, math.inf, low_open=False)
    if block_size is None:
        block_size = max(1, min(n, _BLOCK_ELEMENTS // n))
    block_size = _int_at_least(block_size, "block_size", 1)

    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    for start in range(0, n, block_size):
        idx = np.arange(start, min(n, start + block_size))
        Y = Xn[idx]
        b = len(idx)
        supp = np.zeros((b, k), dtype=np.int64)
        coef = np.zeros((b, k))
        size = np.zeros(b, dtype=np.int64)
        active = np.arange(b)
        R = Y.copy()
        for t in range(k):
            a = active.size
            corr = np.abs(R @ Xn.T)  # (a, n)
            ar = np.arange(a)
            corr[ar, idx[active]] = -1.0  # c_jj = 0: never pick the point itself
            if t:
                corr[ar[:, None], supp[active, :t]] = -1.0  # never pick an atom twice
            supp[active, t] = np.argmax(corr, axis=1)
            D = Xn[supp[active, : t + 1]]  # (a, t+1, d)
            # least squares on the support, batched; pinv is robust to (near-)dependent atoms
            c = np.einsum("atd,ad->at", np.linalg.pinv(D.transpose(0, 2, 1)), Y[active])
            coef[active, : t + 1] = c
            size[active] = t + 1
            R = Y[active] - np.einsum("atd,at->ad", D, c)
            done = np.linalg.norm(R, axis=1) <= thr
            active, R = active[~done], R[~done]
            if active.size == 0:
                break
        for i in range(b):
            s = size[i]
            rows.append(np.full(s, idx[i], dtype=np.int64))
            cols.append(supp[i, :s])
            vals.append(coef[i, :s])
    return _coo_to_csr(rows, cols, vals, n)


# --------------------------------------------------------------------------- EnSC


def ensc_sklearn_params(gamma: float, tau: float, n_features: int) -> tuple[float, float]:
    """scikit-learn ``ElasticNet`` ``(alpha, l1_ratio)`` equivalent to EnSC's ``(gamma, tau)``.

    EnSC (You et al. 2016) minimises
    ``tau ||c||_1 + (1 - tau)/2 ||c||^2 + gamma/2 ||x - A c||^2`` with ``A`` of shape
    ``(d, m)``; ``ElasticNet`` minimises
    ``1/(2 d) ||x - A c||^2 + alpha l1_ratio ||c||_1 + alpha (1 - l1_ratio)/2 ||c||^2``
    (``d`` = rows of ``A`` = feature dimension). Dividing the first by ``gamma d`` gives the
    second with ``alpha = 1 / (gamma d)`` and ``l1_ratio = tau``: same minimiser.
    """
    gamma = _float_in(gamma, "gamma", 0.0, math.inf, low_open=True)
    tau = _float_in(tau, "tau", 0.0, 1.0, low_open=True)
    d = _int_at_least(n_features, "n_features", 1)
    return 1.0 / (gamma * d), tau


class _SubproblemSolver:
    """EnSC's problem on a working set ``A`` (d, m) for target ``y`` (d,), paper scaling.

    ``lars``: the LARS-lasso homotopy (``sklearn.linear_model.lars_path_gram``, as the authors'
    SPAMS ``lasso``) on the Gram matrix with the ridge term folded in: dividing the EnSC objective by
    ``gamma`` gives ``1/2 ||y - B c||^2 + (tau/gamma) ||c||_1`` with
    ``B^T B = A^T A + (1 - tau)/gamma I`` and ``B^T y = A^T y``; exact in a few steps.
    ``cd``: coordinate descent, ``ElasticNet(alpha=1/(gamma d), l1_ratio=tau)``
    (:func:`ensc_sklearn_params`), warm-started; accurate to its duality-gap ``tol``.
    """

    def __init__(self, solver: str, tau: float, n_features: int, tol: float, max_iter: int):
        self.solver, self.tau, self.d = solver, tau, n_features
        self.max_iter = max_iter
        self.gamma = 1.0
        self.cd = ElasticNet(
            alpha=1.0, l1_ratio=tau, fit_intercept=False, tol=tol, max_iter=max_iter
        )

    def __call__(self, A: np.ndarray, y: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        if self.solver == "lars":
            gram = A.T @ A
            gram[np.diag_indices_from(gram)] += (1.0 - self.tau) / self.gamma
            _, _, coef = lars_path_gram(
                A.T @ y,
                gram,
                n_samples=1,
                alpha_min=self.tau / self.gamma,
                method="lasso",
                max_iter=self.max_iter,
                return_path=False,
            )
            c = np.asarray(coef, dtype=np.float64).ravel()
            # LARS drop steps can leave ~1e-19 dust instead of exact zeros: clear it
            c[np.abs(c) <= 1e-12 * max(1.0, float(np.abs(c).max(initial=0.0)))] = 0.0
            return c
        self.cd.alpha, _ = ensc_sklearn_params(self.gamma, self.tau, self.d)
        self.cd.warm_start = init is not None
        if init is not None:
            self.cd.coef_ = init.copy()
        self.cd.fit(np.asfortranarray(A), y, check_input=False)
        return np.asarray(self.cd.coef_, dtype=np.float64).ravel()


def _ensc_point(
    Xn: np.ndarray,
    j: int,
    gram_row: np.ndarray,
    *,
    solve: _SubproblemSolver,
    active_support: bool,
    support_size: int,
    max_outer: int,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """EnSC code of point ``j``: (indices, values, converged)."""
    n = Xn.shape[0]
    y = Xn[j]
    others = np.delete(np.arange(n), j)
    if not active_support or n - 1 <= support_size:
        c = solve(Xn[others].T, y, None)
        return others, c, True
    # initial support: the support_size points most correlated with x_j (authors' "knn" init)
    coh = np.abs(gram_row).copy()
    coh[j] = -1.0
    supp = np.argpartition(-coh, support_size)[:support_size]
    init = None
    converged = False
    c = np.zeros(0)
    for _ in range(max_outer):
        c = solve(Xn[supp].T, y, init)
        # oracle point delta = gamma (x_j - X_S^T c_S) (You et al. 2016): the working-set
        # solution solves the full problem iff |<x_k, delta>| <= tau for every k (the KKT
        # condition of a zero coefficient); violators are added to the working set.
        delta = solve.gamma * (y - Xn[supp].T @ c)
        viol_score = np.abs(Xn @ delta)
        viol_score[j] = 0.0
        viol_score[supp] = 0.0
        added = np.flatnonzero(viol_score > solve.tau * (1.0 + 1e-6) + 1e-10)
        if added.size == 0:
            converged = True
            break
        keep = np.abs(c) > 0
        kept = supp[keep]
        if kept.size > 0.8 * support_size:  # working set too small: grow it (authors' rule)
            support_size = min(round(max(kept.size, support_size) * 1.1), n - 1)
        room = max(support_size - kept.size, 1)
        if added.size > room:
            added = added[np.argpartition(-viol_score[added], room - 1)[:room]]
        supp = np.concatenate([kept, added])
        init = np.concatenate([c[keep], np.zeros(added.size)])
    return supp, c, converged


def ensc_coefficients(
    X: Any,
    *,
    gamma: float = 50.0,
    tau: float = 1.0,
    gamma_nz: bool = True,
    n_nonzero: int = 50,
    active_support: bool = True,
    support_size: int = 100,
    max_outer: int = 40,
    solver: Literal["lars", "cd"] = "lars",
    tol: float = 1e-6,
    max_iter: int = 1000,
) -> sp.csr_matrix:
    """Elastic-net self-expressive codes (EnSC, You, Li, Robinson & Vidal, CVPR 2016).

    Per unit-norm point ``x_j`` (the paper's objective, its lambda written ``tau``)::

        c_j = argmin_c tau ||c||_1 + (1 - tau)/2 ||c||_2^2 + gamma_j/2 ||x_j - X^T c||_2^2,
              c_j = 0.

    ``gamma_nz=True`` (authors' code default) reads ``gamma`` as a multiple of the smallest
    gamma giving a non-zero code, ``gamma_j = gamma * tau / max_{k != j} |<x_j, x_k>|``
    (Prop. 1), so ``gamma > 1`` is required and 5-500 is typical; ``gamma_nz=False`` uses
    ``gamma_j = gamma``. ``tau = 1`` is SSC (basis pursuit); ``tau -> 0`` tends to LSR
    (``tau = 0`` is not accepted: the codes would be dense).

    Defaults are the authors' code's (``gamma=50``, ``gamma_nz``, ``tau=1``, ``n_nonzero=50``,
    ``support_size=100``, ``max_outer=40``); MCR^2's evaluation (Yu et al. 2020, whose EnSC
    numbers NMCE Table 3 quotes) used ``gamma=100``, ``tau=1``.

    Subproblem ``solver``: ``"lars"`` (default) is scikit-learn's LARS-lasso homotopy
    ``lars_path_gram`` with the ridge term folded into the Gram matrix (exact; the authors'
    SPAMS ``lasso`` is the same algorithm; 3-15x faster than ``"cd"`` on subspace data);
    ``"cd"`` is ``ElasticNet(alpha=1/(gamma_j d), l1_ratio=tau, fit_intercept=False)`` (the
    exact mapping, :func:`ensc_sklearn_params`; ``tol`` is its duality-gap tolerance).
    ``max_iter`` caps LARS steps / CD sweeps. With ``active_support`` the oracle-guided
    active-set algorithm (ORGEN) is used: solve on a working set ``S`` of
    ``support_size`` points (initially the most correlated with ``x_j``), form the oracle point
    ``delta = gamma_j (x_j - X_S^T c_S)``, add the points with ``|<x_k, delta>| > tau``, keep
    the non-zeros, repeat until no point violates (then ``c`` solves the full problem)
    or ``max_outer`` rounds. Without it each point is solved on all ``n - 1`` others.

    Each code keeps its ``n_nonzero`` largest-magnitude entries (authors' code). Returns the
    ``(n, n)`` CSR code matrix (row ``j`` codes point ``j``; zero diagonal). A
    :class:`~sklearn.exceptions.ConvergenceWarning` summarises solver or active-set rounds
    that hit their caps.
    """
    Xn = _unit_rows(X)
    n, d = Xn.shape
    tau = _float_in(tau, "tau", 0.0, 1.0, low_open=True)
    gamma = _float_in(gamma, "gamma", 0.0, math.inf, low_open=True)
    if gamma_nz and gamma <= 1.0:
        raise DataError(
            f"gamma must be > 1 with gamma_nz=True (it is a multiple of the smallest gamma "
            f"giving a non-zero code), got {gamma!r}"
        )
    n_nonzero = _int_at_least(n_nonzero, "n_nonzero", 1)
    support_size = _int_at_least(support_size, "support_size", 1)
    max_outer = _int_at_least(max_outer, "max_outer", 1)
    max_iter = _int_at_least(max_iter, "max_iter", 1)
    tol = _float_in(tol, "tol", 0.0, math.inf, low_open=True)

    if solver not in ("lars", "cd"):
        raise DataError(f"solver must be 'lars' or 'cd', got {solver!r}")
    solve = _SubproblemSolver(solver, tau, d, tol, max_iter)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    n_unconverged = 0
    block = max(1, min(n, _BLOCK_ELEMENTS // n))
    # The per-point problems are small (working sets of ~support_size points): multi-threaded
    # BLAS only adds synchronisation, 4x slower on 2 busy cores, so it runs single-threaded.
    with threadpool_limits(1, user_api="blas"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        for start in range(0, n, block):
            stop = min(n, start + block)
            G = Xn[start:stop] @ Xn.T  # (block, n) correlations
            for j in range(start, stop):
                g = G[j - start]
                if gamma_nz:
                    mx = float(np.max(np.abs(np.delete(g, j))))
                    if mx <= 0.0:  # orthogonal to every other point: the code is zero
                        continue
                    solve.gamma = gamma * tau / mx
                else:
                    solve.gamma = gamma
                idx, c, ok = _ensc_point(
                    Xn,
                    j,
                    g,
                    solve=solve,
                    active_support=active_support,
                    support_size=support_size,
                    max_outer=max_outer,
                )
                n_unconverged += not ok
                idx, c = _keep_largest(idx, c, n_nonzero)
                rows.append(np.full(idx.size, j, dtype=np.int64))
                cols.append(idx.astype(np.int64))
                vals.append(c)
    n_cd = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if n_cd or n_unconverged:
        warnings.warn(
            f"ensc_coefficients: {n_cd} {solver} solver warning(s) (max_iter={max_iter}) and "
            f"{n_unconverged} point(s) still had oracle violators after max_outer={max_outer} "
            "active-set rounds; raise max_iter / max_outer / support_size",
            ConvergenceWarning,
            stacklevel=2,
        )
    return _coo_to_csr(rows, cols, vals, n)


# --------------------------------------------------------------------------- affinity + spectral


def affinity_from_coefficients(C: Any, *, normalize: Normalize = "max") -> sp.csr_matrix:
    """Symmetric affinity ``W = |C_n| + |C_n|^T`` (sparse CSR) of a self-expressive code matrix.

    ``C_n`` is ``C`` with each row (one point's code) divided by its largest magnitude
    (``"max"``: Elhamifar & Vidal's SSC code, ``c_j / ||c_j||_inf``), by its l2 norm (``"l2"``:
    the EnSC / SSC-OMP authors' Python code, which also halves W; the factor does not change
    the spectral clustering), or left as is (``"none"``). All-zero rows stay zero. The diagonal
    is dropped.
    """
    if normalize not in ("max", "l2", "none"):
        raise DataError(f"normalize must be one of 'max', 'l2', 'none', got {normalize!r}")
    C = sp.csr_matrix(C, dtype=np.float64, copy=True)
    n = C.shape[0]
    if C.shape != (n, n):
        raise DataError(f"C: expected a square (n, n) code matrix, got shape {C.shape}")
    if not np.all(np.isfinite(C.data)):
        raise DataError("C: non-finite entries (NaN or inf)")
    C.setdiag(0.0)
    C.eliminate_zeros()
    A = abs(C)
    if normalize != "none":
        if normalize == "max":
            scale = A.max(axis=1).toarray().ravel()
        else:
            scale = np.sqrt(np.asarray(A.multiply(A).sum(axis=1)).ravel())
        inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
        A = sp.csr_matrix(sp.diags(inv) @ A)
    W = sp.csr_matrix(A + A.T)
    W.eliminate_zeros()
    W.sort_indices()
    return W


def spectral_clustering_from_affinity(
    W: Any, n_clusters: int, *, seed: int = 0, n_init: int = 10, dense_max_nodes: int = 500
) -> np.ndarray:
    """Normalised spectral clustering (Ng, Jordan & Weiss) of a symmetric affinity ``W``.

    The ``n_clusters`` eigenvectors of the smallest eigenvalues of ``I - D^-1/2 W D^-1/2``
    (:func:`basis_nmce.graph.laplacian.spectral_embedding_from_affinity`: dense LAPACK up to
    ``dense_max_nodes`` nodes, otherwise Lanczos per connected component), rows scaled to unit
    norm, then k-means (:func:`basis_nmce.evaluation.metrics.kmeans_labels`, ``n_init`` restarts, seeded).
    Isolated points (zero degree) are given a self-loop of unit weight: each then forms its own
    component. Returns int64 labels in ``0 .. n_clusters - 1``.
    """
    W = sp.csr_matrix(W, dtype=np.float64)
    n = W.shape[0]
    if W.shape != (n, n):
        raise DataError(f"W: expected a square (n, n) affinity, got shape {W.shape}")
    k = _int_at_least(n_clusters, "n_clusters", 1)
    if k > n:
        raise DataError(f"n_clusters={k} exceeds the number of points ({n})")
    n_init = _int_at_least(n_init, "n_init", 1)
    deg = np.asarray(W.sum(axis=1)).ravel()
    isolated = deg <= 0
    if isolated.any():
        W = sp.csr_matrix(W + sp.diags(isolated.astype(np.float64)))
    res = spectral_embedding_from_affinity(
        W, k, laplacian="sym", solver="auto", dense_max_nodes=dense_max_nodes, seed=seed
    )
    Y = res.embedding.astype(np.float64)
    norms = np.linalg.norm(Y, axis=1, keepdims=True)
    Y = np.divide(Y, norms, out=np.zeros_like(Y), where=norms > 0)
    return kmeans_labels(Y, k, seed=seed, n_init=n_init)


def subspace_clustering(
    X: Any,
    n_clusters: int,
    method: str = "ensc",
    seed: int = 0,
    *,
    normalize: Normalize = "max",
    n_init: int = 10,
    **opts: Any,
) -> np.ndarray:
    """Cluster the rows of ``X`` into ``n_clusters`` subspaces; returns int64 labels.

    ``method``: ``"ensc"`` (:func:`ensc_coefficients`) or ``"ssc_omp"``
    (:func:`ssc_omp_coefficients`); ``opts`` go to that function (e.g. ``gamma``, ``tau`` or
    ``n_nonzero``, ``thr``). Then ``W = |C_n| + |C_n|^T``
    (:func:`affinity_from_coefficients` with ``normalize``) and
    :func:`spectral_clustering_from_affinity` (``seed``, ``n_init``).
    """
    if method not in METHODS:
        raise DataError(f"method must be one of {list(METHODS)}, got {method!r}")
    Xn = _unit_rows(X)
    k = _int_at_least(n_clusters, "n_clusters", 1)
    if k > len(Xn):
        raise DataError(f"n_clusters={k} exceeds the number of points in X ({len(Xn)})")
    if method == "ensc":
        C = ensc_coefficients(Xn, **opts)
    else:
        C = ssc_omp_coefficients(Xn, **opts)
    W = affinity_from_coefficients(C, normalize=normalize)
    return spectral_clustering_from_affinity(W, k, seed=seed, n_init=n_init)


# --------------------------------------------------------------------------- diagnostics


def _codes_and_labels(C: Any, y: Any) -> tuple[sp.csr_matrix, np.ndarray]:
    C = sp.csr_matrix(C, dtype=np.float64)
    y = np.asarray(y)
    if y.ndim != 1 or C.shape != (len(y), len(y)):
        raise DataError(f"C has shape {C.shape} and y shape {y.shape}; need C (n, n) and y (n,)")
    return C, y


def subspace_preserving_error(C: Any, y: Any) -> float:
    """Mean share of each code's l1 mass on points of other classes (You et al. 2016, SPE).

    ``1/n sum_j sum_{i: y_i != y_j} |c_ji| / ||c_j||_1``; all-zero codes count as 0 error.
    """
    C, y = _codes_and_labels(C, y)
    A = sp.coo_matrix(abs(C))
    total = np.bincount(A.row, weights=A.data, minlength=len(y))
    wrong = np.bincount(A.row, weights=A.data * (y[A.row] != y[A.col]), minlength=len(y))
    err = np.divide(wrong, total, out=np.zeros_like(wrong), where=total > 0)
    return float(err.mean())


def subspace_preserving_rate(C: Any, y: Any, *, tol: float = 1e-6) -> float:
    """Share of points whose code puts at most ``tol`` of its l1 mass on other classes.

    (You et al. 2016 "subspace-preserving rate"; ``tol`` absorbs round-off.)
    """
    C, y = _codes_and_labels(C, y)
    A = sp.coo_matrix(abs(C))
    total = np.bincount(A.row, weights=A.data, minlength=len(y))
    wrong = np.bincount(A.row, weights=A.data * (y[A.row] != y[A.col]), minlength=len(y))
    return float(np.mean(wrong <= tol * np.maximum(total, 1e-300)))
