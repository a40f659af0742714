"""Diffusion-map encoding (BASiS Sec. 5.3): the rotating-object source, BASiS learning
diffusion-map coordinates, and the circular correlation that scores the recovered angle."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_nmce import BASiS
from basis_nmce.data import prepare, rotating
from basis_nmce.errors import DataError
from basis_nmce.evaluation.metrics import (
    circular_correlation,
    embedding_angle,
    grassmann_distance,
)
from basis_nmce.graph.laplacian import affinity, batch_spectral_embedding, spectral_embedding

FAST = settings(max_examples=30, deadline=None)


def test_rotating_source_is_seeded_and_labels_carry_the_angle():
    spec = {"source": "rotating", "options": {"n_samples": 40, "size": 16}, "test_fraction": 0.25}
    ds = prepare("rot", spec, "unused", seed=3)
    again = prepare("rot", spec, "unused", seed=3)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.shape == (30, 16, 16)
    assert len(ds.x_test) == 10 and ds.n_classes == 360
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    assert not np.array_equal(ds.x_train, prepare("rot", spec, "unused", seed=4).x_train)
    _, angles = rotating.render(40, size=16, seed=3)
    y = rotating.angle_label(angles, 360)
    assert sorted(np.concatenate([ds.y_train, ds.y_test])) == sorted(y)
    # the object is asymmetric: half a turn gives another image
    a = rotating.render(1, size=16, noise=0.0, seed=0)
    th = a[1][0]
    r = rotating._render_one
    cam = rotating._camera(16, 30.0)
    assert not np.allclose(r(th, *cam), r(th + np.pi, *cam))


@FAST
@given(
    st.lists(st.floats(0, 2 * np.pi, exclude_max=True), min_size=1, max_size=50),
    st.integers(2, 720),
)
def test_angle_labels_round_trip_to_within_half_a_bin(angles, bins):
    a = np.asarray(angles)
    back = rotating.bin_angle(rotating.angle_label(a, bins), bins)
    err = np.abs(np.angle(np.exp(1j * (back - a))))
    assert (err <= np.pi / bins + 1e-9).all()


@FAST
@given(st.integers(0, 2**32 - 1), st.integers(2, 40))
def test_circular_correlation_matches_the_pairwise_definition(seed, n):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 2 * np.pi, n)
    b = a + rng.normal(0, 1.0, n)
    i, j = np.triu_indices(n, 1)
    num = (np.sin(a[i] - a[j]) * np.sin(b[i] - b[j])).sum()
    den = np.sqrt((np.sin(a[i] - a[j]) ** 2).sum() * (np.sin(b[i] - b[j]) ** 2).sum())
    if den < 1e-9:
        return
    assert circular_correlation(a, b) == pytest.approx(num / den, abs=1e-9)
    c = rng.uniform(-10, 10)
    assert circular_correlation(a, a + c) == pytest.approx(1.0)
    assert circular_correlation(a, c - a) == pytest.approx(-1.0)


def test_embedding_angle_reads_an_ellipse_traced_at_constant_speed():
    t = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    shear = np.array([[3.0, 1.0], [0.0, 0.5]])
    y = np.column_stack([np.cos(t), np.sin(t)]) @ shear.T + [4.0, -2.0]
    assert abs(circular_correlation(embedding_angle(y), t)) == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(DataError, match="degenerate"):
        embedding_angle(np.column_stack([t, 2 * t]))


def test_diffusion_map_coordinates_match_the_random_walk_eigenproblem():
    """Independent route: the non-symmetric eigenproblem of P = D^-1 W (scipy.linalg.eig)
    gives the same diffusion coordinates (1 - lambda)^t psi as our symmetric solve."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 150)
    x = np.column_stack([np.cos(t), np.sin(t)]) + 0.02 * rng.normal(size=(150, 2))
    g = {"n_neighbors": 10, "laplacian": "rw", "drop_first": True}
    ours = spectral_embedding(x, 2, **g, diffusion_time=2, solver="dense")
    W = affinity(x, n_neighbors=10).toarray()
    P = W / W.sum(1, keepdims=True)
    vals, vecs = scipy.linalg.eig(P)
    order = np.argsort(-vals.real)[1:3]
    psi = vecs[:, order].real * vals.real[order] ** 2
    assert grassmann_distance(ours.embedding, psi) < 1e-8
    np.testing.assert_allclose(1 - ours.eigenvalues, vals.real[order], atol=1e-10)
    xb = torch.from_numpy(x).float()
    batch, _ = batch_spectral_embedding(xb, 2, **g, diffusion_time=2, dtype=torch.float64)
    assert grassmann_distance(batch.numpy(), psi) < 1e-5


def test_basis_learns_the_diffusion_map_of_a_circle():
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 2 * np.pi, 1200)
    x = (np.column_stack([np.cos(t), np.sin(t)]) + 0.03 * rng.normal(size=(1200, 2))).astype(
        np.float32
    )
    tr, te = slice(0, 900), slice(900, None)
    est = BASiS(
        n_components=2,
        n_neighbors=20,
        laplacian="rw",
        drop_first=True,
        diffusion_time=1,
        batch_size=256,
        n_anchors=40,
        anchor_strategy="random",
        n_iter=300,
        lr=1e-3,
        hidden=(64, 64),
        random_state=0,
        device="cpu",
        prefetch=False,
    )
    assert est.graph_kwargs["diffusion_time"] == 1
    est.fit(x[tr])
    out = est.transform(x[te])
    exact = spectral_embedding(
        x[te], 2, n_neighbors=20, laplacian="rw", drop_first=True, diffusion_time=1
    ).embedding
    # 300 steps of a small network (seconds); the rotating-object benchmark holds the issue's
    # bounds (d_G <= 0.05, correlation >= 0.99) at full size
    assert grassmann_distance(out, exact) < 0.15
    assert abs(circular_correlation(embedding_angle(out), t[te])) > 0.98
