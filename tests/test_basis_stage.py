"""The BASiS stages through the real pipeline: outputs, figures' data, kill and resume."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from basis_nmce import BASiS
from basis_nmce.io import load_npz

from .helpers import SNAKEMAKE, TINY_CONFIG, kill_snakemake_once, make_project, run

pytestmark = pytest.mark.slow


def _config(n_iter: int) -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["run"] = {"datasets": ["moons"], "features": ["raw"], "methods": ["basis_train"]}
    cfg["basis"].update({"n_iter": n_iter, "checkpoint_every": 25, "hidden": [64, 64]})
    return cfg


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    return make_project(tmp_path_factory.mktemp("basis"), _config(600))


def test_killed_training_resumes_from_its_checkpoint(proj):
    folder = proj / "results/basis_train/moons/raw"
    ckpt = proj / "results/checkpoints/basis_train/moons/raw/checkpoint.pt"
    run([*SNAKEMAKE, "--until", "basis_reference"], proj)
    kill_snakemake_once("basis_train", proj, ckpt)
    assert not (folder / "embedding.json").exists()
    run([*SNAKEMAKE, "--until", "basis_train"], proj)

    meta = json.loads((folder / "embedding.json").read_text())
    assert meta["n_iter"] == 600
    assert 25 <= meta["resumed_from"] < 600 and meta["resumed_from"] % 25 == 0
    log = np.genfromtxt(folder / "log.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(log["step"], np.arange(1, 601))
    assert not ckpt.exists(), "the checkpoint is removed once the outputs exist"

    # The resumed run ends where an uninterrupted one does.
    resumed = load_npz(folder / "embedding.npz")["test"]
    run([*SNAKEMAKE, "--until", "basis_train", "--forcerun", "basis_train"], proj)
    fresh_meta = json.loads((folder / "embedding.json").read_text())
    assert fresh_meta["resumed_from"] == 0
    np.testing.assert_allclose(load_npz(folder / "embedding.npz")["test"], resumed, atol=1e-5)


def test_outputs_and_saved_model(proj):
    """Runs after the resume test (same project): every output and a loadable model."""
    folder = proj / "results/basis_train/moons/raw"
    if not (folder / "embedding.npz").exists():
        run([*SNAKEMAKE, "--until", "basis_train"], proj)
    emb = load_npz(folder / "embedding.npz")
    ref = load_npz(proj / "results/basis_reference/moons/raw/reference.npz")
    n_anchors = len(ref["anchor_index"])
    assert emb["train"].shape[1] == 1 and emb["test"].shape[1] == 1
    anchors = load_npz(folder / "anchors.npz")
    assert anchors["raw"].shape == (20, n_anchors, 1) == anchors["aligned"].shape
    # After alignment the anchors sit near the reference; before, up to sign and scale, not.
    # Medians: RANSAC leaves outlying anchors out of the fit (here the few anchors of a piece
    # that the 128-point batch graphs barely connect, with reference coordinates up to 6).
    err_after = np.median(np.abs(anchors["aligned"] - anchors["reference"][None]))
    err_before = np.median(np.abs(anchors["raw"] - anchors["reference"][None]))
    assert err_after < 0.1 < err_before or err_after < 0.5 * err_before
    grid = load_npz(folder / "grid.npz")
    assert grid["values"].shape == (200, 200, 1)
    model = BASiS.load(folder / "model.pt")
    feats = load_npz(proj / "results/features/moons/raw/features.npz")
    np.testing.assert_allclose(model.transform(feats["test"]), emb["test"], atol=1e-6)
    np.testing.assert_array_equal(model.predict(feats["test"]), emb["clusters_test"])
