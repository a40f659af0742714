"""Seeded toy generators (float32 points, no official test split: the hold-out is drawn later).

* ``moons``, ``circles``: scikit-learn's ``make_moons`` / ``make_circles`` (BASiS Fig. 1).
* ``three_moons``: three interleaved half-moons (BASiS Fig. 3), unit radius: a lower arc
  centred at the origin and two upper arcs centred at (-1.25, -0.5) and (1.25, -0.5), each
  interleaved with it as in ``make_moons``. The 1.25 spacing keeps every gap >= 0.44
  (``make_moons``: 0.5); with 1.0 the two upper arcs would touch at (0, -0.5).
* ``double_spiral``: NMCE's toy (Sec. 4.1, App. B.1): two interleaved spirals, the second the
  point reflection of the first, ``t = 1.5 pi (1 + 2u)``, point ``(t cos t, t sin t)``, so the
  radius reaches 4.5 pi ~ 14.1 ("approximately 15"); Gaussian noise 0.05. The release builds it
  the same way from ``make_swiss_roll``'s x and z coordinates.
* ``random_mlp_manifolds``: NMCE App. A.1: one manifold per intrinsic dimension (3 and 6),
  Gaussian (or uniform) latents pushed through a random MLP with leaky-ReLU(0.2) into an
  ambient space. With ``bias: true`` the manifolds sit apart (identifiable); with
  ``bias: false`` every MLP maps 0 to 0, so all manifolds meet at the origin (not identifiable).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import DataError
from .dataset import Dataset
from .spec import (
    OptionTable,
    boolean,
    choice,
    int_list,
    integer,
    number,
    resolve_options,
    rng_for,
)

N_TOY = 9000  # BASiS toys: 9000 points (Sec. 5.1, Fig. 3)
N_NMCE = 4096  # NMCE toys: one batch of 4096 (Table B.1)


def _factor(v: Any, where: str) -> float:
    v = number(0.0, 1.0)(v, where)
    if v >= 1.0:
        raise DataError(f"{where}: {v} must be below 1 (inner radius / outer radius)")
    return v


OPTIONS: dict[str, OptionTable] = {
    "moons": {"n_samples": (N_TOY, integer(2)), "noise": (0.05, number(0.0))},
    "circles": {
        "n_samples": (N_TOY, integer(2)),
        "noise": (0.03, number(0.0)),
        "factor": (0.5, _factor),
    },
    "three_moons": {
        "n_samples": (N_TOY, integer(3)),
        "noise": (0.05, number(0.0)),
        "drop": (1.0, number(0.0)),
    },
    "double_spiral": {"n_samples": (N_NMCE, integer(2)), "noise": (0.05, number(0.0))},
    "random_mlp_manifolds": {
        "n_samples": (N_NMCE, integer(2)),
        "intrinsic_dims": ([3, 6], int_list(min_len=2)),
        "ambient_dim": (32, integer(1)),
        "hidden_dim": (64, integer(1)),
        "n_layers": (3, integer(1)),
        "bias": (True, boolean),
        "latent": ("gaussian", choice("gaussian", "uniform")),
        "noise": (0.0, number(0.0)),
        "normalize": (True, boolean),
    },
}


def _sklearn_state(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))


def _counts(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _shuffle(
    x: np.ndarray, y: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    perm = rng.permutation(len(x))
    return x[perm], y[perm]


def moons(o: Mapping[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(
        o["n_samples"], noise=o["noise"], shuffle=True, random_state=_sklearn_state(rng)
    )


def circles(o: Mapping[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(
        o["n_samples"],
        noise=o["noise"],
        factor=o["factor"],
        shuffle=True,
        random_state=_sklearn_state(rng),
    )


def three_moons(o: Mapping[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two upper arcs and a lower one lowered by ``drop`` (default 1: 0.9 from the upper arcs, whose tips are 0.5 apart).

    With ``drop`` 0 the upper arcs reach into the lower arc's bowl (gaps 0.44) and the three
    arcs form a chain: the first non-trivial eigenvectors of a 256-point batch then vary along
    the chain instead of separating the arcs (k-means NMI 0.5-0.7 on the batch's own exact
    eigenvectors), so no batch method can cluster them.
    """
    parts, labels = [], []
    for k, m in enumerate(_counts(o["n_samples"], 3)):
        t = np.linspace(0.0, np.pi, m)
        if k == 1:  # the lower arc, centred at (0, -drop)
            pts = np.stack([np.cos(t), -np.sin(t) - o["drop"]], axis=1)
        else:  # upper arcs centred at (-+1.25, -0.5), above the lower arc's bowl
            pts = np.stack([np.cos(t) + 1.25 * (k - 1), np.sin(t) - 0.5], axis=1)
        parts.append(pts)
        labels.append(np.full(m, k))
    x = np.concatenate(parts) + o["noise"] * rng.standard_normal((o["n_samples"], 2))
    return _shuffle(x, np.concatenate(labels), rng)


def double_spiral(o: Mapping[str, Any], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    parts, labels = [], []
    for k, m in enumerate(_counts(o["n_samples"], 2)):
        t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(m))
        pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
        parts.append(pts if k == 0 else -pts)
        labels.append(np.full(m, k))
    x = np.concatenate(parts) + o["noise"] * rng.standard_normal((o["n_samples"], 2))
    return _shuffle(x, np.concatenate(labels), rng)


def _random_mlp(
    dims: list[int], bias: bool, rng: np.random.Generator
) -> Callable[[np.ndarray], np.ndarray]:
    """An MLP with PyTorch's default ``nn.Linear`` initialisation (weights and biases uniform in
    +-1/sqrt(fan_in)) and leaky-ReLU(0.2) between layers (none after the last)."""
    layers = []
    for fan_in, fan_out in itertools.pairwise(dims):
        bound = 1.0 / np.sqrt(fan_in)
        w = rng.uniform(-bound, bound, size=(fan_in, fan_out))
        b = rng.uniform(-bound, bound, size=fan_out) if bias else np.zeros(fan_out)
        layers.append((w, b))

    def forward(z: np.ndarray) -> np.ndarray:
        for i, (w, b) in enumerate(layers):
            z = z @ w + b
            if i < len(layers) - 1:
                z = np.where(z > 0, z, 0.2 * z)
        return z

    return forward


def random_mlp_manifolds(
    o: Mapping[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    dims = o["intrinsic_dims"]
    parts, labels = [], []
    for k, (d, m) in enumerate(zip(dims, _counts(o["n_samples"], len(dims)), strict=True)):
        widths = [d] + [o["hidden_dim"]] * (o["n_layers"] - 1) + [o["ambient_dim"]]
        net = _random_mlp(widths, o["bias"], rng)
        z = rng.standard_normal((m, d)) if o["latent"] == "gaussian" else rng.uniform(-1, 1, (m, d))
        parts.append(net(z))
        labels.append(np.full(m, k))
    x = np.concatenate(parts)
    if o["normalize"]:  # one global scale: keeps the geometry and the origin; O(1) coordinates
        x = x / max(float(np.sqrt(np.mean(x**2))), 1e-12)
    x = x + o["noise"] * rng.standard_normal(x.shape)
    return _shuffle(x, np.concatenate(labels), rng)


GENERATORS = {
    "moons": moons,
    "circles": circles,
    "three_moons": three_moons,
    "double_spiral": double_spiral,
    "random_mlp_manifolds": random_mlp_manifolds,
}
TOYS = tuple(GENERATORS)


def n_classes(source: str, options: Mapping[str, Any]) -> int:
    if source == "random_mlp_manifolds":
        return len(options["intrinsic_dims"])
    return 3 if source == "three_moons" else 2


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_options(name, spec, OPTIONS[spec["source"]])


def generate(source: str, opts: Mapping[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(x float32 (n, d), y int64 (n,))`` of toy ``source`` with checked options ``opts``."""
    x, y = GENERATORS[source](opts, rng_for(seed, "generate"))
    return np.ascontiguousarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)


def load(name: str, spec: Mapping[str, Any], seed: int) -> Dataset:
    source = spec["source"]
    opts = options(name, spec)
    x, y = generate(source, opts, seed)
    meta = {
        "name": name,
        "source": source,
        "n_classes": n_classes(source, opts),
        "image_shape": None,
        "split": "holdout",
        "options": opts,
    }
    return Dataset(x, y, x[:0], y[:0], meta)
