"""NMCE training stages: determinism, resume, freezing, guards, a tiny clustering run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from basis_nmce.errors import ConfigError, DataError, TrainingError
from basis_nmce.evaluation.metrics import cluster_accuracy
from basis_nmce.nmce.augment import make_augmenter
from basis_nmce.nmce.guards import CollapseMonitor, check_finite, effective_rank
from basis_nmce.nmce.networks import build_network
from basis_nmce.nmce.train import (
    TrainConfig,
    _EpochBatches,
    embed,
    predict_clusters,
    train_cluster,
    train_finetune,
    train_joint,
    train_tcr,
)

NOISE = make_augmenter("noise", std=0.1)


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian blobs in the plane (label = blob)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = torch.tensor([[0.0, 4.0], [4.0, -2.0], [-4.0, -2.0]])
    return centres[y] + 0.5 * torch.randn(n, 2, generator=g), y


def small_net(seed: int = 0, clusters: int = 3):
    return build_network("mlp", (2,), 4, clusters, seed=seed, width=16, depth=2)


def cfg(**kw) -> TrainConfig:
    base = {"steps": 12, "batch_size": 32, "lr": 3e-3, "eps": 0.1, "lam": 5.0, "log_every": 1}
    return TrainConfig(**{**base, **kw})


def params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def same(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


X, Y = blobs(120, 0)


@pytest.mark.parametrize("stage", [train_tcr, train_cluster, train_finetune, train_joint])
def test_deterministic_under_seed(stage):
    runs = []
    for _ in range(2):
        model = small_net()
        result = stage(model, X, NOISE, cfg(steps=6, seed=5))
        runs.append((params(model), result.history))
    assert same(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    other = small_net()
    stage(other, X, NOISE, cfg(steps=6, seed=6))
    assert not same(runs[0][0], params(other))


@pytest.mark.parametrize("stage", [train_joint, train_cluster])
def test_zero_cluster_head_starts_from_uniform_memberships(stage):
    """cluster_head_init zeros: every head parameter starts at 0, so after one Adam step of lr
    1e-3 none exceeds 1e-3 (the default init draws them up to 1/sqrt(16) = 0.25)."""
    model = small_net()
    stage(model, X, NOISE, cfg(steps=1, lr=1e-3, cluster_head_init="zeros"))
    head = torch.cat([p.detach().flatten() for p in model.cluster_head.parameters()])
    assert head.abs().max() <= 1.001e-3
    default = small_net()
    stage(default, X, NOISE, cfg(steps=1, lr=1e-3))
    assert (
        torch.cat([p.detach().flatten() for p in default.cluster_head.parameters()]).abs().max()
        > 0.01
    )
    with pytest.raises(ConfigError, match="cluster_head_init"):
        cfg(cluster_head_init="ones")


def test_kmeans_cluster_head_starts_from_kmeans_of_the_stage1_features():
    """cluster_head_init kmeans: the labels are scikit-learn's k-means of the stage-1 features
    (computed here from the trunk by hand), and a stage 2 of one step at a negligible rate then
    predicts that same partition with confident memberships, although the feature head was
    re-initialised after the k-means."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score

    from basis_nmce.nmce.warm_start import (
        KMEANS_N_INIT,
        fit_cluster_head,
        kmeans_labels_of_features,
    )

    model = small_net()
    train_tcr(model, X, NOISE, cfg(steps=20))
    model.eval()
    with torch.no_grad():
        z = model.feature_head(model.trunk(X)).double().numpy()
    reference = KMeans(3, n_init=KMEANS_N_INIT, random_state=7).fit(z).labels_
    start = kmeans_labels_of_features(model, X, seed=7)
    assert np.array_equal(start.labels.numpy(), reference)
    assert fit_cluster_head(model, start, seed=7) >= 0.95

    warm = small_net()
    train_tcr(warm, X, NOISE, cfg(steps=20))
    train_cluster(warm, X, NOISE, cfg(steps=1, lr=1e-7, seed=7, cluster_head_init="kmeans"))
    assert adjusted_rand_score(reference, predict_clusters(warm, X).numpy()) >= 0.98
    with torch.no_grad():  # confident memberships (default init: ~0.4 here, zeros: 1/3)
        warm.eval()
        confidence = torch.softmax(warm.cluster_head(warm.trunk(X)), dim=1).amax(dim=1).mean()
    assert confidence >= 0.9


def test_kmeans_cluster_head_needs_stage1_features():
    with pytest.raises(ConfigError, match="kmeans"):
        train_joint(small_net(), X, NOISE, cfg(steps=1, cluster_head_init="kmeans"))


def test_history_records_stats():
    result = train_joint(small_net(), X, NOISE, cfg(steps=4, log_every=2))
    assert [r["step"] for r in result.history] == [2, 4]
    rec = result.last
    for key in ("loss", "R", "Rc", "similarity", "marginal_entropy", "effective_rank", "lr"):
        assert key in rec
    assert len(rec["cluster_fractions"]) == 3
    assert sum(rec["cluster_fractions"]) == pytest.approx(1.0)


class Killed(Exception):
    pass


@pytest.mark.parametrize("stage", [train_tcr, train_cluster])
def test_resume_reproduces_uninterrupted_run(tmp_path, stage):
    config = cfg(steps=10, checkpoint_every=3, seed=1)
    full = small_net()
    full_result = stage(full, X, NOISE, config)

    path = tmp_path / "ckpt.pt"

    def kill(rec):
        if rec["step"] == 7:
            raise Killed

    interrupted = small_net()
    with pytest.raises(Killed):
        stage(interrupted, X, NOISE, config, checkpoint=path, callback=kill)
    assert torch.load(path, weights_only=True)["step"] == 6

    resumed = small_net(seed=99)  # the checkpoint overrides the weights
    result = stage(resumed, X, NOISE, config, checkpoint=path)
    assert result.resumed_at == 6 and result.steps == 10
    assert same(params(full), params(resumed))
    assert result.history == full_result.history
    # a finished checkpoint: nothing more to do, same model
    again = small_net(seed=98)
    done = stage(again, X, NOISE, config, checkpoint=path)
    assert done.resumed_at == 10 and same(params(full), params(again))


def test_batches_cover_each_epoch_once_and_depend_only_on_seed_and_step():
    batches = _EpochBatches(n=10, batch=3, seed=4)
    epochs = [torch.cat([batches(step) for step in range(1 + 3 * e, 4 + 3 * e)]) for e in range(3)]
    for drawn in epochs:  # 3 batches of 3 per epoch, no sample twice, 1 left over
        assert len(drawn) == 9 and len(set(drawn.tolist())) == 9
    assert not torch.equal(epochs[0], epochs[1])
    fresh = _EpochBatches(n=10, batch=3, seed=4)  # asked out of order, as after a resume
    assert torch.equal(fresh(8), epochs[2][3:6]) and torch.equal(fresh(2), epochs[0][3:6])
    assert not torch.equal(_EpochBatches(10, 3, seed=5)(1), epochs[0][:3])
    assert _EpochBatches(n=10, batch=10, seed=0)(1) is None


def test_checkpoint_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "ckpt.pt"
    train_tcr(small_net(), X, NOISE, cfg(steps=2), checkpoint=path)
    with pytest.raises(ConfigError, match="other settings"):
        train_tcr(small_net(), X, NOISE, cfg(steps=2, lr=1e-2), checkpoint=path)
    with pytest.raises(ConfigError, match="other settings"):
        train_joint(small_net(), X, NOISE, cfg(steps=2), checkpoint=path)
    train_tcr(small_net(), X, NOISE, cfg(steps=2, log_every=5), checkpoint=path)  # harmless


def test_stage2_freezes_backbone_and_resets_heads():
    model = small_net()
    train_tcr(model, X, NOISE, cfg(steps=3))
    trunk = [p.detach().clone() for m in model.trunk_modules() for p in m.parameters()]
    head = model.feature_head.linear.weight.detach().clone()
    train_cluster(model, X, NOISE, cfg(steps=3))
    after = [p.detach() for m in model.trunk_modules() for p in m.parameters()]
    assert same(trunk, after)
    assert all(p.grad is None for m in model.trunk_modules() for p in m.parameters())
    assert not torch.equal(head, model.feature_head.linear.weight)
    assert model.frozen
    train_finetune(model, X, NOISE, cfg(steps=2))
    assert not model.frozen
    assert not same(trunk, [p.detach() for m in model.trunk_modules() for p in m.parameters()])


def test_nan_input_is_refused_before_training():
    # NaN in the data is the data's fault: named at once, not blamed on the learning rate
    x = X.clone()
    x[3, 0] = float("nan")
    with pytest.raises(DataError, match=r"x contains NaN or infinite values \(first in sample 3\)"):
        train_joint(small_net(), x, NOISE, cfg(steps=5, batch_size=len(x)))


def test_inputs_are_checked_against_the_network():
    net = small_net()
    with pytest.raises(DataError, match=r"shape \(3,\), but the network was built for \(2,\)"):
        train_tcr(net, torch.ones(8, 3), NOISE, cfg(steps=1))
    z = embed(net, X[:5].numpy().tolist())  # lists and arrays are converted like check_array
    assert z.shape == (5, net.spec["feature_dim"]) and torch.isfinite(z).all()
    with pytest.raises(DataError, match="NaN"):
        embed(net, np.full((2, 2), np.nan))


def test_huge_learning_rate_is_caught():
    with pytest.raises(TrainingError, match="step"):
        train_tcr(small_net(), X * 1e30, NOISE, cfg(steps=20, lr=1e30))


def test_feature_collapse_is_caught():
    constant = torch.ones(64, 2)
    with pytest.raises(TrainingError, match="features collapsed"):
        train_tcr(
            small_net(),
            constant,
            make_augmenter("noise", std=0.0),
            cfg(steps=10, collapse_patience=3),
        )


def test_cluster_collapse_monitor():
    monitor = CollapseMonitor(patience=2, stage="cluster")
    z = torch.nn.functional.normalize(
        torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    )
    one_cluster = torch.zeros(50, 3)
    one_cluster[:, 1] = 1.0
    monitor.update(1, z, one_cluster)
    with pytest.raises(TrainingError, match="one cluster"):
        monitor.update(2, z, one_cluster)
    check_finite(1, torch.tensor(1.0), z)
    assert effective_rank(z) > 3.0
    assert effective_rank(torch.ones(10, 4)) == pytest.approx(1.0)


def test_embed_and_predict():
    model = small_net()
    model.train()
    z = embed(model, X, batch=7)
    labels = predict_clusters(model, X, batch=50)
    assert z.shape == (len(X), 4) and labels.shape == (len(X),) and labels.dtype == torch.int64
    torch.testing.assert_close(z.norm(dim=1), torch.ones(len(X)))
    assert model.training  # mode restored


def test_joint_nmce_clusters_blobs():
    """Full NMCE objective from scratch (as the paper's toy) separates three blobs."""
    model = build_network("mlp", (2,), 6, 3, seed=0, width=32, depth=2)
    config = TrainConfig(steps=300, batch_size=64, lr=3e-3, eps=0.1, lam=10, tau=0.2)
    x, _ = blobs(600, 0)
    train_joint(model, x, NOISE, config)
    x_test, y_test = blobs(600, 1)  # held-out draw
    assert cluster_accuracy(y_test.numpy(), predict_clusters(model, x_test).numpy()) == 1.0


def test_tcr_then_cluster_stage_clusters_blobs():
    """The two-stage route (TCR, then NMCE with the backbone frozen) also separates them."""
    model = build_network("mlp", (2,), 6, 3, seed=0, width=32, depth=2)
    x, _ = blobs(600, 0)
    train_tcr(model, x, NOISE, TrainConfig(steps=100, batch_size=128, lr=3e-3, lam=10))
    train_cluster(model, x, NOISE, TrainConfig(steps=100, batch_size=128, lr=3e-3, lam=10))
    x_test, y_test = blobs(600, 1)
    assert cluster_accuracy(y_test.numpy(), predict_clusters(model, x_test).numpy()) == 1.0
