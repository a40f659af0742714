"""Graph construction, Laplacians and exact spectral embeddings (basis_nmce.graph.laplacian)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.linalg import subspace_angles
from scipy.sparse.csgraph import connected_components
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.graph.eigensolvers import dense_smallest, sparse_smallest
from basis_nmce.graph.laplacian import (
    affinity,
    batch_affinity,
    batch_spectral_embedding,
    knn,
    knn_affinity,
    laplacian,
    spectral_embedding,
    spectral_embedding_from_affinity,
)


def grassmann(a: np.ndarray, b: np.ndarray) -> float:
    """Squared Grassmann distance K - sum cos^2(theta) between the column spans (QR first)."""
    qa, _ = np.linalg.qr(np.asarray(a, dtype=np.float64))
    qb, _ = np.linalg.qr(np.asarray(b, dtype=np.float64))
    theta = subspace_angles(qa, qb)
    return float(qa.shape[1] - np.sum(np.cos(theta) ** 2))


@pytest.fixture(scope="module")
def five_blobs() -> tuple[np.ndarray, np.ndarray]:
    centers = 40.0 * np.eye(5)
    x, y = make_blobs(
        n_samples=[200, 250, 300, 220, 180], centers=centers, cluster_std=1.0, random_state=0
    )
    return x, y


@pytest.fixture(scope="module")
def connected_3000() -> np.ndarray:
    x, _ = make_blobs(n_samples=3000, centers=4, n_features=8, cluster_std=2.5, random_state=1)
    return x


GRAPH_5 = {"n_neighbors": 10, "sigma_neighbor": 7}


# --------------------------------------------------------------- 1. repeated eigenvalue 0


@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_five_components_zero_eigenvalues_and_exact_clusters(five_blobs, solver):
    x, y = five_blobs
    W = affinity(x, **GRAPH_5)
    n_cc, cc_labels = connected_components(W, directed=False)
    assert n_cc == 5
    assert adjusted_rand_score(y, cc_labels) == 1.0
    res = spectral_embedding(x, 5, solver=solver, **GRAPH_5)
    assert res.n_connected_components == 5
    assert res.solver.startswith(solver)
    np.testing.assert_allclose(res.eigenvalues, 0.0, atol=1e-8)
    pred = KMeans(5, n_init=10, random_state=0).fit_predict(res.embedding)
    assert adjusted_rand_score(y, pred) == 1.0
    # K larger than the number of components: exactly 5 zeros, then positive eigenvalues
    res8 = spectral_embedding(x, 8, solver=solver, **GRAPH_5)
    assert np.all(np.abs(res8.eigenvalues[:5]) < 1e-8)
    assert np.all(res8.eigenvalues[5:] > 1e-3)
    np.testing.assert_allclose(res8.embedding.T @ res8.embedding / len(x), np.eye(8), atol=1e-5)


def test_five_components_solvers_agree_beyond_the_null_space(five_blobs):
    x, _ = five_blobs
    d = spectral_embedding(x, 9, solver="dense", **GRAPH_5)
    s = spectral_embedding(x, 9, solver="sparse", **GRAPH_5)
    np.testing.assert_allclose(d.eigenvalues, s.eigenvalues, atol=1e-9)
    assert grassmann(d.embedding, s.embedding) < 1e-6


def test_components_large_enough_for_lanczos():
    """Components above the dense cut-off go through eigsh per component."""
    x, _ = make_blobs(n_samples=[450, 500, 420], centers=50 * np.eye(3), random_state=2)
    W = affinity(x, n_neighbors=10)
    assert connected_components(W, directed=False)[0] == 3
    s = spectral_embedding_from_affinity(W, 7, solver="sparse")
    d = spectral_embedding_from_affinity(W, 7, solver="dense")
    assert "eigsh" in s.solver
    np.testing.assert_allclose(s.eigenvalues[:3], 0.0, atol=1e-12)
    np.testing.assert_allclose(s.eigenvalues, d.eigenvalues, atol=1e-10)
    assert grassmann(s.embedding, d.embedding) < 1e-6


def test_single_krylov_run_with_deflation_check_finds_all_zeros(five_blobs):
    """Bypass the per-component split: the deflation check must recover missed zeros."""
    x, _ = five_blobs
    L = laplacian(affinity(x, **GRAPH_5), "sym")
    one = np.zeros(L.shape[0], dtype=np.int64)
    for seed in range(4):
        vals, vecs, _ = sparse_smallest(L, 5, labels=one, seed=seed, verify=True)
        np.testing.assert_allclose(vals, 0.0, atol=1e-8)
        np.testing.assert_allclose(vecs.T @ vecs, np.eye(5), atol=1e-8)
        assert np.linalg.norm(L @ vecs, axis=0).max() < 1e-8


def test_deflation_check_repairs_a_missed_eigenvector(five_blobs, monkeypatch):
    """Make the first Lanczos run drop one null vector: the check must put it back."""
    from basis_nmce.graph import eigensolvers

    x, _ = five_blobs
    L = laplacian(affinity(x, **GRAPH_5), "sym")
    real = eigensolvers._eigsh
    calls = {"n": 0}

    def lossy(A, k, v0, ncv=None, maxiter=None):
        calls["n"] += 1
        if calls["n"] > 1:
            return real(A, k, v0, ncv=ncv, maxiter=maxiter)
        vals, vecs = real(A, k + 1, v0, ncv=ncv, maxiter=maxiter)
        keep = [j for j in range(k + 1) if j != 2]  # lose one of the five zeros
        return vals[keep], vecs[:, keep]

    monkeypatch.setattr(eigensolvers, "_eigsh", lossy)
    one = np.zeros(L.shape[0], dtype=np.int64)
    vals, vecs, info = sparse_smallest(L, 6, labels=one, seed=0)
    assert info.fallbacks >= 1
    assert np.sum(np.abs(vals) < 1e-8) == 5
    assert np.linalg.norm(L @ vecs - vecs * vals, axis=0).max() < 1e-8


def test_arpack_failure_falls_back_to_dense(connected_3000, monkeypatch):
    from scipy.sparse.linalg import ArpackNoConvergence

    from basis_nmce.graph import eigensolvers

    def broken(*args, **kwargs):
        raise ArpackNoConvergence("no convergence (test)", np.zeros(0), np.zeros((0, 0)))

    W = affinity(connected_3000[:600], n_neighbors=15)
    ref = spectral_embedding_from_affinity(W, 4, solver="dense")
    monkeypatch.setattr(eigensolvers, "_eigsh", broken)
    res = spectral_embedding_from_affinity(W, 4, solver="sparse")
    assert "dense-fallback" in res.solver
    np.testing.assert_allclose(res.eigenvalues, ref.eigenvalues, atol=1e-10)
    monkeypatch.setattr(eigensolvers, "SMALL_COMPONENT", 10)
    with pytest.raises(eigensolvers.EigensolverError, match="n_neighbors"):
        eigensolvers.sparse_smallest(laplacian(W), 4, dense_fallback_max=100)


def test_more_components_than_k_takes_the_largest_components(five_blobs):
    x, y = five_blobs
    res = spectral_embedding(x, 3, solver="sparse", **GRAPH_5)
    np.testing.assert_array_equal(res.eigenvalues, 0.0)
    support = [set(y[np.abs(res.embedding[:, j]) > 0]) for j in range(3)]
    sizes = np.bincount(y)
    assert sorted(len(s) for s in support) == [1, 1, 1]
    assert {next(iter(s)) for s in support} == set(np.argsort(-sizes)[:3])


def test_repeated_eigenvalues_inside_a_connected_component():
    """Cycle graph: every non-zero eigenvalue of L_sym is double (1 - cos(2 pi j / n))."""
    n = 900
    i = np.arange(n)
    W = sp.csr_matrix((np.ones(2 * n), (np.r_[i, i], np.r_[(i + 1) % n, (i - 1) % n])), (n, n))
    L = laplacian(W, "sym")
    exact = np.sort(1 - np.cos(2 * np.pi * np.arange(n) / n))[:9]
    vals, vecs, info = sparse_smallest(L, 9, null_weights=np.sqrt(W.sum(1).A1), seed=0)
    np.testing.assert_allclose(vals, exact, atol=1e-10)
    assert np.linalg.norm(L @ vecs - vecs * vals, axis=0).max() < 1e-8
    assert info.n_components == 1


# --------------------------------------------------------------- 2. dense vs sparse


def test_dense_and_sparse_agree_on_connected_graph(connected_3000):
    x = connected_3000
    W = affinity(x, n_neighbors=15)
    assert connected_components(W, directed=False)[0] == 1
    d = spectral_embedding_from_affinity(W, 10, solver="dense")
    s = spectral_embedding_from_affinity(W, 10, solver="sparse")
    assert d.solver == "dense-cpu" and s.solver.startswith("sparse")
    dg = grassmann(d.embedding, s.embedding)
    assert dg < 1e-6, dg
    np.testing.assert_allclose(d.eigenvalues, s.eigenvalues, atol=1e-10)
    assert d.max_residual < 1e-8 and s.max_residual < 1e-8
    # same sign convention: eigenvalues here are simple, so the columns agree entry by entry
    np.testing.assert_allclose(d.embedding, s.embedding, atol=1e-4)
    # the public end-to-end call builds the same graph
    e = spectral_embedding(x, 10, n_neighbors=15, solver="sparse")
    np.testing.assert_allclose(e.embedding, s.embedding, atol=1e-6)


# --------------------------------------------------------------- batch (torch) path


@pytest.mark.parametrize("kind", ["sym", "rw", "unnormalized"])
def test_batch_matches_dense_spectral_embedding(kind):
    x, _ = make_blobs(n_samples=512, centers=6, n_features=12, cluster_std=4.0, random_state=3)
    x = x.astype(np.float32)
    cfg = {"n_neighbors": 50, "sigma_neighbor": 7, "laplacian": kind}
    assert connected_components(affinity(x, **cfg), directed=False)[0] == 1
    ref = spectral_embedding(x, 6, solver="dense", **cfg)
    Y, vals = batch_spectral_embedding(torch.from_numpy(x), 6, **cfg)
    assert Y.shape == (512, 6) and Y.dtype == torch.float32 and vals.dtype == torch.float64
    np.testing.assert_allclose(vals.numpy(), ref.eigenvalues, atol=1e-10)
    assert grassmann(Y.numpy(), ref.embedding) < 1e-8
    np.testing.assert_allclose(Y.numpy(), ref.embedding, atol=1e-4)
    Wb = batch_affinity(torch.from_numpy(x), **cfg).numpy()
    np.testing.assert_allclose(Wb, affinity(x, **cfg).toarray(), rtol=1e-12, atol=0)


def test_batch_accepts_full_graph_config():
    x = torch.randn(128, 5, generator=torch.Generator().manual_seed(0))
    cfg = {
        "n_neighbors": 10,
        "sigma_mode": "local",
        "sigma_neighbor": 7,
        "sigma_value": None,
        "symmetrize": "sum",
        "laplacian": "sym",
        "n_components": 4,
        "drop_first": False,
        "diffusion_time": None,
        "solver": "auto",
        "dense_max_nodes": 4000,
    }
    Y, _ = batch_spectral_embedding(x, **cfg)
    assert Y.shape == (128, 4)
    Y2, _ = batch_spectral_embedding(x, 4, **cfg)
    torch.testing.assert_close(Y, Y2)


@pytest.mark.gpu
def test_batch_on_cuda_matches_cpu():
    x = torch.randn(512, 20, generator=torch.Generator().manual_seed(0))
    Yc, vc = batch_spectral_embedding(x, 8, n_neighbors=30)
    Yg, vg = batch_spectral_embedding(x.cuda(), 8, n_neighbors=30)
    assert Yg.device.type == "cuda"
    np.testing.assert_allclose(vg.cpu().numpy(), vc.numpy(), atol=1e-8)
    assert grassmann(Yg.cpu().numpy(), Yc.numpy()) < 1e-6


# --------------------------------------------------------------- conventions


def test_rw_normalisation_and_diffusion_map(connected_3000):
    x = connected_3000[:800]
    W = affinity(x, n_neighbors=15)
    deg = W.sum(1).A1
    vol = deg.sum()
    rw = spectral_embedding_from_affinity(W, 5, laplacian="rw", solver="dense")
    sym = spectral_embedding_from_affinity(W, 5, laplacian="sym", solver="dense")
    psi = rw.embedding.astype(np.float64)
    np.testing.assert_allclose(rw.eigenvalues, sym.eigenvalues, atol=1e-12)
    np.testing.assert_allclose(psi.T @ (deg[:, None] * psi) / vol, np.eye(5), atol=1e-5)
    np.testing.assert_allclose(psi[:, 0], 1.0, atol=1e-5)  # trivial eigenvector: constant
    Lrw = laplacian(W, "rw")
    res = np.linalg.norm(Lrw @ psi - psi * rw.eigenvalues, axis=0) / np.linalg.norm(psi, axis=0)
    assert res.max() < 1e-6
    dm = spectral_embedding_from_affinity(W, 4, laplacian="rw", drop_first=True, diffusion_time=3)
    np.testing.assert_allclose(dm.eigenvalues, rw.eigenvalues[1:], atol=1e-12)
    expected = psi[:, 1:] * (1 - rw.eigenvalues[1:]) ** 3
    np.testing.assert_allclose(dm.embedding, expected, atol=1e-5)


def test_drop_first_sign_and_unnormalized(connected_3000):
    x = connected_3000[:600]
    full = spectral_embedding(x, 6, n_neighbors=20, solver="dense")
    drop = spectral_embedding(x, 5, n_neighbors=20, solver="dense", drop_first=True)
    np.testing.assert_allclose(drop.eigenvalues, full.eigenvalues[1:], atol=1e-12)
    np.testing.assert_allclose(drop.embedding, full.embedding[:, 1:], atol=1e-6)
    # sign: the entry of largest magnitude of every column is positive
    Y = full.embedding
    assert np.all(Y[np.abs(Y).argmax(axis=0), np.arange(Y.shape[1])] > 0)
    un = spectral_embedding(x, 4, n_neighbors=20, laplacian="unnormalized", solver="sparse")
    L = laplacian(affinity(x, n_neighbors=20), "unnormalized")
    U = un.embedding.astype(np.float64) / np.sqrt(len(x))
    assert np.linalg.norm(L @ U - U * un.eigenvalues, axis=0).max() < 1e-4
    assert abs(un.eigenvalues[0]) < 1e-10


@pytest.mark.parametrize("laplacian", ["sym", "rw", "unnormalized"])
def test_drop_first_on_a_disconnected_graph_drops_the_trivial_vector(laplacian):
    """Two components: the null space is 2-D and a solver returns any basis of it. The first
    non-trivial eigenvector is the null vector orthogonal to the trivial one, whatever solver."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(200, 2)) + 50])
    W = affinity(x, n_neighbors=10)
    deg = np.asarray(W.sum(axis=1)).ravel()
    trivial = np.ones(len(x)) if laplacian == "unnormalized" else np.sqrt(deg)
    ys = []
    for solver in ("dense", "sparse"):
        y = (
            spectral_embedding(
                x, 1, n_neighbors=10, laplacian=laplacian, drop_first=True, solver=solver
            )
            .embedding[:, 0]
            .astype(np.float64)
        )
        u = y if laplacian != "rw" else y * np.sqrt(deg)  # back to the symmetric operator's u
        assert abs(u @ trivial) < 1e-4 * np.linalg.norm(u) * np.linalg.norm(trivial)
        assert (np.sign(y[:300]) == np.sign(y[0])).all() and (
            np.sign(y[300:]) == -np.sign(y[0])
        ).all()
        ys.append(y)
    np.testing.assert_allclose(ys[0], ys[1], atol=1e-5)
    yb, _ = batch_spectral_embedding(
        torch.as_tensor(x, dtype=torch.float32),
        1,
        n_neighbors=10,
        laplacian=laplacian,
        drop_first=True,
    )
    assert np.corrcoef(yb[:, 0].numpy(), ys[0])[0, 1] > 0.999  # float32 kNN: a few ties differ


@pytest.mark.parametrize("laplacian", ["sym", "rw", "unnormalized"])
def test_kept_trivial_vector_comes_first_on_a_disconnected_graph(laplacian):
    """drop_first=False, two components: column 0 is the trivial vector (BASiS aligns it by a
    scale alone), column 1 the null vector orthogonal to it, for every solver."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(size=(300, 2)), rng.normal(size=(200, 2)) + 50])
    W = affinity(x, n_neighbors=10)
    deg = np.asarray(W.sum(axis=1)).ravel()
    trivial = np.ones(len(x)) if laplacian == "unnormalized" else np.sqrt(deg)
    for solver in ("dense", "sparse"):
        y = spectral_embedding(x, 2, n_neighbors=10, laplacian=laplacian, solver=solver)
        u = y.embedding.astype(np.float64)
        if laplacian == "rw":
            u = u * np.sqrt(deg)[:, None]
        cos = u.T @ trivial / (np.linalg.norm(u, axis=0) * np.linalg.norm(trivial))
        np.testing.assert_allclose(np.abs(cos), [1.0, 0.0], atol=1e-5)
    yb, _ = batch_spectral_embedding(torch.as_tensor(x), 2, n_neighbors=10, laplacian=laplacian)
    ub = yb.double().numpy() * (np.sqrt(deg)[:, None] if laplacian == "rw" else 1.0)
    cos_b = ub[:, 0] @ trivial / (np.linalg.norm(ub[:, 0]) * np.linalg.norm(trivial))
    assert abs(cos_b) > 1 - 1e-5


def test_authors_kernel_matches_their_construction(connected_3000):
    """Independent route, as the BASiS code builds it: scikit-learn's kNN graph with the point
    itself among its 10 neighbours, sigma_i = distance to the 7th other neighbour,
    W_ij = exp(-(d_ij / sigma_i)^2) row by row, then (W + W^T) / 2."""
    from sklearn.neighbors import NearestNeighbors

    x = connected_3000[:400]
    d, i = NearestNeighbors(n_neighbors=10).fit(x).kneighbors(x)  # column 0: the point itself
    assert np.all(i[:, 0] == np.arange(len(x)))
    sigma = d[:, 7]  # the 7th neighbour other than the point itself
    w = np.zeros((len(x), len(x)))
    rows = np.repeat(np.arange(len(x)), 10)
    w[rows, i.ravel()] = np.exp(-((d / sigma[:, None]) ** 2)).ravel()
    expected = (w + w.T) / 2
    graph = {"n_neighbors": 10, "sigma_neighbor": 7, "kernel": "authors"}
    np.testing.assert_allclose(affinity(x, **graph).toarray(), expected, rtol=1e-10, atol=1e-12)
    dense = batch_affinity(torch.as_tensor(x), **graph).numpy()
    np.testing.assert_allclose(dense, expected, rtol=1e-10, atol=1e-12)
    # symmetrize overrides the kernel's own (W + W^T) / 2; the paper kernel has no self-loop
    summed = affinity(x, **graph, symmetrize="sum").toarray()
    np.testing.assert_allclose(summed, w + w.T, rtol=1e-10, atol=1e-12)
    assert np.all(affinity(x, n_neighbors=10).diagonal() == 0)
    res = spectral_embedding(x, 4, **graph)
    np.testing.assert_allclose(res.embedding.T @ res.embedding / len(x), np.eye(4), atol=1e-5)
    with pytest.raises(ConfigError, match="kernel"):
        affinity(x, n_neighbors=10, kernel="author")
    with pytest.raises(ConfigError, match="at least 2"):
        affinity(x, n_neighbors=1, sigma_mode="fixed", sigma_value=1.0, kernel="authors")


def test_config_call_styles(five_blobs):
    x, _ = five_blobs
    cfg = {
        "n_neighbors": 10,
        "sigma_mode": "median",
        "sigma_neighbor": 7,
        "sigma_value": None,
        "symmetrize": "mean",
        "laplacian": "sym",
        "n_components": 3,
        "drop_first": False,
        "diffusion_time": None,
        "solver": "auto",
        "dense_max_nodes": 4000,
    }
    a = spectral_embedding(x, 3, seed=0, **cfg)  # explicit K, config carries n_components too
    b = spectral_embedding(x, **cfg)
    assert a.embedding.shape == b.embedding.shape == (len(x), 3)
    with pytest.raises(TypeError, match="n_neigbors"):
        spectral_embedding(x, 3, n_neigbors=5)


# --------------------------------------------------------------- errors


def test_zero_degree_is_a_clear_error():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 3)) * 100.0
    with pytest.raises(DataError, match="zero degree"):
        spectral_embedding(x, 3, n_neighbors=5, sigma_mode="fixed", sigma_value=1e-3)
    W = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 0], [0, 0, 0]], dtype=float))
    with pytest.raises(DataError, match="zero degree"):
        laplacian(W, "sym")
    assert laplacian(W, "unnormalized").shape == (3, 3)


def test_bad_inputs():
    x = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(DataError, match="n_neighbors"):
        knn(x, 20)
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        affinity(bad, n_neighbors=5)
    with pytest.raises(ConfigError, match="sigma_value"):
        affinity(x, n_neighbors=5, sigma_mode="fixed")
    with pytest.raises(ConfigError, match="laplacian"):
        spectral_embedding(x, 2, n_neighbors=5, laplacian="normalized")
    with pytest.raises(ConfigError, match="diffusion_time"):
        spectral_embedding(x, 2, n_neighbors=5, laplacian="unnormalized", diffusion_time=1)
    with pytest.raises(DataError, match="exceeds"):
        spectral_embedding(x, 20, n_neighbors=5, drop_first=True)


def test_duplicate_points_do_not_produce_nan():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(30, 2)), 10, axis=0)  # every point 10 times
    res = spectral_embedding(x, 4, n_neighbors=15, sigma_neighbor=7)
    assert np.isfinite(res.embedding).all() and np.isfinite(res.eigenvalues).all()


def test_knn_affinity_from_precomputed_neighbours(connected_3000):
    x = connected_3000[:400]
    d, i = knn(x, 12)
    np.testing.assert_allclose(
        knn_affinity(d, i, n_neighbors=12).toarray(), affinity(x, n_neighbors=12).toarray()
    )


def test_dense_smallest_subset_matches_full_eigh():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(60, 60))
    A = A + A.T
    vals, vecs = dense_smallest(A, 5)
    np.testing.assert_allclose(vals.numpy(), np.linalg.eigvalsh(A)[:5], atol=1e-10)
    np.testing.assert_allclose(vecs.numpy().T @ vecs.numpy(), np.eye(5), atol=1e-10)


def test_batch_lanczos_matches_dense_and_declines_disconnected_graphs():
    from basis_nmce.graph.eigensolvers import normalized_smallest_lanczos

    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.normal(size=(512, 8)), dtype=torch.float32)
    W = batch_affinity(x, n_neighbors=30).numpy()
    d = W.sum(1)
    L = np.eye(512) - W / np.sqrt(np.outer(d, d))
    vals, U = normalized_smallest_lanczos(W, 11)
    ref_vals, ref_U = dense_smallest(L, 11)
    np.testing.assert_allclose(vals.numpy(), ref_vals.numpy(), atol=1e-12)
    assert grassmann(U.numpy(), ref_U.numpy()) < 1e-10
    # Two components: eigenvalue 0 twice, which one Krylov run cannot resolve -> dense.
    blocks = np.zeros((512, 512))
    blocks[:256, :256], blocks[256:, 256:] = W[:256, :256], W[256:, 256:]
    assert normalized_smallest_lanczos(blocks, 5) is None
