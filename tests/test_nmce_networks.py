"""NMCE networks: shapes, unit-norm features, freezing, head re-initialisation, factory errors."""

from __future__ import annotations

import pytest
import torch

from basis_nmce.nmce.networks import NETWORKS, NMCENet, build_network, load_network, save_network

CASES = [
    ("mlp", (2,), {"width": 16, "depth": 3}),
    ("cnn_small", (1, 28, 28), {"pre_feature_dim": 32}),
    ("resnet18_cifar", (3, 8, 8), {"pre_feature_dim": 32}),
    ("resnet34_cifar", (3, 8, 8), {"pre_feature_dim": 16}),
    ("resnet10_coil", (1, 16, 16), {"pre_feature_dim": 32, "width": 8}),
    ("resnet18_coil", (1, 16, 16), {"pre_feature_dim": 32, "width": 8}),
]


@pytest.mark.parametrize(("name", "shape", "opts"), CASES)
def test_shapes_and_unit_norm(name, shape, opts):
    torch.manual_seed(0)
    net = build_network(name, shape, feature_dim=5, n_clusters=3, **opts)
    z, logits = net(torch.rand(4, *shape))
    assert z.shape == (4, 5) and logits.shape == (4, 3)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(4))


def test_all_names_covered():
    assert {c[0] for c in CASES} == set(NETWORKS)


def test_cifar_stem_and_prefeature():
    net = build_network("resnet18_cifar", (3, 32, 32), 8, 10, pre_feature_dim=64)
    conv = net.backbone.conv1
    assert conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    assert isinstance(net.backbone.maxpool, torch.nn.Identity)
    kinds = [type(m).__name__ for m in net.pre_feature]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU"]
    assert build_network("resnet18_cifar", (3, 32, 32), 8, 10).pre_feature[0].out_features == 4096


def test_seed_reproducible_and_global_rng_untouched():
    state = torch.random.get_rng_state()
    a = build_network("mlp", (2,), 4, 2, seed=3, width=8)
    b = build_network("mlp", (2,), 4, 2, seed=3, width=8)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_freeze_backbone_stops_gradients_and_keeps_eval():
    net = build_network("cnn_small", (1, 28, 28), 4, 2, pre_feature_dim=16, seed=0)
    net.freeze_backbone()
    net.train()
    assert not net.backbone.training and not net.pre_feature.training
    assert net.feature_head.training
    z, logits = net(torch.rand(6, 1, 28, 28))
    (z.sum() + logits.sum()).backward()
    assert all(p.grad is None for p in net.backbone.parameters())
    assert all(p.grad is None for p in net.pre_feature.parameters())
    assert net.feature_head.linear.weight.grad is not None
    assert net.cluster_head.weight.grad is not None
    net.freeze_backbone(False)
    assert net.backbone.training and all(p.requires_grad for p in net.parameters())


def test_reset_feature_head_is_seeded():
    net = build_network("mlp", (3,), 4, 2, seed=0, width=8)
    before = net.feature_head.linear.weight.clone()
    net.reset_feature_head(torch.Generator().manual_seed(1))
    after = net.feature_head.linear.weight.clone()
    assert not torch.equal(before, after)
    net.reset_feature_head(torch.Generator().manual_seed(1))
    assert torch.equal(after, net.feature_head.linear.weight)


def test_save_load_roundtrip_weights_only(tmp_path):
    net = build_network("mlp", (3,), 4, 2, seed=0, width=8, depth=2)
    path = tmp_path / "model.pt"
    save_network(path, net, {"stage": "tcr"})
    torch.load(path, weights_only=True)  # a plain state dict
    loaded, meta = load_network(path)
    assert isinstance(loaded, NMCENet) and meta["stage"] == "tcr"
    x = torch.rand(5, 3)
    torch.testing.assert_close(loaded(x)[0], net.eval()(x)[0])


@pytest.mark.parametrize(
    ("name", "shape", "opts", "match"),
    [
        ("vgg", (3, 32, 32), {}, "unknown network 'vgg'"),
        ("mlp", (3, 8, 8), {}, "vector inputs"),
        ("cnn_small", (2,), {}, r"image inputs \(C, H, W\)"),
        ("mlp", (2,), {"widht": 3}, r"unknown option\(s\) \['widht'\]"),
    ],
)
def test_factory_errors(name, shape, opts, match):
    with pytest.raises(ValueError, match=match):
        build_network(name, shape, 4, 2, **opts)
