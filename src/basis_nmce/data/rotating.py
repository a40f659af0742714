"""Snapshots of an object rotating on a turntable (ours; stands in for BASiS Sec. 5.3's bunny).

The BASiS paper learns the 2-D diffusion map of 2000 snapshots of a toy bunny on a rotating
display (Fig. 5; data of its ref. [17], not public here). This source renders the same kind of
data, seeded and without download: an asymmetric object (a body, a head on one side with an
ear, a tail: four ellipsoids) stands off-centre on a grey disc and is turned about the vertical axis by
an angle drawn uniformly in ``[0, 2 pi)``; a fixed orthographic camera looks down at
``elevation`` degrees, a fixed light shades it (Lambert), and Gaussian pixel noise of std
``noise`` (on the 0..1 grey scale) is added. One degree of freedom, a circle: its diffusion map
on a kNN graph of the images is (close to) ``(cos theta, sin theta)`` up to an affine map.

Images are uint8 ``(n, size, size)``. The angle is the label: ``y = floor(theta / (2 pi) *
angle_bins)`` (default 360 bins: whole degrees), so the prepared format's labels carry it
through splits and subsamples; :func:`bin_angle` turns a label back into radians (the bin's
centre). :func:`render` gives the exact angles, for code that wants them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .dataset import Dataset
from .spec import OptionTable, integer, number, resolve_options, rng_for

SOURCE = "rotating"
OPTIONS: OptionTable = {
    "n_samples": (2000, integer(10)),  # Sec. 5.3: 2000 snapshots
    "size": (32, integer(8, 256)),
    "elevation": (30.0, number(0.0, 89.0)),
    "noise": (0.02, number(0.0)),
    "angle_bins": (360, integer(2)),
}

# (centre, radii) of the ellipsoids, object frame, z up; the head and ear sit on the +x side
# (the object stands off the axis, so it also sweeps round: every degree moves it about as much)
_PARTS = (
    ((0.0, 0.8, 0.55), (1.0, 0.55, 0.5)),  # body
    ((0.95, 0.9, 1.05), (0.38, 0.33, 0.33)),  # head
    ((1.0, 1.05, 1.55), (0.09, 0.07, 0.38)),  # ear
    ((-1.05, 0.7, 0.7), (0.22, 0.22, 0.22)),  # tail
)
_DISC_RADIUS, _DISC_GREY, _VIEW = 2.1, 0.3, 2.6  # the image spans [-_VIEW, _VIEW]^2
#: rays per pixel side: each pixel averages SUPERSAMPLE^2 rays (anti-aliasing). With one ray a
#: pixel, silhouette pixels flip between object and disc in jumps that break the 20-NN graph
#: of 2000 snapshots into pieces (measured: 4 components).
SUPERSAMPLE = 4


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_options(name, spec, OPTIONS)


def _camera(size: int, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ray origins ``((size * SUPERSAMPLE)^2, 3)``, the common direction ``(3,)`` and the light
    direction."""
    e = np.deg2rad(elevation)
    back = np.array([np.cos(e), 0.0, np.sin(e)])  # from the scene towards the camera
    right = np.array([0.0, 1.0, 0.0])
    up = np.cross(back, right)  # (-sin e, 0, cos e): z up
    fine = size * SUPERSAMPLE
    u = (np.arange(fine) + 0.5) / fine * 2.0 * _VIEW - _VIEW
    vv, uu = np.meshgrid(-u, u, indexing="ij")  # row 0 at the top
    target = np.array([0.0, 0.0, 0.6])
    origins = target + 10.0 * back + uu.reshape(-1, 1) * right + vv.reshape(-1, 1) * up
    light = np.array([0.5, -0.6, 0.8])
    return origins, -back, light / np.linalg.norm(light)


def _render_one(theta: float, origins: np.ndarray, d: np.ndarray, light: np.ndarray) -> np.ndarray:
    """Grey values in [0, 1] of one snapshot: rays cast into the object turned by ``theta``."""
    c, s = np.cos(theta), np.sin(theta)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])  # object -> world
    o, dd = origins @ rot, d @ rot  # rays in the object frame (rot^T applied to each)
    n_rays = len(o)
    depth = np.full(n_rays, np.inf)
    grey = np.zeros(n_rays)
    # the turntable: plane z = 0 (rotation-invariant, so it carries no angle)
    t_disc = -o[:, 2] / dd[2]
    hit = o[:, :2] + t_disc[:, None] * dd[:2]
    on_disc = (np.sum(hit**2, axis=1) <= _DISC_RADIUS**2) & (t_disc > 0)
    depth[on_disc], grey[on_disc] = t_disc[on_disc], _DISC_GREY
    for centre, radii in _PARTS:
        r = np.asarray(radii)
        oc = (o - np.asarray(centre)) / r
        dr = dd / r
        a = dr @ dr
        b = 2.0 * oc @ dr
        cc = np.sum(oc**2, axis=1) - 1.0
        disc = b * b - 4.0 * a * cc
        ok = disc >= 0
        t = np.full(n_rays, np.inf)
        t[ok] = (-b[ok] - np.sqrt(disc[ok])) / (2.0 * a)
        nearer = ok & (t > 0) & (t < depth)
        if not nearer.any():
            continue
        p = o[nearer] + t[nearer, None] * dd
        normal = (p - np.asarray(centre)) / r**2
        normal /= np.linalg.norm(normal, axis=1, keepdims=True)
        lam = np.clip((normal @ rot.T) @ light, 0.0, None)  # the light is fixed in the world
        depth[nearer] = t[nearer]
        grey[nearer] = 0.25 + 0.75 * lam
    return grey


def render(
    n_samples: int = 2000,
    *,
    size: int = 32,
    elevation: float = 30.0,
    noise: float = 0.02,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (n, size, size), angles float64 (n,) in [0, 2 pi))``, seeded."""
    rng = rng_for(seed, "generate")
    angles = rng.uniform(0.0, 2.0 * np.pi, size=n_samples)
    origins, d, light = _camera(size, elevation)
    k = SUPERSAMPLE
    fine = np.stack([_render_one(t, origins, d, light) for t in angles])
    imgs = fine.reshape(-1, size, k, size, k).mean(axis=(2, 4))
    imgs = imgs + noise * rng.standard_normal(imgs.shape)
    return np.clip(np.rint(imgs * 255.0), 0, 255).astype(np.uint8), angles


def angle_label(angles: np.ndarray, bins: int) -> np.ndarray:
    """The label of each angle: its bin among ``bins`` equal bins of ``[0, 2 pi)``."""
    frac = np.mod(np.asarray(angles, dtype=np.float64), 2.0 * np.pi) / (2.0 * np.pi)
    return np.minimum((frac * bins).astype(np.int64), bins - 1)


def bin_angle(labels: np.ndarray, bins: int) -> np.ndarray:
    """The angle (radians) at the centre of each label's bin: the inverse of :func:`angle_label`
    up to half a bin."""
    return (np.asarray(labels, dtype=np.float64) + 0.5) * (2.0 * np.pi / bins)


def load(name: str, spec: Mapping[str, Any], seed: int) -> Dataset:
    opts = options(name, spec)
    x, angles = render(
        opts["n_samples"],
        size=opts["size"],
        elevation=opts["elevation"],
        noise=opts["noise"],
        seed=seed,
    )
    y = angle_label(angles, opts["angle_bins"])
    meta = {
        "name": name,
        "source": SOURCE,
        "n_classes": opts["angle_bins"],
        "image_shape": [opts["size"], opts["size"]],
        "split": "holdout",
        "options": opts,
        "labels": "angle bin: theta = (y + 0.5) * 2 pi / angle_bins",
    }
    return Dataset(x, y, x[:0], y[:0], meta)
