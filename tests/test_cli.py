"""The command line: every stage end to end on a user's .npz, and errors naming key or file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from basis_nmce.cli import main
from basis_nmce.io import load_npz

from .helpers import TINY_CONFIG, write_blobs_npz


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_blobs_npz(tmp_path / "blobs.npz")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return tmp_path


def _chain(dataset: str) -> dict:
    assert main(["fetch", "--dataset", dataset, "--out", f"data/raw/{dataset}"]) == 0
    assert (
        main(
            [
                "prepare",
                "--dataset",
                dataset,
                "--raw",
                f"data/raw/{dataset}",
                "--out",
                f"data/prepared/{dataset}.npz",
            ]
        )
        == 0
    )
    feats = f"results/features/{dataset}/raw/features.npz"
    assert (
        main(
            [
                "features",
                "--dataset",
                dataset,
                "--kind",
                "raw",
                "--prepared",
                f"data/prepared/{dataset}.npz",
                "--out",
                feats,
            ]
        )
        == 0
    )
    emb = f"results/analytic/{dataset}/raw/embedding.npz"
    assert (
        main(
            [
                "analytic",
                "--dataset",
                dataset,
                "--features",
                feats,
                "--prepared",
                f"data/prepared/{dataset}.npz",
                "--out",
                emb,
                "--threads",
                "1",
            ]
        )
        == 0
    )
    metrics = f"results/evaluate/{dataset}/raw/analytic/metrics.json"
    assert (
        main(
            [
                "evaluate",
                "--dataset",
                dataset,
                "--method",
                "analytic",
                "--embedding",
                emb,
                "--reference",
                emb,
                "--prepared",
                f"data/prepared/{dataset}.npz",
                "--features",
                feats,
                "--out",
                metrics,
            ]
        )
        == 0
    )
    return json.loads(open(metrics).read())


def test_user_npz_through_every_stage(project):
    m = _chain("blobs")
    for key in ("grassmann", "orthogonality", "nmi", "acc", "ari", "linear_acc"):
        assert key in m and m[key] is not None
    assert m["grassmann"] == pytest.approx(0.0, abs=1e-8)  # the reference against itself
    assert m["orthogonality"] < 1e-6  # sqrt(n)-scaled exact eigenvectors
    assert m["acc"] == 1.0 and m["nmi"] == pytest.approx(1.0)
    emb = load_npz("results/analytic/blobs/raw/embedding.npz")
    assert emb["train"].shape == (300, 3) and emb["test"].shape == (60, 3)
    n = len(emb["train"])
    np.testing.assert_allclose(emb["train"].T @ emb["train"] / n, np.eye(3), atol=1e-4)
    assert (
        main(
            [
                "report",
                "--metrics",
                "results/evaluate/blobs/raw/analytic/metrics.json",
                "--out",
                "results/report",
            ]
        )
        == 0
    )
    assert "blobs" in open("results/report/metrics.md").read()
    assert any((project / "results/report/figures").rglob("*.png"))


def test_toy_chain_clusters_two_moons(project):
    m = _chain("moons")
    assert m["acc"] == 1.0


def test_bad_config_value_exits_2_naming_key(project, capsys):
    assert main(["check-config", "--set", "graph.laplacian=normalized"]) == 2
    assert "graph.laplacian" in capsys.readouterr().err


def test_unknown_dataset_exits_2(project, capsys):
    assert main(["fetch", "--dataset", "nope", "--out", "data/raw/nope"]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "datasets" in err


def test_nan_in_user_file_stops_prepare_naming_file(project, capsys):
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    x[4, 1] = np.nan
    np.savez(project / "blobs.npz", x_train=x, y_train=np.zeros(50, dtype=np.int64))
    code = main(["fetch", "--dataset", "blobs", "--out", "data/raw/blobs"])
    if code == 0:
        code = main(
            [
                "prepare",
                "--dataset",
                "blobs",
                "--raw",
                "data/raw/blobs",
                "--out",
                "data/prepared/blobs.npz",
            ]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert "x_train" in err and "blobs.npz" in err and "NaN" in err
    assert not (project / "data/prepared/blobs.npz").exists()


def test_bad_params_json(project, capsys):
    assert (
        main(
            [
                "features",
                "--params",
                "{not json",
                "--dataset",
                "blobs",
                "--kind",
                "raw",
                "--prepared",
                "x.npz",
                "--out",
                "y.npz",
            ]
        )
        == 2
    )
    assert "--params" in capsys.readouterr().err
