"""Kind ``siamese``: a Siamese network trained with the contrastive loss (BASiS Sec. 5.2, Eq. 21).

The BASiS paper feeds every spectral method the 16-d output of a Siamese CNN (Tables 2-3):

* grey images: conv 20 (k5) - max-pool - conv 50 (k5) - max-pool - fc 512 - ReLU - fc 16
  (k5 s1 p0; pool k2 s2); Adam 1e-3, 128 pairs a batch, 500 epochs;
* RGB images: conv 32 - ReLU - conv 64 - ReLU - pool - conv 32 - ReLU - conv 8 - ReLU - pool -
  fc 256 - ReLU - fc 16 - sigmoid (k3 s1 p1); Adam 1e-3, 256 pairs, 1000 epochs.

Eq. 21: ``1{y_i = y_j} |f(x_i) - f(x_j)|^2 + 1{y_i != y_j} max(0, eps - |f(x_i) - f(x_j)|)^2``
with margin ``eps = 1``, averaged over the pairs of a batch.

Pairs (``pairing``): ``labels`` (the paper's): half of each batch same-class pairs, half
different-class pairs, from the training labels; ``knn`` (label-free, as SpectralNet's own
Siamese net): a positive pairs a point with one of its ``knn_positives`` nearest neighbours
in input space, a negative with a random point outside its neighbour list. Which one was used
is recorded in ``features.json``.

Ours: images smaller than 16 pixels (scikit-learn's 8 x 8 digits) get padding 2 in the grey
net's convolutions, so the two poolings still fit; vector data use an MLP (``network: mlp``)
with the same loss and pairs. Training counts steps (batches of pairs), not epochs; the pairs
of a step depend on seed and step alone, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ConfigError, DataError
from ..io import load_checkpoint, save_checkpoint
from ..models import MLP

log = logging.getLogger(__name__)

PAIRINGS = ("labels", "knn")
NETWORKS = ("auto", "grey", "rgb", "mlp")
STREAM_PAIRS = 5


class SiameseGrey(nn.Sequential):
    """The grey-scale Siamese CNN of BASiS Table 2 (padding 2 below 16 pixels: ours)."""

    def __init__(self, in_shape: tuple[int, int, int], out_dim: int = 16) -> None:
        c, h, w = in_shape
        pad = 0 if min(h, w) >= 16 else 2
        conv = nn.Sequential(
            nn.Conv2d(c, 20, 5, padding=pad),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(20, 50, 5, padding=pad),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
        )
        flat = int(conv(torch.zeros(1, c, h, w)).shape[1])
        super().__init__(*conv, nn.Linear(flat, 512), nn.ReLU(), nn.Linear(512, out_dim))


class SiameseRGB(nn.Sequential):
    """The RGB Siamese CNN of BASiS Table 2 (k3 s1 p1 convolutions, sigmoid output)."""

    def __init__(self, in_shape: tuple[int, int, int], out_dim: int = 16) -> None:
        c, h, w = in_shape
        conv = nn.Sequential(
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(64, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Flatten(),
        )
        flat = int(conv(torch.zeros(1, c, h, w)).shape[1])
        super().__init__(
            *conv, nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, out_dim), nn.Sigmoid()
        )


def resolve_network(network: str, image: bool, channels: int = 1) -> str:
    """``auto``: ``grey`` for 1-channel images, ``rgb`` for 3, ``mlp`` for vectors."""
    if network not in NETWORKS:
        raise ConfigError(
            f"features.siamese.network: {network!r} is not one of {', '.join(NETWORKS)}"
        )
    if network == "auto":
        return ("rgb" if channels == 3 else "grey") if image else "mlp"
    return network


def build_siamese(
    network: str, in_shape: tuple[int, ...], out_dim: int = 16, hidden: tuple[int, ...] = (256, 256)
) -> nn.Module:
    """The Siamese network for inputs of ``in_shape`` (``(C, H, W)`` images or ``(d,)``
    vectors); ``network`` as :func:`resolve_network`."""
    network = resolve_network(network, len(in_shape) == 3, int(in_shape[0]))
    if network == "mlp":
        if len(in_shape) != 1:
            in_shape = (int(np.prod(in_shape)),)
        return nn.Sequential(nn.Flatten(), MLP(in_shape[0], out_dim, hidden))
    if len(in_shape) != 3:
        raise ConfigError(
            f"features.siamese.network {network!r} needs images, but the inputs are vectors of "
            f"shape {tuple(in_shape)}; use network mlp (or auto)"
        )
    net = SiameseGrey if network == "grey" else SiameseRGB
    return net(tuple(int(s) for s in in_shape), out_dim)  # type: ignore[arg-type]


def contrastive_loss(z1: Tensor, z2: Tensor, same: Tensor, margin: float = 1.0) -> Tensor:
    """BASiS Eq. 21 averaged over pairs: ``same d^2 + (1 - same) max(0, margin - d)^2`` with
    ``d = |z1 - z2|`` (``same`` 1 for a positive pair, 0 for a negative)."""
    d2 = torch.sum((z1 - z2) ** 2, dim=1)
    d = torch.sqrt(d2 + 1e-12)  # the gradient of |.| at 0 stays finite
    same = same.to(d2.dtype)
    return torch.mean(same * d2 + (1 - same) * torch.clamp(margin - d, min=0.0) ** 2)


class PairSampler:
    """Balanced positive / negative pairs for step ``step`` (module docstring)."""

    def __init__(
        self,
        pairing: str,
        n: int,
        *,
        labels: np.ndarray | None = None,
        neighbours: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        if pairing not in PAIRINGS:
            raise ConfigError(
                f"features.siamese.pairing: {pairing!r} is not one of {', '.join(PAIRINGS)}"
            )
        self.pairing, self.n, self.seed = pairing, int(n), int(seed)
        if pairing == "labels":
            if labels is None or len(labels) != n or (np.asarray(labels) < 0).any():
                raise ConfigError(
                    "features.siamese.pairing 'labels' needs a label for every training point; "
                    "this data set has none (or unlabelled points): use pairing 'knn'"
                )
            self.labels = np.asarray(labels)
            classes, counts = np.unique(self.labels, return_counts=True)
            if len(classes) < 2 or counts.max() < 2:
                raise ConfigError(
                    "features.siamese.pairing 'labels' needs two classes and a class with two "
                    "points; use pairing 'knn'"
                )
            self.members = {int(c): np.flatnonzero(self.labels == c) for c in classes}
            self.pos_classes = classes[counts >= 2].astype(np.int64)
        else:
            if neighbours is None or len(neighbours) != n:
                raise ConfigError("pairing 'knn' needs each training point's nearest neighbours")
            self.neighbours = np.asarray(neighbours)

    def __call__(self, step: int, n_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(i, j, same)``: ``n_pairs // 2`` positive pairs, the rest negative."""
        rng = np.random.default_rng([self.seed, int(step), STREAM_PAIRS])
        n_pos = n_pairs // 2
        n_neg = n_pairs - n_pos
        if self.pairing == "labels":
            cls = rng.choice(self.pos_classes, size=n_pos)
            i_pos = np.empty(n_pos, dtype=np.int64)
            j_pos = np.empty(n_pos, dtype=np.int64)
            for c in np.unique(cls):
                where = np.flatnonzero(cls == c)
                members = self.members[int(c)]
                a = rng.integers(0, len(members), size=len(where))
                b = (a + rng.integers(1, len(members), size=len(where))) % len(members)
                i_pos[where], j_pos[where] = members[a], members[b]
            i_neg = rng.integers(0, self.n, size=n_neg)
            j_neg = rng.integers(0, self.n, size=n_neg)
            bad = self.labels[i_neg] == self.labels[j_neg]
            while bad.any():
                j_neg[bad] = rng.integers(0, self.n, size=int(bad.sum()))
                bad = self.labels[i_neg] == self.labels[j_neg]
        else:
            k = self.neighbours.shape[1]
            i_pos = rng.integers(0, self.n, size=n_pos)
            j_pos = self.neighbours[i_pos, rng.integers(0, k, size=n_pos)]
            i_neg = rng.integers(0, self.n, size=n_neg)
            j_neg = rng.integers(0, self.n, size=n_neg)
            bad = (j_neg == i_neg) | (self.neighbours[i_neg] == j_neg[:, None]).any(axis=1)
            for _ in range(100):
                if not bad.any():
                    break
                j_neg[bad] = rng.integers(0, self.n, size=int(bad.sum()))
                bad = (j_neg == i_neg) | (self.neighbours[i_neg] == j_neg[:, None]).any(axis=1)
        same = np.concatenate([np.ones(n_pos), np.zeros(n_neg)]).astype(np.float32)
        return np.concatenate([i_pos, i_neg]), np.concatenate([j_pos, j_neg]), same


@dataclass
class SiameseResult:
    """What training returned: the per-step log and how long it took."""

    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    resumed_from: int = 0


def _fingerprint(settings: Mapping[str, Any], x: Tensor) -> str:
    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    h.update(repr(tuple(x.shape)).encode())
    h.update(x[:16].contiguous().numpy().tobytes())
    return h.hexdigest()


def train_siamese(
    model: nn.Module,
    x: Tensor,
    sampler: PairSampler,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_pairs: int = 128,
    margin: float = 1.0,
    seed: int = 0,
    device: torch.device | str = "cpu",
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 100,
    settings: Mapping[str, Any] | None = None,
) -> SiameseResult:
    """Adam on the contrastive loss (Eq. 21) over ``steps`` batches of ``batch_pairs`` pairs.

    ``checkpoint``: written every ``checkpoint_every`` steps and at the end, resumed from
    when it was written with the same ``settings`` on the same inputs (else ignored, with a
    warning)."""
    device = torch.device(device)
    torch.manual_seed(int(seed))
    model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    fingerprint = _fingerprint({**(settings or {}), "steps": steps, "lr": lr}, x)
    start, history = 0, []
    ckpt = load_checkpoint(checkpoint) if checkpoint else None
    if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
        log.warning("%s was written by other settings or data; starting afresh", checkpoint)
        ckpt = None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start, history = int(ckpt["step"]), [dict(h) for h in ckpt["history"]]
        log.info("resuming from %s at step %d", checkpoint, start)
    t0 = time.perf_counter()
    for step in range(start, int(steps)):
        i, j, same = sampler(step, int(batch_pairs))
        both = torch.cat([x[torch.from_numpy(i)], x[torch.from_numpy(j)]]).to(device)
        z = model(both)
        loss = contrastive_loss(z[: len(i)], z[len(i) :], torch.from_numpy(same).to(device), margin)
        if not torch.isfinite(loss):
            raise DataError(f"Siamese training: the loss became {float(loss)} at step {step + 1}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(
            {"step": step + 1, "loss": float(loss.detach()), "seconds": time.perf_counter() - t0}
        )
        if checkpoint and ((step + 1) % int(checkpoint_every) == 0 or step + 1 == steps):
            save_checkpoint(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "step": step + 1,
                    "history": history,
                    "fingerprint": fingerprint,
                },
            )
    model.eval()
    return SiameseResult(history, time.perf_counter() - t0, start)


@torch.no_grad()
def embed(model: nn.Module, x: Tensor, batch: int = 1024, device: str | torch.device = "cpu"):
    """The network's output on every row of ``x``, as float32 numpy."""
    model.eval()
    out = [model(x[s : s + batch].to(device)).cpu() for s in range(0, len(x), batch)]
    return torch.cat(out).numpy().astype(np.float32)


def knn_positives(x: Tensor, k: int) -> np.ndarray:
    """Each row's ``k`` nearest neighbours (exact, self excluded) in the flattened inputs."""
    from ..graph.laplacian import knn

    flat = x.reshape(len(x), -1)
    if k >= len(flat):
        raise ConfigError(f"features.siamese.knn_positives {k}: needs more than {k} points")
    return knn(flat, int(k))[1]


def siamese_features(
    inputs: tuple[Tensor, Tensor],
    y_train: np.ndarray | None,
    opts: Mapping[str, Any],
    *,
    seed: int = 0,
    device: str = "auto",
    checkpoint: str | Path | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Train the Siamese network on the train split and embed both: ``(train, test, info)``.

    ``inputs``: float32 ``(n, C, H, W)`` images in [0, 1] or ``(n, d)`` vectors; ``opts``: the
    ``features.siamese`` config section. ``info`` records the pairing, network and training."""
    from ..models import resolve_device

    x_tr, x_te = inputs
    dev = resolve_device(device)
    pairing = opts["pairing"]
    neighbours = knn_positives(x_tr, int(opts["knn_positives"])) if pairing == "knn" else None
    sampler = PairSampler(pairing, len(x_tr), labels=y_train, neighbours=neighbours, seed=seed)
    torch.manual_seed(int(seed))
    model = build_siamese(
        opts["network"], tuple(x_tr.shape[1:]), int(opts["dim"]), tuple(opts["hidden"])
    )
    settings = {k: v for k, v in opts.items() if k != "checkpoint_every"}
    res = train_siamese(
        model,
        x_tr,
        sampler,
        steps=int(opts["steps"]),
        lr=float(opts["lr"]),
        batch_pairs=int(opts["batch_pairs"]),
        margin=float(opts["margin"]),
        seed=seed,
        device=dev,
        checkpoint=checkpoint,
        checkpoint_every=int(opts["checkpoint_every"]),
        settings={**settings, "seed": seed},
    )
    z_tr, z_te = embed(model, x_tr, device=dev), embed(model, x_te, device=dev)
    losses = [h["loss"] for h in res.history]
    info = {
        "pairing": pairing,
        "network": resolve_network(opts["network"], x_tr.dim() == 4, int(x_tr.shape[1])),
        "steps": len(res.history),
        "seconds": round(res.seconds, 3),
        "resumed_from": res.resumed_from,
        "loss_first": losses[0] if losses else None,
        "loss_last": float(np.mean(losses[-20:])) if losses else None,
    }
    return z_tr, z_te, info
