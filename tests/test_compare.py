"""basis_nmce.evaluation.compare: the BASiS Table 1 comparison as a library function, on tiny data."""

from __future__ import annotations

import json

from basis_nmce.evaluation.compare import compare, write_tables

from .test_spectral_baselines import blobs


def test_compare_scores_every_method_and_seed(tmp_path):
    x, y = blobs(500)
    rows = compare(
        x[:400],
        y[:400],
        x[400:],
        y[400:],
        n_components=3,
        seeds=(0, 1),
        common={"n_neighbors": 10, "batch_size": 128, "n_iter": 5, "hidden": (16,), "lr": 1e-3},
        per_method={"BASiS": {"n_anchors": 30}},
        probe_epochs=20,
    )
    assert [r["method"] for r in rows] == ["exact"] * 2 + [
        m for m in ("BASiS", "SpectralNet", "SpecNet2", "DiffusionNet") for _ in (0, 1)
    ]
    assert all(r["grassmann"] < 1e-9 for r in rows[:2])  # the reference against itself
    paths = write_tables(rows, tmp_path)
    summary = json.loads(paths["json"].read_text())["summary"]
    assert [s["runs"] for s in summary] == [2] * 5
    assert "±" in paths["md"].read_text()
