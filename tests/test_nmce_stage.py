"""The NMCE pipeline stages on tiny data (seconds): outputs, evaluation, resume, guards."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from basis_nmce import data
from basis_nmce.cli import main
from basis_nmce.config import validate_config
from basis_nmce.data.dataset import Dataset
from basis_nmce.errors import ConfigError, DataError, TrainingError
from basis_nmce.features import raw_features
from basis_nmce.io import load_npz, save_npz
from basis_nmce.nmce import load_network
from basis_nmce.stages import nmce as stages
from basis_nmce.stages.evaluate import run_evaluate_nmce
from basis_nmce.stages.features import run_features
from basis_nmce.stages.params import stage_params

from .helpers import TINY_CONFIG

NMCE = TINY_CONFIG["nmce"]  # the pipeline tests' tiny NMCE settings


def _config(nmce: dict | None = None, evaluate: dict | None = None) -> dict:
    return validate_config(
        {
            "device": "cpu",
            "datasets": {"blobs": {"source": "npz", "path": "blobs.npz"}},
            "run": {"datasets": ["blobs"]},
            "nmce": {**copy.deepcopy(NMCE), **(nmce or {})},
            "evaluate": {"nmce": evaluate or {}},
        }
    )


def _blobs(n: int = 240, dim: int = 6, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=6.0, size=(classes, dim))
    y = np.repeat(np.arange(classes), n // classes)
    x = (centres[y] + rng.normal(size=(len(y), dim))).astype(np.float32)
    test = np.arange(len(y)) % 4 == 0
    meta = {"name": "blobs", "source": "npz", "n_classes": classes, "image_shape": None}
    return Dataset(x[~test], y[~test], x[test], y[test], {**meta, "split": "holdout"})


@pytest.fixture
def blobs(tmp_path) -> tuple[Path, Path]:
    ds = _blobs()
    prepared = tmp_path / "prepared.npz"
    data.save_prepared(prepared, ds)
    tr, te = raw_features(ds.x_train, ds.x_test)
    features = tmp_path / "features.npz"
    save_npz(features, train=tr, test=te)
    return prepared, features


def _params(cfg: dict, stage: str, method: str | None = None) -> dict:
    return stage_params(cfg, stage, "blobs", "raw", method)


def _evaluate(cfg, method, folder: Path, prepared, features) -> dict:
    out = folder / "metrics" / method / "metrics.json"
    return run_evaluate_nmce(
        _params(cfg, "evaluate", method),
        method,
        folder / method / "embedding.npz",
        prepared,
        out,
        features,
    )


def test_three_stages_write_their_outputs_and_are_scored_on_test(tmp_path, blobs):
    prepared, features = blobs
    cfg = _config()
    res = tmp_path / "results"
    ckpt = tmp_path / "ckpt" / "checkpoint.pt"
    stages.run_nmce_tcr(
        _params(cfg, "nmce_tcr"), features, prepared, res / "nmce_tcr/embedding.npz", ckpt
    )
    stages.run_nmce_cluster(
        _params(cfg, "nmce_cluster"),
        features,
        prepared,
        res / "nmce_tcr/model.pt",
        res / "nmce_cluster/embedding.npz",
    )
    stages.run_nmce_finetune(
        _params(cfg, "nmce_finetune"),
        features,
        prepared,
        res / "nmce_cluster/model.pt",
        res / "nmce_finetune/embedding.npz",
    )
    assert not ckpt.exists() and not ckpt.with_suffix(".json").exists()
    for method, steps in (("nmce_tcr", 6), ("nmce_cluster", 4), ("nmce_finetune", 4)):
        folder = res / method
        emb = load_npz(folder / "embedding.npz")
        assert emb["train"].shape == (180, 4) and emb["test"].shape == (60, 4)
        np.testing.assert_allclose(np.linalg.norm(emb["test"], axis=1), 1.0, atol=1e-5)
        assert ("clusters_test" in emb) == (method != "nmce_tcr")
        meta = json.loads((folder / "embedding.json").read_text())
        assert meta["method"] == method and meta["steps"] == steps and meta["n_clusters"] == 3
        log = np.genfromtxt(folder / "log.csv", delimiter=",", names=True)
        np.testing.assert_array_equal(log["step"], np.arange(2, steps + 1, 2))
        model, _ = load_network(folder / "model.pt")
        x_test = load_npz(features)["test"]
        z = stages.embed(model, stages.torch.from_numpy(x_test)).numpy()
        np.testing.assert_allclose(z, emb["test"], atol=1e-5)

        m = _evaluate(cfg, method, res, prepared, features)
        assert m["split"] == "test" and m["n_test"] == 60 and m["n_clusters"] == 3
        for key in ("acc", "nmi", "ari", "knn_acc", "svm_acc", "nearsub_acc", "sc_acc"):
            assert 0.0 <= m[key] <= 1.0 or key in ("ari",), key
        assert "cluster head" in m["clusters_from"] or method == "nmce_tcr"
        pred = load_npz(res / "metrics" / method / "predictions.npz")["clusters_test"]
        assert pred.shape == (60,)
    # The stage-2 backbone is stage 1's (frozen): only the heads differ.
    a, _ = load_network(res / "nmce_tcr/model.pt")
    b, _ = load_network(res / "nmce_cluster/model.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if k.startswith("backbone"):
            np.testing.assert_array_equal(va.numpy(), vb.numpy())


def test_joint_and_zero_step_finetune(tmp_path, blobs):
    prepared, features = blobs
    res = tmp_path / "results"
    joint = _config({"joint": True, "finetune": {"steps": 3}})
    stages.run_nmce_finetune(
        _params(joint, "nmce_finetune"), features, prepared, None, res / "j/embedding.npz"
    )
    meta = json.loads((res / "j/embedding.json").read_text())
    assert meta["stage"] == "joint" and meta["initial_model"] is None
    assert "clusters_test" in load_npz(res / "j/embedding.npz")

    cfg = _config({"finetune": {"steps": 0}})
    stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), features, prepared, res / "t/embedding.npz")
    stages.run_nmce_cluster(
        _params(cfg, "nmce_cluster"),
        features,
        prepared,
        res / "t/model.pt",
        res / "c/embedding.npz",
    )
    stages.run_nmce_finetune(
        _params(cfg, "nmce_finetune"),
        features,
        prepared,
        res / "c/model.pt",
        res / "f/embedding.npz",
    )
    c, f = load_npz(res / "c/embedding.npz"), load_npz(res / "f/embedding.npz")
    np.testing.assert_allclose(c["test"], f["test"], atol=1e-6)
    np.testing.assert_array_equal(c["clusters_test"], f["clusters_test"])
    with pytest.raises(ConfigError, match="pass --model"):
        stages.run_nmce_cluster(
            _params(cfg, "nmce_cluster"), features, prepared, None, res / "x/embedding.npz"
        )


def test_restarts_keep_the_least_violating_run_and_resume(tmp_path, blobs, monkeypatch):
    """nmce.restarts trains the joint stage per seed and keeps the smallest D (here in this
    process: the test runs with one torch thread, so one worker); a killed run resumes every
    restart from its own checkpoint, and the checkpoints go once the outputs exist."""
    prepared, features = blobs
    monkeypatch.setattr(stages.torch, "get_num_threads", lambda: 1)
    cfg = _config({"joint": True, "restarts": 3, "finetune": {"steps": 4}})
    out = tmp_path / "j/embedding.npz"
    ckpt = tmp_path / "checkpoints/checkpoint.pt"
    real_save = stages.save_npz

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stages, "save_npz", die)
    with pytest.raises(KeyboardInterrupt):
        stages.run_nmce_finetune(_params(cfg, "nmce_finetune"), features, prepared, None, out, ckpt)
    written = sorted(p.name for p in ckpt.parent.glob("*.pt"))
    monkeypatch.setattr(stages, "save_npz", real_save)
    stages.run_nmce_finetune(_params(cfg, "nmce_finetune"), features, prepared, None, out, ckpt)
    meta = json.loads(out.with_suffix(".json").read_text())
    runs = meta["restarts"]
    assert [r["seed"] for r in runs] == list(range(len(runs))) and meta["resumed_from"] == 4
    assert written == [f"checkpoint.restart{k}.pt" for k in range(len(runs))]
    # restarts stop at the first that uses every cluster with D = 0
    done = [r["violation"] == 0 and r["clusters_used"] == 3 for r in runs]
    assert (len(runs) == 3 or done[-1]) and not any(done[:-1])
    best = min(runs, key=lambda r: (-r["clusters_used"], r["violation"], r["seed"]))
    assert meta["kept_seed"] == best["seed"]
    assert not list(ckpt.parent.iterdir())
    # the kept restart is the model written: restarting once with its seed gives the same
    once = _config({"joint": True, "finetune": {"steps": 4}})
    params = _params(once, "nmce_finetune")
    params["seed"] = best["seed"]
    stages.run_nmce_finetune(params, features, prepared, None, tmp_path / "o/embedding.npz")
    np.testing.assert_allclose(
        load_npz(out)["test"], load_npz(tmp_path / "o/embedding.npz")["test"]
    )
    # stage 1 trains once whatever restarts says, and does not depend on it
    assert "restarts" not in _params(cfg, "nmce_tcr")["nmce"]


def test_checkpoint_is_resumed_and_discarded_when_settings_change(tmp_path, blobs, monkeypatch):
    prepared, features = blobs
    cfg = _config()
    out = tmp_path / "tcr/embedding.npz"
    ckpt = tmp_path / "checkpoints/checkpoint.pt"
    real_save = stages.save_npz

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # killed after training, before the outputs

    monkeypatch.setattr(stages, "save_npz", die)
    with pytest.raises(KeyboardInterrupt):
        stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), features, prepared, out, ckpt)
    assert ckpt.exists()
    monkeypatch.setattr(stages, "save_npz", real_save)
    stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), features, prepared, out, ckpt)
    assert json.loads(out.with_suffix(".json").read_text())["resumed_from"] == 6
    resumed = load_npz(out)["test"]

    monkeypatch.setattr(stages, "save_npz", die)
    with pytest.raises(KeyboardInterrupt):
        stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), features, prepared, out, ckpt)
    monkeypatch.setattr(stages, "save_npz", real_save)
    other = _config({"tcr": {"steps": 6, "lr": 0.01}})
    stages.run_nmce_tcr(_params(other, "nmce_tcr"), features, prepared, out, ckpt)
    assert json.loads(out.with_suffix(".json").read_text())["resumed_from"] == 0
    assert not np.allclose(load_npz(out)["test"], resumed)


def test_nan_stops_the_stage_with_a_message(tmp_path, blobs, capsys):
    prepared, features = blobs
    f = load_npz(features)
    f["train"][3, 0] = np.nan
    bad = tmp_path / "nan.npz"
    save_npz(bad, **f)
    cfg = _config()
    # NaN in the input is the input's fault: named with its file at once (not a learning rate)
    with pytest.raises(DataError, match=r"nan\.npz: array 'train' contains 1 NaN .*row 3"):
        stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), bad, prepared, tmp_path / "o/e.npz")
    params = json.dumps(_params(cfg, "nmce_tcr"))
    argv = ["nmce_tcr", "--params", params, "--dataset", "blobs", "--features", str(bad)]
    argv += ["--prepared", str(prepared), "--out", str(tmp_path / "o/e.npz")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "basis-nmce nmce_tcr: error: --features" in err and "nan.npz" in err
    assert "'train' contains 1 NaN" in err and "learning rate" not in err
    assert not (tmp_path / "o/e.npz").exists()


def test_feature_collapse_stops_the_stage(tmp_path, blobs):
    prepared, features = blobs
    f = load_npz(features)
    const = tmp_path / "const.npz"
    save_npz(const, train=np.ones_like(f["train"]), test=f["test"])
    cfg = _config(
        {"collapse_patience": 3, "augmentation": {"kind": "noise", "options": {"std": 0}}}
    )
    with pytest.raises(TrainingError, match="features collapsed"):
        stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), const, prepared, tmp_path / "o/e.npz")


def test_images_with_a_cnn_and_augmented_copies(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 40)
    x = rng.integers(0, 60, size=(80, 8, 8)).astype(np.uint8)
    x[y == 1, 2:6, 2:6] = 250  # class 1: a bright square
    meta = {"name": "tiny", "source": "npz", "n_classes": 2, "image_shape": [8, 8]}
    test = np.arange(80) % 4 == 0
    prepared = tmp_path / "tiny.npz"
    data.save_prepared(
        prepared, Dataset(x[~test], y[~test], x[test], y[test], {**meta, "split": "holdout"})
    )
    cfg = validate_config(
        {
            "device": "cpu",
            "datasets": {"tiny": {"source": "npz", "path": "tiny.npz"}},
            "run": {"datasets": ["tiny"]},
            "nmce": {
                "network": "cnn_small",
                "network_options": {"pre_feature_dim": 16},
                "feature_dim": 4,
                "augmentation": {"kind": "grey", "options": {"degrees": 5}},
                "batch_size": 16,
                "tcr": {"steps": 2},
                "cluster": {"steps": 2},
                "finetune": {"steps": 1},
            },
            "evaluate": {"nmce": {"augmented_copies": 2, "subspace_clustering": "none"}},
        }
    )
    params = stage_params(cfg, "nmce_tcr", "tiny", "raw")
    stages.run_nmce_tcr(params, None, prepared, tmp_path / "nmce_tcr/embedding.npz")
    m = run_evaluate_nmce(
        stage_params(cfg, "evaluate", "tiny", "raw", "nmce_tcr"),
        "nmce_tcr",
        tmp_path / "nmce_tcr/embedding.npz",
        prepared,
        tmp_path / "eval/metrics.json",
    )
    assert m["augmented_copies"] == 2 and 0 <= m["knn_acc_aug"] <= 1
    assert m["acc"] is None and "subspace_clustering" not in m  # no head, no clustering
    # Features kind tcr: the same stage-1 training, as features for the spectral methods.
    out = tmp_path / "features/tcr/features.npz"
    run_features(stage_params(cfg, "features", "tiny", "tcr"), prepared, out)
    feats = load_npz(out)
    assert feats["train"].shape == (60, 4) and feats["test"].shape == (20, 4)
    assert json.loads(out.with_suffix(".json").read_text())["tcr"]["steps"] == 2
    # The pipeline passes the nmce_tcr model instead: its features, no second training.
    run_features(
        stage_params(cfg, "features", "tiny", "tcr"),
        prepared,
        out,
        model=tmp_path / "nmce_tcr/model.pt",
    )
    stage1 = load_npz(tmp_path / "nmce_tcr/embedding.npz")
    feats = load_npz(out)
    for split in ("train", "test"):
        np.testing.assert_allclose(feats[split], stage1[split], atol=1e-6)
    assert json.loads(out.with_suffix(".json").read_text())["tcr"]["from"] == "nmce_tcr"


def test_vector_data_need_the_mlp(tmp_path, blobs):
    prepared, features = blobs
    cfg = _config({"network": "cnn_small"})
    with pytest.raises(ConfigError, match="needs images"):
        stages.run_nmce_tcr(_params(cfg, "nmce_tcr"), features, prepared, tmp_path / "e.npz")


def test_cli_runs_each_stage_and_the_report(tmp_path, monkeypatch):
    """Every NMCE command by hand, reading config.yaml (the tiny test config), then the report."""
    import yaml

    from .helpers import TINY_CONFIG, write_blobs_npz

    monkeypatch.chdir(tmp_path)
    write_blobs_npz(tmp_path / "blobs.npz")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    prep, feats = "data/prepared/blobs.npz", "results/features/blobs/raw/features.npz"
    assert main(["fetch", "--dataset", "blobs", "--out", "data/raw/blobs"]) == 0
    assert main(["prepare", "--dataset", "blobs", "--raw", "data/raw/blobs", "--out", prep]) == 0
    base = ["--dataset", "blobs", "--prepared", prep]
    assert main(["features", *base, "--kind", "raw", "--out", feats]) == 0
    previous = None
    metrics = []
    for stage in ("nmce_tcr", "nmce_cluster", "nmce_finetune"):
        out = f"results/{stage}/blobs/raw/embedding.npz"
        argv = [stage, *base, "--features", feats, "--out", out, "--threads", "1"]
        argv += ["--checkpoint", f"results/checkpoints/{stage}/blobs/raw/checkpoint.pt"]
        if previous:
            argv += ["--model", previous]
        assert main(argv) == 0, stage
        previous = f"results/{stage}/blobs/raw/model.pt"
        m = f"results/evaluate/blobs/raw/{stage}/metrics.json"
        argv = ["evaluate", *base, "--method", stage, "--embedding", out, "--features", feats]
        assert main([*argv, "--out", m]) == 0
        metrics.append(m)
        assert json.loads(Path(m).read_text())["split"] == "test"
    assert main(["report", "--metrics", *metrics, "--out", "results/report"]) == 0
    summary = json.loads(Path("results/report/metrics.json").read_text())
    assert set(summary["blobs/raw/nmce_finetune"]) >= {"acc", "knn_acc", "svm_acc", "nearsub_acc"}
    assert Path("results/report/training/blobs_raw_nmce_tcr.csv").exists()
    assert Path("results/report/figures/blobs/raw/nmce_finetune/training.png").exists()
    assert "nmce_finetune" in Path("results/report/metrics.md").read_text()


def test_stage_settings_reach_the_training_config():
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["nmce"]["finetune"] = {"steps": 7, "betas": [0.9, 0.99], "weight_decay": 1e-5}
    nmce = validate_config(cfg)["nmce"]
    tc = stages.train_config(nmce, "finetune", seed=3, device="cpu")
    assert (tc.steps, tc.betas, tc.weight_decay, tc.seed) == (7, (0.9, 0.99), 1e-5, 3)
    assert stages.train_config(nmce, "tcr", seed=3, device="cpu").betas == (0.9, 0.999)
    cfg["nmce"]["finetune"]["betas"] = [0.9, 1.0]
    with pytest.raises(ConfigError, match="betas"):
        validate_config(cfg)
