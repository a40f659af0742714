"""BASiS estimator (Algorithm 1): fits, clusters, round-trips, resumes from a checkpoint."""

from __future__ import annotations

import numpy as np
import pytest

from basis_nmce.basis import BASiS, _skip_anchors
from basis_nmce.errors import ConfigError
from basis_nmce.metrics import cluster_accuracy


def blobs(n=900, dim=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(classes, dim))
    y = rng.integers(0, classes, n)
    return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def small(**kw):
    params = dict(
        n_components=3,
        n_neighbors=10,
        batch_size=128,
        n_anchors=30,
        n_iter=120,
        lr=1e-3,
        hidden=(32, 32),
        random_state=0,
        device="cpu",
        checkpoint_every=40,
    )
    params.update(kw)
    return BASiS(**params)


def test_skip_anchors_maps_pool_positions_to_non_anchor_rows():
    anchors = np.array([0, 3, 4, 9])
    pool = np.setdiff1d(np.arange(12), anchors)
    positions = np.arange(len(pool))
    np.testing.assert_array_equal(_skip_anchors(positions, anchors), pool)


@pytest.fixture(scope="module")
def fitted():
    x, y = blobs()
    return small().fit(x[:750]), x, y


def test_fit_clusters_held_out_blobs(fitted):
    est, x, y = fitted
    assert est.n_iter_ == 120
    assert cluster_accuracy(y[750:], est.predict(x[750:])) == 1.0
    emb = est.transform(x[750:])
    assert emb.shape == (150, 3) and np.isfinite(emb).all()
    losses = [h["loss"] for h in est.history_]
    assert np.mean(losses[-20:]) < np.mean(losses[:20])


def test_save_load_round_trip(fitted, tmp_path):
    est, x, _ = fitted
    est.save(tmp_path / "model.pt")
    loaded = BASiS.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.transform(x), est.transform(x))
    np.testing.assert_array_equal(loaded.predict(x), est.predict(x))
    assert loaded.get_params() == est.get_params()


def test_resume_from_checkpoint_gives_same_run(tmp_path, monkeypatch):
    import basis_nmce.basis as basis_module

    x, _ = blobs()
    full = small(n_iter=80).fit(x)
    ckpt = tmp_path / "ckpt.pt"
    real_save = basis_module.save_checkpoint

    def save_then_die(path, state):  # the run is "killed" right after its step-40 checkpoint
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(basis_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        small(n_iter=80).fit(x, checkpoint=ckpt)
    monkeypatch.setattr(basis_module, "save_checkpoint", real_save)
    resumed = small(n_iter=80).fit(x, checkpoint=ckpt)
    assert resumed.resumed_from_ == 40 and resumed.n_iter_ == 80
    np.testing.assert_allclose(resumed.offset_, full.offset_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(resumed.transform(x), full.transform(x), rtol=1e-4, atol=1e-4)


def test_recenter_removes_an_offset_of_the_reference():
    """Shifting the reference's anchor coordinates by c shifts every batch's affine offset b by
    c (Eq. 13), so the network learns outputs shifted by c; offset_ (the mean b) must absorb it
    and transform must give the same embedding as with the unshifted reference."""
    from dataclasses import replace

    from basis_nmce.anchors import build_reference

    x, _ = blobs()
    est = small()
    ref = build_reference(
        x, 3, batch_size=128, n_anchors=30, n_clusters=3, graph=est.graph_kwargs, seed=0
    )
    c = np.array([0.5, -1.0, 2.0])
    shifted = replace(ref, anchor_embedding=ref.anchor_embedding + c)
    a = small().fit(x, reference=ref)
    b = small().fit(x, reference=shifted)
    np.testing.assert_allclose(b.offset_ - a.offset_, c, atol=1e-6)
    emb_a, emb_b = a.transform(x), b.transform(x)
    # without the correction the two embeddings sit c apart; with it, within 5% of |c|
    assert np.all(np.abs((emb_b - emb_a).mean(0)) < 0.05 * np.abs(c))
    plain = small(recenter=False).fit(x, reference=shifted)
    np.testing.assert_array_equal(plain.offset_, np.zeros(3))
    np.testing.assert_allclose(plain.transform(x) - b.offset_, emb_b, atol=1e-5)


def test_too_few_anchors_is_a_clear_error():
    x, _ = blobs(n=300)
    with pytest.raises(ConfigError, match="K \\+ 1"):
        small(n_anchors=3).fit(x)
