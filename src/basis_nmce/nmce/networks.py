"""NMCE networks: backbone -> pre-feature -> (L2-normalised feature head, cluster head).

NMCE Sec. 4: toys and synthetic data use an MLP backbone with ELU and two linear heads; images
use a ResNet, then one ``Linear(4096) + BatchNorm1d + ReLU`` pre-feature layer, then the two
heads. Features are always put on the unit sphere.

Backbones (:func:`build_network` names):

* ``mlp`` - ``models.MLP`` with ELU, ``depth`` linear layers of ``width`` units and an ELU
  after the last one (as the release's toy ``MLP_net``: 5 layers); no pre-feature layer.
* ``cnn_small`` - our quick CPU preset for 28 x 28 grey images: three 3x3 conv + BN + ReLU
  blocks (32, 64, 128 channels; 2x2 max-pool after the first two), global average pool -> 128.
* ``resnet18_cifar`` / ``resnet34_cifar`` - torchvision ResNet-18/34 with the CIFAR stem of
  Appendix B.3: 3x3 conv stride 1, no max-pool, 64 filters; 512 pooled features.
* ``resnet10_coil`` / ``resnet18_coil`` - Appendix B.3 "32 input filters", ResNet-10 = one
  BasicBlock per stage. The paper does not give the COIL stem; we chose a 3x3 conv stride 1
  and a 3x3/2 max-pool (COIL images down-sampled 2x are 64 x 64: the pool halves the cost of
  every stage), torchvision's BasicBlock, widths 32-64-128-256, 256 pooled features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from basis_nmce.io import load_model, save_model
from basis_nmce.models import ACTIVATIONS, MLP

__all__ = [
    "NETWORKS",
    "ClusterHead",
    "FeatureHead",
    "NMCENet",
    "PreFeature",
    "SmallCNN",
    "build_network",
    "cifar_resnet",
    "coil_resnet",
    "load_network",
    "mlp_backbone",
    "save_network",
]

NETWORKS = (
    "mlp",
    "cnn_small",
    "resnet18_cifar",
    "resnet34_cifar",
    "resnet10_coil",
    "resnet18_coil",
)


# --------------------------------------------------------------------------- init helpers


def _reset_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """``nn.Linear.reset_parameters`` drawing from ``generator`` (PyTorch's default init)."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


# --------------------------------------------------------------------------- backbones


def mlp_backbone(
    in_dim: int, width: int = 256, depth: int = 5, activation: str = "elu"
) -> nn.Sequential:
    """``depth`` linear layers of ``width`` with ``activation`` after each (``models.MLP``)."""
    if depth < 1 or width < 1:
        raise ValueError(f"mlp: depth and width must be >= 1, got depth={depth}, width={width}")
    body = MLP(in_dim, width, hidden=[width] * (depth - 1), activation=activation)
    return nn.Sequential(body, ACTIVATIONS[activation]())


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU blocks (32/64/128 ch, pools after the first two), global avg pool."""

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (32, 64, 128)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        prev = in_channels
        for i, ch in enumerate(channels):
            layers += [nn.Conv2d(prev, ch, 3, padding=1, bias=False), nn.BatchNorm2d(ch)]
            layers.append(nn.ReLU(inplace=True))
            if i < len(channels) - 1:
                layers.append(nn.MaxPool2d(2))
            prev = ch
        self.body = nn.Sequential(*layers)
        self.out_dim = int(prev)

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


def cifar_resnet(depth: int = 18, in_channels: int = 3) -> nn.Module:
    """torchvision ResNet-18/34 with the CIFAR stem (3x3 conv stride 1, no max-pool), no fc."""
    from torchvision.models import resnet18, resnet34

    builders = {18: resnet18, 34: resnet34}
    if depth not in builders:
        raise ValueError(f"cifar ResNet depth must be 18 or 34, got {depth}")
    net = builders[depth](weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.out_dim = 512
    return net


class _CoilResNet(nn.Module):
    """ResNet of torchvision BasicBlocks with base width ``width`` and the stem chosen above."""

    def __init__(self, blocks: Sequence[int], in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        from torchvision.models.resnet import BasicBlock

        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        prev = width
        for i, n in enumerate(blocks):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or prev != planes:
                down = nn.Sequential(
                    nn.Conv2d(prev, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )
            layer = [BasicBlock(prev, planes, stride, down)]
            layer += [BasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layer))
            prev = planes
        self.stages = nn.Sequential(*stages)
        self.out_dim = int(prev)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1)


def coil_resnet(depth: int = 18, in_channels: int = 1, width: int = 32) -> nn.Module:
    """ResNet-10 (1 block per stage) or ResNet-18 (2) with ``width`` input filters (COIL)."""
    blocks = {10: (1, 1, 1, 1), 18: (2, 2, 2, 2)}
    if depth not in blocks:
        raise ValueError(f"coil ResNet depth must be 10 or 18, got {depth}")
    return _CoilResNet(blocks[depth], in_channels=in_channels, width=width)


# --------------------------------------------------------------------------- heads


class PreFeature(nn.Sequential):
    """``Linear(in, width) + BatchNorm1d + ReLU`` after the pooled backbone (NMCE Sec. 4)."""

    def __init__(self, in_dim: int, width: int = 4096) -> None:
        super().__init__(nn.Linear(in_dim, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True))
        self.out_dim = int(width)


class FeatureHead(nn.Module):
    """Linear subspace head; outputs lie on the unit sphere (NMCE Sec. 4, as MCR^2)."""

    def __init__(self, in_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, feature_dim)

    def forward(self, h: Tensor) -> Tensor:
        return F.normalize(self.linear(h), dim=1)

    def reset(self, generator: torch.Generator | None = None) -> None:
        _reset_linear(self.linear, generator)


class ClusterHead(nn.Linear):
    """Linear cluster head: logits of the memberships (Gumbel-softmax in training)."""

    def reset(self, generator: torch.Generator | None = None) -> None:
        _reset_linear(self, generator)


class NMCENet(nn.Module):
    """``backbone -> pre_feature -> (feature head z on the sphere, cluster head logits)``.

    ``forward(x)`` returns ``(z, logits)``. :meth:`freeze_backbone` stops gradients through the
    backbone and pre-feature block and keeps them in eval mode (BatchNorm uses its running
    statistics), so stage 2 (NMCE Sec. 3.6) trains only the two heads. The authors' code runs
    the frozen part under ``no_grad`` but in train mode (BatchNorm on batch statistics, running
    statistics still updated); we use eval mode so stage 2 changes no backbone state at all.
    """

    def __init__(
        self,
        backbone: nn.Module,
        backbone_dim: int,
        feature_dim: int,
        n_clusters: int,
        pre_feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        if feature_dim < 1 or n_clusters < 1:
            raise ValueError(
                f"feature_dim and n_clusters must be >= 1, got {feature_dim}, {n_clusters}"
            )
        self.backbone = backbone
        if pre_feature_dim:
            self.pre_feature: nn.Module = PreFeature(backbone_dim, pre_feature_dim)
            head_in = int(pre_feature_dim)
        else:
            self.pre_feature = nn.Identity()
            head_in = int(backbone_dim)
        self.feature_head = FeatureHead(head_in, feature_dim)
        self.cluster_head = ClusterHead(head_in, n_clusters)
        self.feature_dim, self.n_clusters, self.head_in = int(feature_dim), int(n_clusters), head_in
        self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen

    def trunk(self, x: Tensor) -> Tensor:
        """Backbone and pre-feature output (the heads' input)."""
        return self.pre_feature(self.backbone(x))

    def heads(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return self.feature_head(h), self.cluster_head(h)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self._frozen:
            with torch.no_grad():
                h = self.trunk(x)
        else:
            h = self.trunk(x)
        return self.heads(h)

    def trunk_modules(self) -> list[nn.Module]:
        return [self.backbone, self.pre_feature]

    def freeze_backbone(self, freeze: bool = True) -> NMCENet:
        """(Un)freeze backbone and pre-feature block: ``requires_grad`` off and eval mode."""
        self._frozen = bool(freeze)
        for module in self.trunk_modules():
            for p in module.parameters():
                p.requires_grad_(not freeze)
        self.train(self.training)
        return self

    def train(self, mode: bool = True) -> NMCENet:
        super().train(mode)
        if self._frozen:
            for module in self.trunk_modules():
                module.eval()
        return self

    def reset_feature_head(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the feature head (stage 2 re-initialises the projection, Sec. 3.6)."""
        self.feature_head.reset(generator)

    def reset_cluster_head(self, generator: torch.Generator | None = None) -> None:
        self.cluster_head.reset(generator)

    def zero_cluster_head(self) -> None:
        """Cluster head weights and bias 0: every logit 0, uniform memberships."""
        with torch.no_grad():
            self.cluster_head.weight.zero_()
            self.cluster_head.bias.zero_()


# --------------------------------------------------------------------------- factory


def _take(opts: dict[str, Any], allowed: dict[str, Any], name: str) -> dict[str, Any]:
    unknown = sorted(set(opts) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for network {name!r}; allowed: {sorted(allowed)}"
        )
    return {**allowed, **opts}


def _channels(in_shape: Sequence[int], name: str) -> int:
    if len(in_shape) != 3:
        raise ValueError(f"network {name!r} needs image inputs (C, H, W), got in_shape={in_shape}")
    return int(in_shape[0])


def build_network(
    name: str,
    in_shape: Sequence[int] | int,
    feature_dim: int,
    n_clusters: int,
    *,
    seed: int | None = None,
    **opts: Any,
) -> NMCENet:
    """An :class:`NMCENet` with backbone ``name`` (one of :data:`NETWORKS`).

    ``in_shape``: ``(d,)`` or ``d`` for vectors (``mlp``), ``(C, H, W)`` for images. Options:
    ``mlp``: ``width`` (256), ``depth`` (5), ``activation`` (``elu``), ``pre_feature_dim``
    (None); ``cnn_small``: ``pre_feature_dim`` (512); ResNets: ``pre_feature_dim`` (4096, as the
    paper), COIL ones also ``width`` (32). ``seed`` makes the initialisation reproducible
    without touching torch's global generator. Unknown names or options raise ValueError.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of: {', '.join(NETWORKS)}")
    shape = (int(in_shape),) if isinstance(in_shape, int) else tuple(int(s) for s in in_shape)
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return build_network(name, shape, feature_dim, n_clusters, **opts)
    if name == "mlp":
        if len(shape) != 1:
            raise ValueError(f"network 'mlp' needs vector inputs (d,), got in_shape={shape}")
        o = _take(
            opts, {"width": 256, "depth": 5, "activation": "elu", "pre_feature_dim": None}, name
        )
        backbone: nn.Module = mlp_backbone(shape[0], o["width"], o["depth"], o["activation"])
        dim = int(o["width"])
    elif name == "cnn_small":
        o = _take(opts, {"pre_feature_dim": 512}, name)
        backbone = SmallCNN(_channels(shape, name))
        dim = backbone.out_dim
    elif name.endswith("_cifar"):
        o = _take(opts, {"pre_feature_dim": 4096}, name)
        backbone = cifar_resnet(int(name[6:8]), _channels(shape, name))
        dim = 512
    else:
        o = _take(opts, {"pre_feature_dim": 4096, "width": 32}, name)
        backbone = coil_resnet(int(name[6:8]), _channels(shape, name), int(o["width"]))
        dim = backbone.out_dim
    net = NMCENet(backbone, dim, feature_dim, n_clusters, o["pre_feature_dim"])
    net.spec = {
        "name": name,
        "in_shape": list(shape),
        "feature_dim": int(feature_dim),
        "n_clusters": int(n_clusters),
        "opts": dict(opts),
    }
    return net


# --------------------------------------------------------------------------- files


def save_network(path: str | Path, model: NMCENet, meta: Mapping[str, Any] | None = None) -> None:
    """Save ``model``'s state dict (loadable with ``weights_only=True``) and, beside it as
    JSON, the :func:`build_network` arguments it was built with plus ``meta``."""
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ValueError("save_network needs a model made by build_network (it records the spec)")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_model(path, state, {**dict(meta or {}), "network": spec})


def load_network(path: str | Path) -> tuple[NMCENet, dict[str, Any]]:
    """Rebuild and load a network saved by :func:`save_network`; returns ``(model, meta)``."""
    state, meta = load_model(path)
    spec = dict(meta["network"])
    model = build_network(
        spec.pop("name"),
        spec.pop("in_shape"),
        spec.pop("feature_dim"),
        spec.pop("n_clusters"),
        **spec.pop("opts"),
    )
    model.load_state_dict(state)
    return model.eval(), meta
