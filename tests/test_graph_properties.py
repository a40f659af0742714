"""Property tests (hypothesis) for basis_nmce.graph: few examples, small graphs, fast."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.neighbors import NearestNeighbors

from basis_nmce.graph import affinity, knn, laplacian, spectral_embedding

FAST = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@st.composite
def point_clouds(draw, min_n=20, max_n=120):
    """Gaussian points (distinct almost surely) with graph options."""
    n = draw(st.integers(min_n, max_n))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([1e-2, 1.0, 30.0]))
    x = np.random.default_rng(seed).normal(size=(n, d)) * scale
    k = draw(st.integers(1, min(15, n - 1)))
    return x, k


MODES = st.sampled_from(["local", "median", "fixed"])
SYMS = st.sampled_from(["sum", "mean", "max"])


@FAST
@given(point_clouds(), MODES, SYMS)
def test_affinity_is_symmetric_nonnegative_zero_diagonal(cloud, mode, sym):
    x, k = cloud
    sigma_neighbor = min(7, k)
    sigma_value = float(np.median(knn(x, k)[0][:, -1])) if mode == "fixed" else None
    W = affinity(
        x,
        n_neighbors=k,
        sigma_mode=mode,
        sigma_neighbor=sigma_neighbor,
        sigma_value=sigma_value,
        symmetrize=sym,
    )
    assert isinstance(W, sp.csr_matrix) and W.dtype == np.float64
    assert abs(W - W.T).max() == 0.0
    assert W.data.min() > 0.0
    assert np.all(W.diagonal() == 0.0)
    # every node keeps its k out-edges, except weights that underflow to 0 (exp(-745))
    d, i = knn(x, max(k, sigma_neighbor))
    if mode == "local":
        s = d[:, sigma_neighbor - 1]
        arg = d[:, :k] ** 2 / (2 * s[:, None] * s[i[:, :k]])
    else:
        s = sigma_value if mode == "fixed" else np.median(d[:, sigma_neighbor - 1])
        arg = d[:, :k] ** 2 / (2 * s**2)
    kept = (arg < 700).sum(axis=1)
    assert np.all(np.diff(W.indptr) >= kept)
    if mode == "local":
        assert np.all(kept == k)


@FAST
@given(point_clouds())
def test_sym_laplacian_spectrum_and_null_vector(cloud):
    x, k = cloud
    W = affinity(x, n_neighbors=k, sigma_neighbor=min(7, k))
    L = laplacian(W, "sym").toarray()
    assert np.allclose(L, L.T, atol=1e-14)
    ev = np.linalg.eigvalsh(L)
    assert ev.min() > -1e-10 and ev.max() < 2 + 1e-10
    d = W.sum(axis=1).A1
    np.testing.assert_allclose(L @ np.sqrt(d), 0.0, atol=1e-12 * np.sqrt(d).max())
    Lrw = laplacian(W, "rw")
    np.testing.assert_allclose(Lrw @ np.ones(len(d)), 0.0, atol=1e-12)
    Lun = laplacian(W, "unnormalized")
    np.testing.assert_allclose(Lun @ np.ones(len(d)), 0.0, atol=1e-12 * d.max())


@FAST
@given(point_clouds(min_n=10, max_n=200), st.booleans())
def test_knn_matches_sklearn_brute_force(cloud, as_torch):
    x, k = cloud
    xin = torch.from_numpy(x) if as_torch else x
    dist, idx = knn(xin, k)
    assert dist.dtype == np.float64 and idx.dtype == np.int64
    assert dist.shape == idx.shape == (len(x), k)
    nn = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(x)
    d_ref, i_ref = nn.kneighbors(x)
    # self excluded: drop the query itself from sklearn's answer
    d_ref = np.array([d[r != i][:k] for d, r, i in zip(d_ref, i_ref, range(len(x)), strict=True)])
    scale = max(1.0, float(np.abs(x).max()))
    np.testing.assert_allclose(dist, d_ref, rtol=1e-6, atol=1e-7 * scale)
    assert not np.any(idx == np.arange(len(x))[:, None])
    assert np.all(np.diff(dist, axis=1) >= 0)
    # the returned indices really are at the returned distances (so index mismatches with
    # sklearn can only be ties), and they agree with sklearn wherever distances are distinct
    direct = np.linalg.norm(x[:, None, :] - x[idx], axis=2)
    np.testing.assert_allclose(direct, dist, rtol=1e-6, atol=1e-7 * scale)
    i_ref = np.array([r[r != i][:k] for r, i in zip(i_ref, range(len(x)), strict=True)])
    gap = np.diff(np.concatenate([dist, np.full((len(x), 1), np.inf)], axis=1), axis=1)
    gap_before = np.concatenate([np.full((len(x), 1), np.inf), gap[:, :-1]], axis=1)
    distinct = (gap > 1e-6 * scale) & (gap_before > 1e-6 * scale)
    assert np.all((idx == i_ref)[distinct])


@FAST
@given(point_clouds(min_n=30, max_n=300), st.integers(1, 64))
def test_chunked_knn_equals_unchunked(cloud, chunk):
    x, k = cloud
    x32 = x.astype(np.float32)
    d0, i0 = knn(x32, k)
    d1, i1 = knn(x32, k, chunk_size=chunk)
    assert d0.dtype == np.float32
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(x).max())))
    same = i0 == i1
    # where indices differ, it must be a tie in distance
    assert np.all(same | np.isclose(d0, d1, rtol=1e-5))


@FAST
@given(point_clouds(min_n=40, max_n=150), st.sampled_from(["dense", "sparse"]))
def test_embedding_orthonormal_and_eigen_residuals(cloud, solver):
    x, k = cloud
    k = max(k, 5)
    K = 4
    res = spectral_embedding(x, K, n_neighbors=k, sigma_neighbor=min(7, k), solver=solver)
    Y = res.embedding.astype(np.float64)
    n = len(x)
    np.testing.assert_allclose(Y.T @ Y / n, np.eye(K), atol=1e-5)
    assert np.all(np.diff(res.eigenvalues) >= -1e-12)
    assert res.eigenvalues.min() > -1e-10
    L = laplacian(affinity(x, n_neighbors=k, sigma_neighbor=min(7, k)), "sym")
    U = Y / np.sqrt(n)
    assert np.linalg.norm(L @ U - U * res.eigenvalues, axis=0).max() < 1e-5
    assert res.max_residual < 1e-8
