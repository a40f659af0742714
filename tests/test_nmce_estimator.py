"""The NMCE estimator (basis_nmce.NMCE): scikit-learn API, stages, D budget, files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from basis_nmce import NMCE
from basis_nmce.errors import ConfigError, DataError
from basis_nmce.evaluation.metrics import cluster_accuracy
from basis_nmce.io import load_model
from basis_nmce.nmce import load_network
from basis_nmce.nmce.estimator import STAGE_DEFAULTS
from basis_nmce.nmce.train import TrainConfig, train_joint

SMALL = {
    "feature_dim": 4,
    "network_options": {"width": 16, "depth": 2},
    "batch_size": 64,
    "random_state": 0,
    "device": "cpu",
    "log_every": 2,
}


def blobs(n: int = 180, seed: int = 0, scale: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated blobs in the plane, in the user's own units (not standardised)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    centres = np.array([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]]) * scale
    return (centres[y] + scale * 0.4 * rng.normal(size=(n, 2))).astype(np.float32), y


def small(**kw) -> NMCE:
    stages = {"tcr": {"steps": 6}, "cluster": {"steps": 4}, "finetune": {"steps": 4}}
    return NMCE(n_clusters=3, **{**SMALL, "restarts": 1, **stages, **kw})


def test_fit_predict_transform_on_a_users_array():
    x, _ = blobs()
    x_new, _ = blobs(30, seed=1)
    est = small()
    labels = est.fit(x).predict(x_new)
    assert labels.shape == (30,) and labels.dtype == np.int64 and set(labels) <= {0, 1, 2}
    z = est.transform(x_new)
    assert z.shape == (30, 4)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    assert est.stages_ == ["tcr", "cluster", "finetune"]
    assert [r["step"] for r in est.history_["tcr"]] == [2, 4, 6]
    assert 0.0 <= est.D_ <= 1.0 and 1 <= est.clusters_used_ <= 3
    np.testing.assert_array_equal(small().fit_predict(x), est.predict(x))
    assert est.n_features_in_ == 2


def test_the_issue_one_liner_clusters_two_blobs():
    """``NMCE(n_clusters=2).fit(x).predict(x_new)`` as a user writes it, defaults untouched."""
    rng = np.random.default_rng(0)
    y = np.arange(400) % 2
    x = np.array([[-3.0, 0.0], [3.0, 0.0]])[y] + 0.5 * rng.normal(size=(400, 2))
    x_new = np.array([[-3.0, 0.0], [3.0, 0.0]])[y[:50]] + 0.5 * rng.normal(size=(50, 2))
    torch.manual_seed(0)
    pred = NMCE(n_clusters=2).fit(x).predict(x_new)
    assert cluster_accuracy(y[:50], pred) == 1.0


def test_stages_one_call_equal_stages_one_by_one():
    """The pipeline runs one stage per job: continuing a fitted model stage by stage gives
    the model fit() gives in one call."""
    x, _ = blobs()
    whole = small().fit(x)
    parts = small().fit(x, stages=("tcr",))
    with pytest.raises(ConfigError, match="no cluster head"):
        parts.predict(x)
    parts.fit(x, stages=("cluster",)).fit(x, stages=("finetune",))
    np.testing.assert_array_equal(whole.transform(x), parts.transform(x))
    with pytest.raises(ConfigError, match="continues a trained network"):
        small().fit(x, stages=("cluster",))


def test_save_and_load_without_unpickling(tmp_path):
    x, _ = blobs()
    est = small(restarts=2, n_jobs=1).fit(x)
    est.save(tmp_path / "model.pt")
    _, meta = load_model(tmp_path / "model.pt")  # weights_only: tensors and JSON only
    assert meta["class"] == "NMCE" and meta["params"]["n_clusters"] == 3
    back = NMCE.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(back.predict(x), est.predict(x))
    np.testing.assert_allclose(back.transform(x), est.transform(x), atol=0)
    assert back.get_params() == {**est.get_params(), "device": "cpu"}
    assert back.history_ == json.loads(json.dumps(est.history_))
    assert back.D_ == est.D_ and back.stages_ == est.stages_ and back.restarts_ == est.restarts_
    # the scaling learnt on the user's units travels with the model
    np.testing.assert_allclose(back.scale_[0], est.scale_[0])
    # a pipeline model reader sees the same network
    net, _ = load_network(tmp_path / "model.pt")
    assert net.spec["name"] == "mlp"
    (tmp_path / "model.json").write_text(json.dumps({**meta, "class": "BASiS"}))
    with pytest.raises(DataError, match="not an NMCE model"):
        NMCE.load(tmp_path / "model.pt")


def test_params_clone_and_set_params():
    est = small(lam=7.0)
    params = est.get_params()
    assert params["lam"] == 7.0 and params["n_clusters"] == 3 and params["network"] == "auto"
    copy = clone(est)
    assert copy.get_params() == params and not hasattr(copy, "network_")
    copy.set_params(tau=0.2, finetune={"steps": 9, "max_steps": 12})
    tc = copy.train_config("joint")
    assert (tc.tau, tc.steps, tc.max_steps, tc.lam) == (0.2, 9, 12, 7.0)
    with pytest.raises(ConfigError, match="unknown setting"):
        small(tcr={"stpes": 3}).fit(blobs()[0])


def test_stage_keys_are_the_schema_keys():
    schema = yaml.safe_load(open("src/basis_nmce/schemas/config.schema.yaml"))
    assert set(schema["$defs"]["nmce_stage"]["properties"]) == set(STAGE_DEFAULTS)


def test_images_channels_last_and_first_agree():
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    kw = {"network_options": {"pre_feature_dim": 8}, "batch_size": 16}
    a = small(**kw).fit(imgs)
    assert a.spec_["name"] == "cnn_small" and a.spec_["in_shape"] == [1, 8, 8]
    b = small(**kw).fit(torch.from_numpy(imgs).permute(0, 3, 1, 2).contiguous())
    np.testing.assert_allclose(a.transform(imgs[:5]), b.transform(imgs[:5, ..., 0]), atol=1e-6)
    with pytest.raises(ConfigError, match="takes vectors"):
        small(network="mlp").fit(imgs)


def test_errors_name_the_problem():
    x, _ = blobs()
    with pytest.raises(NotFittedError):
        small().predict(x)
    est = small().fit(x)
    with pytest.raises(DataError, match="fitted on"):
        est.predict(np.zeros((3, 5)))
    with pytest.raises(DataError, match="2-D vectors"):
        est.predict(x[0])
    with pytest.raises(ConfigError, match="network"):
        small(network="resnet").fit(x)
    with pytest.raises(ConfigError, match="n_clusters"):
        NMCE(n_clusters=1).fit(x)
    with pytest.raises(ConfigError, match="kmeans"):
        small(joint=True, cluster_head_init="kmeans").fit(x)


# ------------------------------------------------------------------ D budget (max_steps)


def _joint(steps: int, **kw) -> TrainConfig:
    base = {"batch_size": 64, "lr": 3e-3, "eps": 0.1, "lam": 5.0, "log_every": 1, "seed": 0}
    return TrainConfig(steps=steps, **{**base, **kw})


def test_training_past_steps_is_the_same_run_and_stops_at_d_zero():
    """max_steps only adds steps: the run up to `steps` is the plain run, and it stops at the
    first check where D = 0 with every cluster used (or at max_steps)."""
    from basis_nmce.nmce.augment import make_augmenter
    from basis_nmce.nmce.networks import build_network

    x = torch.from_numpy(blobs(scale=1.0)[0])
    aug = make_augmenter("noise", std=0.05)

    def net():
        return build_network("mlp", (2,), 4, 3, seed=0, width=16, depth=2)

    plain, extended = net(), net()
    a = train_joint(plain, x, aug, _joint(6))
    b = train_joint(extended, x, aug, _joint(6, max_steps=400, check_every=3))
    without_d = [{k: v for k, v in r.items() if k != "D"} for r in b.history]
    assert a.history == without_d[: len(a.history)]
    assert b.checks and b.checks[0]["step"] == 6
    assert all(c["step"] % 3 == 0 for c in b.checks)
    assert b.steps == b.checks[-1]["step"] <= 400
    assert b.satisfied == (b.steps < 400 or b.checks[-1]["satisfied"])
    if b.satisfied:
        assert b.checks[-1]["D"] == 0.0 and b.checks[-1]["clusters_used"] == 3
    assert all(not c["satisfied"] for c in b.checks[:-1])
    assert "D" in b.history[-1]


def test_extended_run_resumes_to_the_same_end(tmp_path):
    from basis_nmce.nmce.augment import make_augmenter
    from basis_nmce.nmce.networks import build_network

    x = torch.from_numpy(blobs(scale=1.0)[0])
    aug = make_augmenter("noise", std=0.05)
    cfg = _joint(4, max_steps=40, check_every=4, checkpoint_every=8)
    whole = train_joint(build_network("mlp", (2,), 4, 3, seed=0, width=16, depth=2), x, aug, cfg)
    ck = tmp_path / "ck.pt"
    m = build_network("mlp", (2,), 4, 3, seed=0, width=16, depth=2)
    first = train_joint(m, x, aug, cfg, checkpoint=ck)
    again = train_joint(
        build_network("mlp", (2,), 4, 3, seed=0, width=16, depth=2), x, aug, cfg, checkpoint=ck
    )
    assert first.steps == again.steps == whole.steps and again.checks == whole.checks


def test_estimator_records_budget_and_outcome():
    x, _ = blobs(scale=1.0)
    est = NMCE(
        n_clusters=3,
        joint=True,
        finetune={"steps": 10, "max_steps": 30},
        check_every=10,
        d_tolerance=0.0,
        restarts=2,
        n_jobs=1,
        augmentation_options={"std": 0.05},
        **{k: v for k, v in SMALL.items()},
    ).fit(x)
    assert est.budget_ == {
        "stage": "joint",
        "restarts": 2,
        "steps": 10,
        "max_steps": 30,
        "check_every": 10,
        "d_tolerance": 0.0,
    }
    out = est.outcome_
    assert out["attempts"] == len(est.restarts_) in (1, 2)
    assert out["satisfied"] == (est.D_ == 0.0 and est.clusters_used_ == 3)
    for r in est.restarts_:
        assert r["checks"] and r["checks"][-1]["D"] == r["violation"]
        assert 10 <= r["steps"] <= 30
