"""Features kind siamese (BASiS Sec. 5.2, Eq. 21, Table 2): the networks, the contrastive
loss, the two pairings, training with resume, and the features stage on tiny data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from basis_nmce import data
from basis_nmce.config import validate_config
from basis_nmce.data.dataset import Dataset
from basis_nmce.errors import ConfigError
from basis_nmce.features import siamese
from basis_nmce.features.siamese import (
    PairSampler,
    SiameseGrey,
    SiameseRGB,
    build_siamese,
    contrastive_loss,
    train_siamese,
)
from basis_nmce.io import load_npz
from basis_nmce.stages.features import run_features
from basis_nmce.stages.params import stage_params


def test_contrastive_loss_is_eq21_by_hand():
    z1 = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    z2 = torch.tensor([[0.3, 0.4], [0.3, 0.4], [1.2, 1.6], [0.0, 0.0]])  # d = 0.5, 0.5, 2, 0
    same = torch.tensor([1.0, 0.0, 0.0, 0.0])
    # positive: d^2 = 0.25; negatives: (1 - 0.5)^2 = 0.25, beyond the margin 0, at 0: 1
    expected = (0.25 + 0.25 + 0.0 + 1.0) / 4
    assert float(contrastive_loss(z1, z2, same, margin=1.0)) == pytest.approx(expected, abs=1e-6)
    assert float(contrastive_loss(z1, z2, same, margin=2.0)) == pytest.approx(
        (0.25 + 1.5**2 + 0.0 + 4.0) / 4, abs=1e-6
    )


def test_networks_follow_table2():
    grey = SiameseGrey((1, 28, 28))
    assert grey[-3].in_features == 800  # 50 x 4 x 4, as the authors' fc 800 -> 500
    assert grey(torch.zeros(2, 1, 28, 28)).shape == (2, 16)
    rgb = SiameseRGB((3, 32, 32))
    out = rgb(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 16) and bool(((out >= 0) & (out <= 1)).all())  # sigmoid output
    assert build_siamese("auto", (1, 8, 8))(torch.zeros(1, 1, 8, 8)).shape == (1, 16)  # padded
    assert build_siamese("auto", (3, 16, 16), 4)(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
    assert build_siamese("auto", (6,), 5)(torch.zeros(3, 6)).shape == (3, 5)
    with pytest.raises(ConfigError, match="needs images"):
        build_siamese("grey", (6,))


def test_label_pairs_are_balanced_and_reproducible():
    y = np.repeat(np.arange(4), 25)
    sampler = PairSampler("labels", len(y), labels=y, seed=3)
    i, j, same = sampler(7, 128)
    assert same.sum() == 64 and len(i) == 128
    np.testing.assert_array_equal(y[i] == y[j], same.astype(bool))
    assert not np.any(i[same == 1] == j[same == 1])  # a positive pairs two points
    i2, j2, _ = sampler(7, 128)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(j, j2)
    assert not np.array_equal(sampler(8, 128)[0], i)
    with pytest.raises(ConfigError, match="knn"):
        PairSampler("labels", 4, labels=np.array([0, 1, -1, 0]))


def test_knn_pairs_take_neighbours_as_positives():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(60, 3)).astype(np.float32))
    nbrs = siamese.knn_positives(x, 2)
    i, j, same = PairSampler("knn", 60, neighbours=nbrs, seed=0)(0, 64)
    pos = same == 1
    assert all(j[p] in nbrs[i[p]] for p in np.flatnonzero(pos))
    assert not any(j[p] in nbrs[i[p]] or j[p] == i[p] for p in np.flatnonzero(~pos))


def _two_class_images(n=120, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(2), n // 2)
    x = rng.integers(0, 80, size=(n, 16, 16)).astype(np.uint8)
    x[y == 1, 4:12, 4:12] = 250
    return x, y


def test_training_lowers_the_loss_and_resumes(tmp_path, monkeypatch):
    x, y = _two_class_images()
    xt = torch.from_numpy(x[:, None].astype(np.float32) / 255)
    sampler = PairSampler("labels", len(y), labels=y, seed=0)

    def run(**kw):
        torch.manual_seed(0)
        model = build_siamese("grey", (1, 16, 16), 4)
        res = train_siamese(model, xt, sampler, steps=40, batch_pairs=32, seed=0, **kw)
        return model, res

    model, res = run()
    losses = [h["loss"] for h in res.history]
    assert np.mean(losses[-10:]) < np.mean(losses[:10])
    real_save = siamese.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(siamese, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(checkpoint=tmp_path / "ckpt.pt", checkpoint_every=20)
    monkeypatch.setattr(siamese, "save_checkpoint", real_save)
    resumed, res2 = run(checkpoint=tmp_path / "ckpt.pt", checkpoint_every=20)
    assert res2.resumed_from == 20
    assert [h["loss"] for h in res2.history] == losses
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("pairing", ["labels", "knn"])
def test_features_stage_records_the_pairing(tmp_path, pairing):
    x, y = _two_class_images(80)
    meta = {"name": "tiny", "source": "npz", "n_classes": 2, "image_shape": [16, 16]}
    test = np.arange(80) % 4 == 0
    prepared = tmp_path / "tiny.npz"
    data.save_prepared(
        prepared, Dataset(x[~test], y[~test], x[test], y[test], {**meta, "split": "holdout"})
    )
    cfg = validate_config(
        {
            "device": "cpu",
            "datasets": {"tiny": {"source": "npz", "path": "tiny.npz"}},
            "run": {"datasets": ["tiny"], "features": ["siamese"]},
            "features": {"siamese": {"steps": 5, "batch_pairs": 16, "pairing": pairing}},
        }
    )
    out = tmp_path / "features.npz"
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    ckpt.parent.mkdir()
    run_features(stage_params(cfg, "features", "tiny", "siamese"), prepared, out, checkpoint=ckpt)
    feats = load_npz(out)
    assert feats["train"].shape == (60, 16) and feats["test"].shape == (20, 16)
    info = json.loads(out.with_suffix(".json").read_text())["siamese"]
    assert info["pairing"] == pairing and info["network"] == "grey" and info["steps"] == 5
    assert not ckpt.exists()  # removed once the outputs exist
