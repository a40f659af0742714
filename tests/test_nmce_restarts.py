"""Restarts kept by the constraint functional D (basis_nmce.nmce.restarts)."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn

from basis_nmce.errors import ConfigError
from basis_nmce.nmce.augment import make_augmenter
from basis_nmce.nmce.networks import NMCENet, build_network
from basis_nmce.nmce.restarts import assignment_violation, restart_checkpoint, train_restarts
from basis_nmce.nmce.train import TrainConfig, TrainResult, train_joint


def half_plane_net(offset: float = 0.0) -> NMCENet:
    """Cluster = [x0 < offset] (logits (x0 - offset, offset - x0)), identity backbone."""
    net = NMCENet(nn.Identity(), 2, 2, 2)
    with torch.no_grad():
        net.cluster_head.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        net.cluster_head.bias.copy_(torch.tensor([-offset, offset]))
    return net


def test_violation_of_a_half_plane_matches_the_gaussian_formula():
    # x0 uniform on (-1, 1), copies x + N(0, s^2): P(flip) = int_0^1 Phi(-u/s) du ~ s/sqrt(2 pi)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20_000, 2, generator=g) * 2 - 1
    s = 0.1
    d, used = assignment_violation(half_plane_net(), x, make_augmenter("noise", std=s), views=8)
    assert d == pytest.approx(s / math.sqrt(2 * math.pi), abs=3e-3) and used == 2


def test_violation_is_zero_without_augmentation_or_boundary():
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
    net = build_network("mlp", (2,), 3, 2, seed=0, width=8, depth=2)
    assert assignment_violation(net, x, make_augmenter("noise", std=0.0)).fraction == 0.0
    # a boundary far from the data: no point's copies cross it, and one cluster is used
    far = assignment_violation(half_plane_net(50.0), x, make_augmenter("noise", std=0.1))
    assert far == (0.0, 1)


def test_violation_subsamples_and_validates():
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    aug = make_augmenter("noise", std=0.3)
    d = assignment_violation(half_plane_net(), x, aug, max_points=50, views=2, seed=3).fraction
    assert d * 100 == pytest.approx(round(d * 100))  # 50 points x 2 views
    with pytest.raises(ConfigError, match="views"):
        assignment_violation(half_plane_net(), x, aug, views=0)


# Two blobs at x0 = -1 and x0 = +1 (std 0.05). The fake stage puts restart k's boundary at
# OFFSETS[seed]: 1.0 cuts the right blob (D > 0), 0.0 separates the blobs (D = 0), 9.0 puts
# everything in one cluster (D = 0 too, but one cluster used).
BLOBS = torch.cat([torch.full((200, 1), -1.0), torch.full((200, 1), 1.0)]) + 0.05 * torch.randn(
    400, 2, generator=torch.Generator().manual_seed(4)
)
OFFSETS = {0: 1.0, 1: 9.0, 2: 0.0, 3: 1.0, 4: 0.0}


def fake_stage(model, x, augmenter, config, checkpoint=None):
    with torch.no_grad():
        model.cluster_head.bias.copy_(torch.tensor([-1.0, 1.0]) * OFFSETS[config.seed])
    return TrainResult(stage="joint", steps=1, history=[{"loss": -float(config.seed)}])


def make_half_plane(seed: int) -> NMCENet:
    return half_plane_net()


@pytest.mark.parametrize(("restarts", "kept"), [(1, 0), (2, 0), (3, 2)])
def test_the_restart_with_all_clusters_and_least_violation_is_kept(restarts, kept):
    aug = make_augmenter("noise", std=0.05)
    model, runs = train_restarts(
        fake_stage, make_half_plane, BLOBS, aug, TrainConfig(seed=0), restarts=restarts
    )
    assert [r.seed for r in runs] == list(range(restarts))
    assert runs[0].violation > 0.01 and runs[0].clusters_used == 2
    if restarts > 1:
        assert runs[1].violation == 0.0 and runs[1].clusters_used == 1  # collapsed: not kept
    best = min(runs, key=lambda r: r.rank_key)
    assert best.index == kept
    assert model.cluster_head.bias[0].item() == -OFFSETS[kept]


@pytest.mark.parametrize("workers", [1, 2])
def test_no_restart_runs_after_one_that_satisfies_the_constraint(workers):
    aug = make_augmenter("noise", std=0.05)
    _, runs = train_restarts(
        fake_stage, make_half_plane, BLOBS, aug, TrainConfig(seed=2), restarts=3, workers=workers
    )
    assert [r.seed for r in runs] == [2]  # seed 2 separates the blobs: seeds 3, 4 never run


def test_parallel_restarts_equal_sequential_ones(tmp_path):
    """Spawned workers give bit-identical models to running the restarts in this process."""
    x = BLOBS.to(torch.float32)
    make = functools.partial(build_network, "mlp", (2,), 3, 2, width=8, depth=2)
    cfg = TrainConfig(steps=8, batch_size=64, lr=3e-3, eps=0.1, lam=5.0, seed=7, log_every=4)
    aug = make_augmenter("noise", std=0.1)
    runs = {}
    for workers in (1, 2):
        model, summary = train_restarts(
            train_joint, make, x, aug, cfg, restarts=2, workers=workers, threads=1,
            keep_states=True, checkpoint=tmp_path / f"w{workers}" / "ck.pt",
        )  # fmt: skip
        runs[workers] = (model.state_dict(), summary)
    (m1, s1), (m2, s2) = runs[1], runs[2]
    assert all(torch.equal(m1[k], m2[k]) for k in m1)
    for a, b in zip(s1, s2, strict=True):
        assert (a.seed, a.violation, a.clusters_used) == (b.seed, b.violation, b.clusters_used)
        assert a.result.history == b.result.history
        assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    # each restart wrote its own checkpoint
    assert sorted(p.name for p in (tmp_path / "w2").iterdir()) == [
        "ck.restart0.pt",
        "ck.restart1.pt",
    ]


def test_restart_checkpoint_names_and_validation(tmp_path):
    assert restart_checkpoint(None, 0, 3) is None
    assert restart_checkpoint(tmp_path / "a.pt", 0, 1) == tmp_path / "a.pt"
    assert restart_checkpoint(tmp_path / "a.pt", 2, 3) == tmp_path / "a.restart2.pt"
    with pytest.raises(ConfigError, match="restarts"):
        train_restarts(fake_stage, make_half_plane, BLOBS, None, TrainConfig(), restarts=0)


def _collapsing(model, x, augmenter, config, *, checkpoint=None):
    """A stage that fails like a collapse for odd seeds and trains a few steps otherwise."""
    from basis_nmce.errors import TrainingError

    if config.seed % 2:
        raise TrainingError("joint: the features collapsed (test)")
    return train_joint(model, x, augmenter, config, checkpoint=checkpoint)


def test_a_collapsed_restart_is_a_failed_attempt_and_all_failed_is_an_error():
    from basis_nmce.errors import TrainingError

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=g)
    make = functools.partial(build_network, "mlp", (2,), 4, 2, width=8, depth=2)
    cfg = TrainConfig(steps=3, batch_size=32, seed=1, log_every=1)
    aug = make_augmenter("noise", std=0.05)
    _, runs = train_restarts(_collapsing, make, x, aug, cfg, restarts=2)
    assert runs[0].error and runs[0].violation == 1.0 and runs[0].clusters_used == 0
    assert runs[1].error is None and runs[1].seed == 2
    with pytest.raises(TrainingError, match="all 1 restarts failed"):
        train_restarts(_collapsing, make, x, aug, cfg, restarts=1)
