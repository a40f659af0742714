"""BASiS under feature change (Algorithm 2): T_G, the estimator, its checkpoints and model files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.spectral import joint as joint_module
from basis_nmce.spectral.align import ransac_affine
from basis_nmce.spectral.joint import BASiSJoint, carry_reference, meeting_iteration

FAST = settings(max_examples=20, deadline=None)


def _affine(rng: np.random.Generator, k: int) -> tuple[np.ndarray, np.ndarray]:
    """A well-conditioned drift: singular values in [0.5, 2], any offset in [-3, 3]^K."""
    q1, _ = np.linalg.qr(rng.normal(size=(k, k)))
    q2, _ = np.linalg.qr(rng.normal(size=(k, k)))
    return q1 @ np.diag(rng.uniform(0.5, 2.0, size=k)) @ q2, rng.uniform(-3, 3, size=k)


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 9), extra=st.integers(0, 200))
def test_tg_undoes_a_known_affine_drift_of_the_embedding_exactly(seed, k, extra):
    """Features change so that the reference's embedding moves by an affine map (Eq. 12): T_G
    fitted on the anchors carries the whole updated embedding back onto the previous one."""
    rng = np.random.default_rng(seed)
    l = 4 * (k + 1) + 5
    prev = rng.normal(size=(l + extra, k))  # the reference embedded on the previous features
    a, b = _affine(rng, k)
    updated = prev @ a.T + b  # ... and on the updated features
    aligned, fit = carry_reference(torch.from_numpy(updated), torch.from_numpy(prev[:l]))
    np.testing.assert_allclose(aligned.numpy(), prev, atol=1e-8 * (1 + np.abs(prev).max()))
    assert fit["tg_residual"] < 1e-9
    assert fit["tg_inlier_ratio"] == 1.0
    assert math.isfinite(fit["tg_condition"])


def test_tg_ignores_anchors_whose_embedding_jumped_and_identity_reports_the_drift():
    rng = np.random.default_rng(3)
    k, l = 3, 40
    prev = rng.normal(size=(300, k))
    a, b = _affine(rng, k)
    updated = prev @ a.T + b
    updated[:6] += rng.uniform(5, 8, size=(6, k))  # six anchors moved on their own
    gen = torch.Generator().manual_seed(0)
    aligned, fit = carry_reference(
        torch.from_numpy(updated),
        torch.from_numpy(prev[:l]),
        fit=lambda s, d: ransac_affine(s, d, sample_size=k + 1, generator=gen),
    )
    np.testing.assert_allclose(aligned.numpy()[6:], prev[6:], atol=1e-8)
    assert fit["tg_inlier_ratio"] == pytest.approx(34 / 40)
    same, off = carry_reference(torch.from_numpy(updated), torch.from_numpy(prev[:l]), use_tg=False)
    assert torch.equal(same, torch.from_numpy(updated))
    drift = np.sqrt(((updated[:l] - prev[:l]) ** 2).sum(1).mean())
    spread = np.sqrt(((prev[:l] - prev[:l].mean(0)) ** 2).sum(1).mean())
    assert off["tg_residual"] == pytest.approx(drift / spread)
    assert math.isnan(off["tg_condition"])
    with pytest.raises(DataError, match="anchors"):
        carry_reference(torch.zeros(5, k), torch.zeros(l, k))


def test_meeting_iteration_is_where_the_curves_stay_within_the_tolerance():
    nan = math.nan
    rows = [
        {"iteration": 10, "nmi_network": 0.5, "nmi_exact": 0.9},
        {"iteration": 20, "nmi_network": 0.89, "nmi_exact": 0.9},
        {"iteration": 25, "nmi_network": nan, "nmi_exact": nan},  # not evaluated
        {"iteration": 30, "nmi_network": 0.8, "nmi_exact": 0.9},
        {"iteration": 40, "nmi_network": 0.89, "nmi_exact": 0.9},
        {"iteration": 50, "nmi_network": 0.91, "nmi_exact": 0.9},
    ]
    assert meeting_iteration(rows, 0.02) == 40
    assert meeting_iteration(rows[:4], 0.02) is None
    assert meeting_iteration([], 0.02) is None


def _blobs(n: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, 5))
    y = np.repeat(np.arange(3), n // 3)
    return (centres[y] + rng.normal(size=(len(y), 5))).astype(np.float32), y


def _tiny(**kw) -> BASiSJoint:
    base = dict(
        n_components=2,
        n_iter=40,
        spectral_every=10,
        feature_dim=4,
        feature_hidden=(16,),
        hidden=(16, 16),
        batch_pairs=16,
        n_neighbors=10,
        batch_size=96,
        anchors_per_cluster=8,
        eval_every=2,
        snapshots=(10, 40),
        checkpoint_every=20,
        lr=1e-3,
        random_state=0,
        device="cpu",
    )
    base.update(kw)
    return BASiSJoint(**base)


@pytest.fixture(scope="module")
def blobs():
    x, y = _blobs()
    return x[:180], y[:180], x[180:], y[180:]


@pytest.fixture(scope="module")
def fitted(blobs):
    xtr, ytr, xte, yte = blobs
    return _tiny().fit(xtr, ytr, X_eval=xte, y_eval=yte)


def test_fit_logs_every_spectral_step_and_keeps_the_fig8_snapshots(fitted, blobs):
    h = fitted.history_
    assert [r["iteration"] for r in h] == [10, 20, 30, 40]
    assert all(math.isfinite(r["spectral_loss"]) and r["tg_condition"] >= 1 for r in h)
    evaluated = [r for r in h if math.isfinite(r["nmi_network"])]
    assert [r["spectral_step"] for r in evaluated] == [1, 2, 4]  # every 2nd, the first, last
    assert fitted.snapshot_iterations_ == [10, 40]
    m, l = len(fitted.reference_index_), len(fitted.anchor_index_)
    assert fitted.snapshots_["before_40"].shape == (m, 2)
    assert fitted.snapshots_["network_10"].shape == (len(blobs[2]), 2)
    # the carried reference's anchors are what the next T_G aligns to
    np.testing.assert_allclose(fitted.anchor_prev_, fitted.snapshots_["after_40"][:l], atol=1e-5)
    assert fitted.transform(blobs[2]).shape == (len(blobs[2]), 2)
    assert fitted.features(blobs[2]).shape == (len(blobs[2]), 4)
    assert set(fitted.predict(blobs[2])) <= {0, 1, 2}


def test_without_tg_the_reference_is_the_plain_reembedding(blobs):
    xtr, ytr, xte, yte = blobs
    est = _tiny(use_tg=False, n_iter=20).fit(xtr, ytr, X_eval=xte, y_eval=yte)
    np.testing.assert_array_equal(est.snapshots_["before_20"], est.snapshots_["after_20"])
    assert all(math.isnan(r["tg_condition"]) for r in est.history_)


def test_save_and_load_give_the_same_outputs_without_unpickling(fitted, blobs, tmp_path):
    fitted.save(tmp_path / "model.pt")
    back = BASiSJoint.load(tmp_path / "model.pt")
    np.testing.assert_allclose(back.transform(blobs[2]), fitted.transform(blobs[2]), atol=1e-6)
    np.testing.assert_array_equal(back.predict(blobs[2]), fitted.predict(blobs[2]))
    assert back.get_params() == fitted.get_params() | {"device": "cpu"}
    with pytest.raises(DataError, match="fitted on"):
        back.transform(np.zeros((3, 7), dtype=np.float32))


def test_a_killed_run_resumes_to_the_uninterrupted_result(fitted, blobs, tmp_path, monkeypatch):
    xtr, ytr, xte, yte = blobs
    ckpt = tmp_path / "ckpt.pt"
    real = joint_module.contrastive_loss
    calls = {"n": 0}

    def dies_at_iteration_25(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 25:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(joint_module, "contrastive_loss", dies_at_iteration_25)
    with pytest.raises(KeyboardInterrupt):
        _tiny().fit(xtr, ytr, X_eval=xte, y_eval=yte, checkpoint=ckpt)
    monkeypatch.setattr(joint_module, "contrastive_loss", real)
    assert ckpt.exists()
    resumed = _tiny().fit(xtr, ytr, X_eval=xte, y_eval=yte, checkpoint=ckpt)
    assert resumed.resumed_from_ == 20
    for a, b in zip(resumed.history_, fitted.history_, strict=True):
        for key in ("spectral_loss", "feature_loss", "tg_residual", "nmi_network"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7, nan_ok=True)
    np.testing.assert_allclose(resumed.transform(xte), fitted.transform(xte), atol=1e-5)


def test_bad_settings_name_the_key(blobs):
    xtr, ytr, _, _ = blobs
    with pytest.raises(ConfigError, match=r"joint\.spectral_every"):
        _tiny(spectral_every=50).fit(xtr, ytr)
    with pytest.raises(ConfigError, match=r"joint\.anchor_strategy"):
        _tiny(anchor_strategy="nearest").fit(xtr, ytr)
    with pytest.raises(DataError, match="NaN"):
        _tiny().fit(np.full((50, 3), np.nan, dtype=np.float32), ytr[:50])
