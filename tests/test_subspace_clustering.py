"""EnSC / SSC-OMP subspace clustering: recovery on unions of subspaces, optimality of the codes
against independent routes (full-dictionary solve, KKT conditions, scikit-learn's OMP), order
equivariance (hypothesis) and input errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import ElasticNet, orthogonal_mp

from basis_nmce.errors import DataError
from basis_nmce.evaluation.metrics import cluster_accuracy
from basis_nmce.evaluation.subspace_clustering import (
    affinity_from_coefficients,
    ensc_coefficients,
    ensc_sklearn_params,
    spectral_clustering_from_affinity,
    ssc_omp_coefficients,
    subspace_clustering,
    subspace_preserving_error,
    subspace_preserving_rate,
)

FAST = settings(max_examples=10, deadline=None)
seeds = st.integers(0, 2**32 - 1)

# --------------------------------------------------------------------------- helpers


def union_of_subspaces(
    rng: np.random.Generator,
    n_subspaces: int = 3,
    dim: int = 3,
    ambient: int = 30,
    per: int = 60,
    noise: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm points, ``per`` on each of ``n_subspaces`` random ``dim``-dim subspaces."""
    X, y = [], []
    for s in range(n_subspaces):
        basis = np.linalg.qr(rng.normal(size=(ambient, dim)))[0]
        X.append(rng.normal(size=(per, dim)) @ basis.T)
        y += [s] * per
    Z = np.vstack(X) + noise * rng.normal(size=(n_subspaces * per, ambient))
    return Z / np.linalg.norm(Z, axis=1, keepdims=True), np.array(y)


def codes(method: str, X: np.ndarray, **kw) -> sp.csr_matrix:
    return ensc_coefficients(X, **kw) if method == "ensc" else ssc_omp_coefficients(X, **kw)


@pytest.fixture(scope="module")
def clean() -> tuple[np.ndarray, np.ndarray]:
    return union_of_subspaces(np.random.default_rng(0))


@pytest.fixture(scope="module")
def noisy() -> tuple[np.ndarray, np.ndarray]:
    return union_of_subspaces(np.random.default_rng(1), per=25, noise=0.02)


# --------------------------------------------------------------------------- recovery


@pytest.mark.parametrize("method", ["ensc", "ssc_omp"])
def test_union_of_subspaces_is_recovered(clean, method):
    X, y = clean
    labels = subspace_clustering(X, 3, method=method, n_init=3)
    assert labels.dtype == np.int64 and labels.shape == y.shape
    assert cluster_accuracy(y, labels) == 1.0


@pytest.mark.parametrize("method", ["ensc", "ssc_omp"])
def test_codes_have_zero_diagonal_and_stay_in_their_subspace(clean, method):
    X, y = clean
    C = codes(method, X)
    assert sp.issparse(C) and C.shape == (len(y), len(y))
    assert not C.diagonal().any()
    assert (C.getnnz(axis=1) > 0).all()  # every point is coded by someone
    assert subspace_preserving_rate(C, y) == 1.0
    assert subspace_preserving_error(C, y) < 1e-8


@pytest.mark.parametrize("method", ["ensc", "ssc_omp"])
def test_noisy_codes_mostly_subspace_preserving(noisy, method):
    X, y = noisy
    C = codes(method, X, **({"n_nonzero": 3} if method == "ssc_omp" else {}))
    assert not C.diagonal().any()
    assert subspace_preserving_error(C, y) < 0.1
    labels = subspace_clustering(
        X, 3, method=method, n_init=3, **({"n_nonzero": 3} if method == "ssc_omp" else {})
    )
    assert cluster_accuracy(y, labels) >= 0.95


def test_omp_stops_at_the_residual_threshold(clean):
    """Noise-free points of a 3-dim subspace are exactly coded by 3 others (thr stops OMP)."""
    X, _ = clean
    C = ssc_omp_coefficients(X, n_nonzero=10, thr=1e-8)
    assert C.getnnz(axis=1).max() == 3
    np.testing.assert_allclose(C @ X, X, atol=1e-8)


# --------------------------------------------------------------------------- independent routes


def test_ssc_omp_matches_sklearn_orthogonal_mp():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 12))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    C = ssc_omp_coefficients(X, n_nonzero=5, thr=0.0).toarray()
    for j in range(len(X)):
        others = np.delete(np.arange(len(X)), j)
        ref = np.zeros(len(X))
        ref[others] = orthogonal_mp(X[others].T, X[j], n_nonzero_coefs=5)
        np.testing.assert_allclose(C[j], ref, atol=1e-10)


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_active_support_equals_full_dictionary(noisy, tau):
    """ORGEN with a 10-point working set reaches the full problem's solution."""
    X, _ = noisy
    kw = {"tau": tau, "gamma": 20.0, "n_nonzero": len(X)}
    full = ensc_coefficients(X, active_support=False, **kw).toarray()
    act = ensc_coefficients(X, active_support=True, support_size=10, **kw).toarray()
    np.testing.assert_allclose(act, full, atol=1e-8)


def test_lars_and_coordinate_descent_agree(noisy):
    X, _ = noisy
    kw = {"tau": 0.8, "gamma": 20.0, "n_nonzero": len(X), "active_support": False}
    lars = ensc_coefficients(X, solver="lars", **kw).toarray()
    cd = ensc_coefficients(X, solver="cd", tol=1e-12, max_iter=100_000, **kw).toarray()
    np.testing.assert_allclose(cd, lars, atol=1e-5)


@pytest.mark.parametrize("tau", [1.0, 0.6])
def test_ensc_codes_satisfy_the_papers_kkt_conditions(noisy, tau):
    """Optimality of the EnSC objective itself: gamma X_k (x_j - X^T c) = tau sign(c_k) + (1 - tau) c_k on the
    support and |gamma <x_k, r>| <= tau off it, with gamma_j = gamma tau / max_k |<x_j, x_k>|."""
    X, _ = noisy
    gamma = 30.0
    C = ensc_coefficients(X, gamma=gamma, tau=tau, n_nonzero=len(X)).toarray()
    G = X @ X.T
    np.fill_diagonal(G, 0.0)
    for j in range(len(X)):
        g = gamma * tau / np.abs(G[j]).max()
        grad = g * X @ (X[j] - C[j] @ X)  # gamma <x_k, r> for every k
        grad[j] = 0.0
        on = C[j] != 0
        assert on.any()
        np.testing.assert_allclose(
            grad[on], tau * np.sign(C[j, on]) + (1 - tau) * C[j, on], atol=1e-7
        )
        assert np.abs(grad[~on]).max() <= tau + 1e-7


@pytest.mark.parametrize("tau", [1.0, 0.5])
def test_sklearn_parameter_mapping_gives_the_same_minimiser(tau):
    """ElasticNet(alpha=1/(gamma d), l1_ratio=tau) minimises EnSC's objective."""
    rng = np.random.default_rng(5)
    A = rng.normal(size=(15, 25))
    x = rng.normal(size=15)
    gamma = 3.0
    alpha, l1_ratio = ensc_sklearn_params(gamma, tau, n_features=15)
    assert alpha == pytest.approx(1 / (gamma * 15)) and l1_ratio == tau
    c = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, fit_intercept=False, tol=1e-12, max_iter=10**5)
    c = c.fit(A, x).coef_

    def objective(v: np.ndarray) -> float:
        return tau * np.abs(v).sum() + (1 - tau) / 2 * v @ v + gamma / 2 * np.sum((x - A @ v) ** 2)

    base = objective(c)
    for _ in range(50):  # no random perturbation improves on it
        assert objective(c + 1e-3 * rng.normal(size=c.shape)) >= base - 1e-12


# --------------------------------------------------------------------------- equivariance


@FAST
@given(seed=seeds)
def test_omp_codes_are_permutation_equivariant(seed):
    rng = np.random.default_rng(seed)
    X, _ = union_of_subspaces(rng, dim=2, ambient=8, per=10, noise=0.01)
    perm = rng.permutation(len(X))
    C = ssc_omp_coefficients(X, n_nonzero=3).toarray()
    Cp = ssc_omp_coefficients(X[perm], n_nonzero=3).toarray()
    np.testing.assert_allclose(Cp, C[np.ix_(perm, perm)], atol=1e-10)


@pytest.mark.parametrize("method", ["ensc", "ssc_omp"])
def test_labels_follow_a_permutation_of_the_rows(noisy, method):
    X, _ = noisy
    perm = np.random.default_rng(7).permutation(len(X))
    opts = {"n_nonzero": 3} if method == "ssc_omp" else {}
    labels = subspace_clustering(X, 3, method=method, n_init=3, **opts)
    labels_p = subspace_clustering(X[perm], 3, method=method, n_init=3, **opts)
    assert cluster_accuracy(labels[perm], labels_p) == 1.0  # equal up to relabelling
    again = subspace_clustering(X, 3, method=method, n_init=3, **opts)
    np.testing.assert_array_equal(again, labels)  # deterministic for a seed


def test_ensc_codes_are_permutation_equivariant(noisy):
    X, _ = noisy
    perm = np.random.default_rng(8).permutation(len(X))
    C = ensc_coefficients(X, tau=0.9).toarray()
    Cp = ensc_coefficients(X[perm], tau=0.9).toarray()
    np.testing.assert_allclose(Cp, C[np.ix_(perm, perm)], atol=1e-8)


# --------------------------------------------------------------------------- affinity


@FAST
@given(seed=seeds, normalize=st.sampled_from(["max", "l2", "none"]))
def test_affinity_is_symmetric_nonnegative_with_zero_diagonal(seed, normalize):
    rng = np.random.default_rng(seed)
    C = sp.random(20, 20, density=0.2, random_state=rng, data_rvs=rng.standard_normal).tocsr()
    W = affinity_from_coefficients(C, normalize=normalize)
    Wd = W.toarray()
    np.testing.assert_array_equal(Wd, Wd.T)
    assert (Wd >= 0).all() and not Wd.diagonal().any()
    if normalize == "max":
        A = np.abs(C.toarray())
        np.fill_diagonal(A, 0)
        A = np.divide(
            A, A.max(1, keepdims=True), out=np.zeros_like(A), where=A.max(1, keepdims=True) > 0
        )
        np.testing.assert_allclose(Wd, A + A.T)


def test_spectral_clustering_splits_block_diagonal_affinity():
    blocks = [np.ones((4, 4)) - np.eye(4), np.ones((3, 3)) - np.eye(3), np.zeros((1, 1))]
    W = sp.block_diag(blocks).tocsr()  # the last point is isolated
    labels = spectral_clustering_from_affinity(W, 3, n_init=2)
    assert cluster_accuracy([0] * 4 + [1] * 3 + [2], labels) == 1.0


def test_subspace_preserving_diagnostics_by_hand():
    C = sp.csr_matrix(np.array([[0, 1.0, -3.0], [2.0, 0, 0], [0, 0, 0]]))
    y = np.array([0, 0, 1])
    assert subspace_preserving_error(C, y) == pytest.approx((3 / 4) / 3)
    assert subspace_preserving_rate(C, y) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda X: subspace_clustering(X, 3, method="kmeans"), "method"),
        (lambda X: subspace_clustering(X, len(X) + 1), "n_clusters"),
        (lambda X: subspace_clustering(X, 0), "n_clusters"),
        (lambda X: subspace_clustering(X[:, 0], 2), "X: expected a 2-D"),
        (lambda X: subspace_clustering(np.where(X > 0.5, np.nan, X), 2), "X: .*NaN"),
        (lambda X: ssc_omp_coefficients(np.vstack([X, 0 * X[:1]])), "X: .*zero norm"),
        (lambda X: ssc_omp_coefficients(X, n_nonzero=0), "n_nonzero"),
        (lambda X: ssc_omp_coefficients(X, thr=-1.0), "thr"),
        (lambda X: ensc_coefficients(X, tau=0.0), "tau"),
        (lambda X: ensc_coefficients(X, tau=1.5), "tau"),
        (lambda X: ensc_coefficients(X, gamma=0.5), "gamma"),
        (lambda X: ensc_coefficients(X, solver="spams"), "solver"),
        (lambda X: affinity_from_coefficients(sp.eye(3), normalize="l1"), "normalize"),
        (lambda X: spectral_clustering_from_affinity(np.ones((2, 3)), 1), "W"),
    ],
)
def test_invalid_input_is_named(call, match):
    X = np.random.default_rng(0).normal(size=(10, 4))
    with pytest.raises(DataError, match=match):  # a ValueError
        call(X)


def test_no_warnings_on_clean_data(clean):
    X, _ = clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ensc_coefficients(X, tau=0.9)
        ssc_omp_coefficients(X)
