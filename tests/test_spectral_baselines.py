"""SpectralNet, SpecNet2 and Diffusion Net (basis_nmce.spectral): losses fall, new points get
the right shape, save/load and resume work, and each is checked against an independent route:
SpectralNet's orthonormalisation layer (Cholesky and QR agree; Y^T Y / m = I on its batch),
SpecNet2's rotated optimum of Eq. 9 (the exact eigenvectors of a small graph), Diffusion Net's
targets (eigenvectors of the operator its regulariser uses)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import basis_nmce
from basis_nmce.errors import ConfigError, DataError
from basis_nmce.evaluation.metrics import cluster_accuracy, grassmann_distance
from basis_nmce.graph.laplacian import affinity, batch_affinity, batch_spectral_embedding
from basis_nmce.spectral import DiffusionNet, SpecNet2, SpectralNet, base
from basis_nmce.spectral.diffusionnet import eigen_regulariser, laplacian_matrix
from basis_nmce.spectral.specnet2 import pencil, rotation, sparse_pencil_forms, specnet2_loss
from basis_nmce.spectral.spectralnet import orthonorm_weights

EPS32 = float(np.finfo(np.float32).eps)
ESTIMATORS = (SpectralNet, SpecNet2, DiffusionNet)


def blobs(n=600, dim=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(classes, dim))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def small(cls, **kw):
    params = dict(
        n_components=3,
        n_neighbors=10,
        batch_size=128,
        n_iter=120,
        lr=1e-3,
        hidden=(32, 32),
        random_state=0,
        device="cpu",
        checkpoint_every=40,
    )
    params.update(kw)
    return cls(**params)


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda c: c.__name__)
def fitted(request):
    x, y = blobs()
    return small(request.param).fit(x[:500]), x, y


def test_exported_from_the_package():
    assert basis_nmce.SpectralNet is SpectralNet
    assert basis_nmce.SpecNet2 is SpecNet2
    assert basis_nmce.DiffusionNet is DiffusionNet
    for cls in ESTIMATORS:  # BASiS's constructor names
        names = cls().get_params()
        for key in ("n_components", "n_neighbors", "sigma_neighbor", "laplacian", "batch_size"):
            assert key in names
        for key in ("n_iter", "lr", "hidden", "random_state", "device", "batch_graph"):
            assert key in names


def test_loss_falls_and_new_points_get_the_right_shape(fitted):
    est, x, y = fitted
    losses = [h["loss"] for h in est.history_]
    assert len(losses) == 120 and np.isfinite(losses).all()
    assert np.mean(losses[-20:]) < np.mean(losses[:20])
    emb = est.transform(x[500:])
    assert emb.shape == (100, 3) and emb.dtype == np.float32 and np.isfinite(emb).all()
    assert est.transform(x[500:503]).shape == (3, 3)
    assert cluster_accuracy(y[500:], est.predict(x[500:])) > 0.9


def test_save_load_round_trip(fitted, tmp_path):
    est, x, _ = fitted
    est.save(tmp_path / "model.pt")
    back = type(est).load(tmp_path / "model.pt")
    assert back.get_params() == {**est.get_params(), "device": "cpu"}
    np.testing.assert_array_equal(back.transform(x[500:]), est.transform(x[500:]))
    np.testing.assert_array_equal(back.predict(x[500:]), est.predict(x[500:]))
    other = next(c for c in ESTIMATORS if c is not type(est))
    with pytest.raises(DataError, match=f"not a {other.__name__} model"):
        other.load(tmp_path / "model.pt")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_resume_from_checkpoint_gives_same_run(cls, tmp_path, monkeypatch):
    x, _ = blobs(300)
    ckpt = tmp_path / "ckpt.pt"
    straight = small(cls, n_iter=20, checkpoint_every=10).fit(x)
    real_save = base.save_checkpoint

    def save_then_die(path, state):  # "killed" right after the step-10 checkpoint
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(base, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        small(cls, n_iter=20, checkpoint_every=10).fit(x, checkpoint=ckpt)
    monkeypatch.setattr(base, "save_checkpoint", real_save)
    resumed = small(cls, n_iter=20, checkpoint_every=10).fit(x, checkpoint=ckpt)
    assert resumed.resumed_from_ == 10
    assert [h["loss"] for h in resumed.history_] == [h["loss"] for h in straight.history_]
    np.testing.assert_array_equal(resumed.transform(x), straight.transform(x))


# ------------------------------------------------------------------------- SpectralNet


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 5),
    extra=st.integers(2, 40),
    seed=st.integers(0, 2**31 - 1),
    weighted=st.booleans(),
)
def test_cholesky_and_qr_give_the_same_orthonormalising_layer(k, extra, seed, weighted):
    """Two routes to the layer: L^-T from the Cholesky factor of Y^T diag(w) Y / m, and R^-1
    from the QR of sqrt(w / m) Y; with positive diagonals both factors are unique, so equal."""
    rng = np.random.default_rng(seed)
    m = k + extra
    y = torch.from_numpy(rng.normal(size=(m, k)))
    w = torch.from_numpy(rng.uniform(0.2, 5.0, m)) if weighted else None
    q_chol = orthonorm_weights(y, w, "cholesky")
    q_qr = orthonorm_weights(y, w, "qr")
    ww = torch.ones(m, dtype=torch.float64) if w is None else w
    yq = y @ q_chol
    gram = (yq * ww[:, None]).T @ yq / m
    cond = float(np.linalg.cond(y.numpy() * np.sqrt(ww.numpy())[:, None]))
    tol = 50 * m * k * np.finfo(np.float64).eps * cond**2
    assert torch.allclose(gram, torch.eye(k, dtype=torch.float64), atol=tol)
    assert torch.allclose(q_chol, q_qr, atol=tol * float(q_chol.abs().max()))


@pytest.mark.parametrize("laplacian", ["sym", "unnormalized"])
def test_spectralnet_output_is_orthonormal_on_its_orthogonalisation_batch(laplacian):
    x, _ = blobs(400)
    est = small(SpectralNet, n_iter=30, laplacian=laplacian).fit(x)
    y = est.transform(x[est.orthonorm_index_]).astype(np.float64)
    m, k = y.shape
    # transform rounds the float64 layer's output to float32 (relative error u = eps/2 per
    # entry): by Cauchy-Schwarz each entry of Y^T Y / m moves by at most (2u + u^2) sqrt(g_ii
    # g_jj) = 2u + u^2 from the exact identity
    np.testing.assert_allclose(y.T @ y / m, np.eye(k), atol=1.01 * EPS32 + 1e-12)
    assert np.all(np.diff(est.eigenvalues_) >= 0)  # Rayleigh-Ritz order, ascending


def test_spectralnet_drop_first_learns_one_more_and_drops_it():
    x, _ = blobs(300)
    est = small(SpectralNet, n_components=2, drop_first=True, n_iter=10, orthonorm="qr").fit(x)
    assert est.model_[-1].out_features == 3 and est.transform(x).shape == (300, 2)
    with pytest.raises(ConfigError, match="orthonorm"):
        small(SpectralNet, orthonorm="svd").fit(x)


# ---------------------------------------------------------------------------- SpecNet2


def _small_graph(n=40, k=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    W = affinity(x, n_neighbors=k, sigma_neighbor=3)
    return x, W


def _exact_pencil_vectors(W, laplacian, K, deflate):
    """Independent route: LAPACK's generalised eigenproblem of (W, D) (rw) or the symmetric
    one of D^-1/2 W D^-1/2 (sym), largest eigenvalues first, the trivial one skipped."""
    Wd = W.toarray()
    d = Wd.sum(1)
    if laplacian == "rw":
        mu, V = scipy.linalg.eigh(Wd, np.diag(d))
    else:
        mu, V = scipy.linalg.eigh(Wd / np.sqrt(np.outer(d, d)))
    order = np.argsort(mu)[::-1]
    first = int(deflate)
    return mu[order][first : first + K], V[:, order][:, first : first + K]


@pytest.mark.parametrize("laplacian", ["sym", "rw"])
@pytest.mark.parametrize("deflate", [False, True])
def test_rotated_optimum_of_eq9_spans_the_exact_eigenvectors(laplacian, deflate):
    _, W = _small_graph()
    K = 3
    A, b = pencil(torch.from_numpy(W.toarray()), laplacian, deflate)
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(W.shape[0], K, dtype=torch.float64, generator=gen).requires_grad_()
    opt = torch.optim.LBFGS(
        [y],
        lr=1,
        max_iter=5000,
        tolerance_grad=1e-13,
        tolerance_change=0,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = specnet2_loss(y, A, b)
        loss.backward()
        return loss

    opt.step(closure)
    Y = y.detach().numpy()
    O, mu = rotation(*sparse_pencil_forms(Y, W, laplacian, deflate))
    U = Y @ O
    mu_exact, V = _exact_pencil_vectors(W, laplacian, K, deflate)
    np.testing.assert_allclose(mu, mu_exact, atol=1e-8)
    assert grassmann_distance(U, V) < 1e-8
    for j in range(K):  # each rotated column is one eigenvector, not a mix
        c = abs(U[:, j] @ V[:, j]) / (np.linalg.norm(U[:, j]) * np.linalg.norm(V[:, j]))
        assert c > 1 - 1e-8
    bb = b.numpy()
    np.testing.assert_allclose((U * bb[:, None]).T @ U / len(U), np.eye(K), atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), laplacian=st.sampled_from(["sym", "rw"]))
def test_rotation_undoes_any_invertible_mixing_of_the_eigenvectors(seed, laplacian):
    _, W = _small_graph(seed=seed % 5)
    _, V = _exact_pencil_vectors(W, laplacian, 3, True)
    C = np.random.default_rng(seed).normal(size=(3, 3)) + 3 * np.eye(3)
    O, _ = rotation(*sparse_pencil_forms(V @ C, W, laplacian, True))
    U = V @ C @ O
    for j in range(3):
        c = abs(U[:, j] @ V[:, j]) / (np.linalg.norm(U[:, j]) * np.linalg.norm(V[:, j]))
        assert c > 1 - 1e-7 * np.linalg.cond(C) ** 2


def test_specnet2_test_rotation_and_refusals():
    x, _ = blobs(400)
    est = small(SpecNet2, n_iter=30, rotation="test").fit(x[:300])
    assert est.transform(x[300:]).shape == (100, 3)
    assert np.all(np.diff(est.eigenvalues_) >= -1e-12)
    with pytest.raises(DataError, match="rotation"):
        est.transform(x[300:305])  # 5 points cannot carry a 10-neighbour graph
    with pytest.raises(ConfigError, match="unnormalized"):
        small(SpecNet2, laplacian="unnormalized").fit(x)


# ------------------------------------------------------------------------ Diffusion Net


@pytest.mark.parametrize("diffusion_time", [1, None])
def test_diffusion_targets_are_eigenvectors_of_the_regularised_operator(diffusion_time):
    """The targets (Lanczos or LAPACK on the batch's graph) make Eq. 7's regulariser vanish
    for the dense operator built independently from the same affinity."""
    x, _ = blobs(300)
    xb = torch.from_numpy(x)
    graph = {"n_neighbors": 10, "sigma_neighbor": 7, "laplacian": "sym"}
    phi, vals = batch_spectral_embedding(
        xb, 3, **graph, diffusion_time=diffusion_time, dtype=torch.float64
    )
    W = batch_affinity(xb, **graph)
    L = laplacian_matrix(W, "rw" if diffusion_time else "sym")
    reg = eigen_regulariser(phi, L, vals)
    scale = float(torch.sum(phi * phi)) / (2 * len(phi))
    # the eigensolvers stop at residuals far below 1e-6 of the vectors' norm (Lanczos 1e-8)
    assert float(reg) < 1e-12 * scale
    assert float(eigen_regulariser(phi, L, vals + 0.1)) > 1e-4 * scale


def test_diffusion_net_logs_both_parts_of_eq7():
    x, _ = blobs(300)
    est = small(DiffusionNet, n_iter=60).fit(x)
    first, last = est.history_[0], est.history_[-1]
    assert last["mse"] < first["mse"]
    assert len(est.train_index_) == 128 and est.eigenvalues_.shape == (3,)
    with pytest.raises(ConfigError, match="diffusion_time"):
        small(DiffusionNet, laplacian="unnormalized").fit(x)
