"""Batched data augmentations defining the NMCE constraint D (NMCE Sec. 3.5, Appendix B).

Every augmenter is a callable ``augmenter(x, generator=None) -> Tensor`` that returns one random
view per sample with **independent random parameters per sample** (torchvision's v2 transforms,
applied to a batch tensor, draw one set of parameters for the whole batch). The image augmenters
are vectorised: per-sample parameters are drawn from ``generator`` and applied with per-sample
sampling grids (``affine_grid`` / ``grid_sample``), grouped convolutions and per-sample colour
factors. ``backend="torchvision"`` instead loops over the samples with the equivalent
torchvision v2 pipeline (slower; kept as a reference).

Inputs: images as float tensors ``(N, C, H, W)`` in [0, 1] (C = 1 or 3), vectors ``(N, d)``.
Outputs keep shape (except ``size`` for the SimCLR crop), dtype and device; image values stay in
[0, 1]. Random parameters are drawn on the generator's device (pass a generator on ``x``'s
device for speed on an accelerator) or, without one, from torch's global RNG on ``x``'s device.

Kinds (:func:`make_augmenter`):

* ``noise`` - additive Gaussian noise (double spiral: std 0.05; random-MLP manifolds: 0.1).
* ``grey`` - small grey images (28 x 28): random affine (rotation, scale, translation), Gaussian
  blur with probability, brightness. Not in the paper (it has no grey-digit experiment): our
  choice of mild, content-preserving perturbations.
* ``simclr`` - SimCLR colour set (Chen et al., 2020) used for CIFAR/STL: random resized crop,
  horizontal flip, colour jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale with p 0.2.
* ``coil`` - the COIL policy of Appendix B.2: horizontal flip p 0.5, random perspective
  (distortion 0.3, p 0.6), colour jitter (0.8, 0.8, 0.8, 0.2) always applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from basis_nmce.errors import ConfigError, DataError

__all__ = [
    "AUGMENTER_KINDS",
    "Augmenter",
    "CoilAugmenter",
    "GaussianNoise",
    "GreyAugmenter",
    "SimCLRAugmenter",
    "coil_augmenter",
    "gaussian_noise",
    "grey_augmenter",
    "make_augmenter",
    "simclr_augmenter",
]

Backend = Literal["vectorised", "torchvision"]

# ITU-R 601-2 luma with torchvision's rounding of the red weight (rgb_to_grayscale).
_LUMA = (0.2989, 0.587, 0.114)

# CPU batches are processed in chunks of about this many bytes (see _ImageAugmenter).
_CPU_CHUNK_BYTES = 1 << 20


class Augmenter(Protocol):
    """``augmenter(x, generator) -> view``: one random view per sample."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor: ...


# --------------------------------------------------------------------------- random draws


def _uniform(
    n: int,
    low: float,
    high: float,
    generator: torch.Generator | None,
    device: torch.device,
    *extra: int,
) -> Tensor:
    """``n`` (x extra) uniform draws in [low, high], float32 on ``device``."""
    src = generator.device if generator is not None else device
    u = torch.rand((n, *extra), generator=generator, device=src, dtype=torch.float32)
    return (low + (high - low) * u).to(device)


def _bernoulli(n: int, p: float, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Boolean mask of ``n`` independent draws that are True with probability ``p``."""
    return _uniform(n, 0.0, 1.0, generator, device) < p


def _factor_range(value: float, name: str, centre: float = 1.0) -> tuple[float, float]:
    """torchvision ColorJitter convention: ``[max(0, c - v), c + v]`` (hue: ``[-v, v]``)."""
    if value < 0:
        raise ConfigError(f"{name} must be >= 0, got {value}")
    if centre == 0.0:
        if value > 0.5:
            raise ConfigError(f"hue must be in [0, 0.5], got {value}")
        return -value, value
    return max(0.0, centre - value), centre + value


# --------------------------------------------------------------------------- input handling


def _check_images(x: Tensor) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise DataError(f"images must be a (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise DataError(f"images must be floating point in [0, 1], got {x.dtype}")
    if x.shape[1] not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels, got {x.shape[1]}")


def _work_dtype(x: Tensor) -> torch.dtype:
    return torch.promote_types(x.dtype, torch.float32)


# --------------------------------------------------------------------------- geometry


def _sample(
    x: Tensor,
    theta: Tensor,
    size: tuple[int, int],
    mode: str = "bilinear",
    padding: str = "zeros",
) -> Tensor:
    """Resample ``x`` on per-sample affine grids ``theta`` (N, 2, 3) in normalised coordinates.

    ``padding="zeros"`` fills outside the image with 0 (torchvision's fill); ``"border"``
    replicates the edge, as ``F.interpolate`` does for crops touching the border.
    """
    grid = F.affine_grid(theta.to(x.dtype), [x.shape[0], x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def _crop_theta(boxes: Tensor, flip: Tensor, height: int, width: int) -> Tensor:
    """Affine grids for crops ``boxes = (top, left, h, w)`` (pixels, (N, 4)), flipped where set.

    Output pixel centres sample the box exactly as ``F.interpolate(crop, align_corners=False)``.
    """
    top, left, h, w = boxes.unbind(dim=1)
    sx = torch.where(flip, -w / width, w / width)
    sy = h / height
    cx = -1.0 + (2.0 * left + w) / width
    cy = -1.0 + (2.0 * top + h) / height
    zero = torch.zeros_like(sx)
    return torch.stack(
        [torch.stack([sx, zero, cx], dim=1), torch.stack([zero, sy, cy], dim=1)], dim=1
    )


def _affine_theta(
    angle_deg: Tensor, scale: Tensor, tx: Tensor, ty: Tensor, height: int, width: int
) -> Tensor:
    """Inverse maps of ``q = R(angle) * scale * (p - c) + c + t`` about the image centre ``c``.

    Angles in degrees (clockwise on screen, as torchvision), translations in pixels; returned as
    (N, 2, 3) normalised-coordinate grids for ``_sample``.
    """
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    # inverse linear part in pixel coordinates: R(-a) / s
    m00, m01, m10, m11 = cos, sin, -sin, cos
    # in normalised coordinates: diag(2/W, 2/H) A diag(W/2, H/2), offset -diag(2/W, 2/H) A t
    n00, n01 = m00, m01 * (height / width)
    n10, n11 = m10 * (width / height), m11
    o0 = -(m00 * tx + m01 * ty) * (2.0 / width)
    o1 = -(m10 * tx + m11 * ty) * (2.0 / height)
    return torch.stack(
        [torch.stack([n00, n01, o0], dim=1), torch.stack([n10, n11, o1], dim=1)], dim=1
    )


def _homographies(src: Tensor, dst: Tensor) -> Tensor:
    """(N, 8) coefficients ``(a, b, c, d, e, f, g, h)`` of the maps sending ``src`` -> ``dst``.

    ``X = (a x + b y + c) / (g x + h y + 1)``, ``Y = (d x + e y + f) / (g x + h y + 1)``;
    ``src``, ``dst`` are (N, 4, 2) point sets. Solved in float64.
    """
    src, dst = src.double(), dst.double()
    x, y = src[..., 0], src[..., 1]
    bx, by = dst[..., 0], dst[..., 1]
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    rows_x = torch.stack([x, y, one, zero, zero, zero, -bx * x, -bx * y], dim=-1)
    rows_y = torch.stack([zero, zero, zero, x, y, one, -by * x, -by * y], dim=-1)
    a = torch.cat([rows_x, rows_y], dim=1)  # (N, 8, 8)
    b = torch.cat([bx, by], dim=1)  # (N, 8)
    return torch.linalg.solve(a, b)


def _perspective(x: Tensor, startpoints: Tensor, endpoints: Tensor) -> Tensor:
    """Per-sample perspective warps moving ``startpoints`` to ``endpoints`` ((N, 4, 2) pixels).

    Same convention as ``torchvision.transforms.v2.functional.perspective``: each output pixel
    ``(i + 0.5, j + 0.5)`` is sent through the homography endpoints -> startpoints and read with
    bilinear interpolation, zero outside.
    """
    n, _, height, width = x.shape
    coeffs = _homographies(endpoints, startpoints).to(x.dtype)  # output -> input
    ys = torch.arange(height, device=x.device, dtype=x.dtype) + 0.5
    xs = torch.arange(width, device=x.device, dtype=x.dtype) + 0.5
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx, gy = gx.reshape(1, -1), gy.reshape(1, -1)
    c = coeffs.unsqueeze(-1)  # (N, 8, 1)
    den = c[:, 6] * gx + c[:, 7] * gy + 1.0
    ix = (c[:, 0] * gx + c[:, 1] * gy + c[:, 2]) / den
    iy = (c[:, 3] * gx + c[:, 4] * gy + c[:, 5]) / den
    grid = torch.stack([ix / (0.5 * width) - 1.0, iy / (0.5 * height) - 1.0], dim=-1)
    grid = grid.reshape(n, height, width, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _perspective_points(
    n: int, height: int, width: int, distortion: float, generator, device
) -> tuple[Tensor, Tensor]:
    """Random corner displacements as torchvision's RandomPerspective (continuous offsets)."""
    dx = distortion * (width // 2)
    dy = distortion * (height // 2)
    u = _uniform(n, 0.0, 1.0, generator, device, 4, 2)
    r, b = float(width - 1), float(height - 1)
    start = torch.tensor([[0.0, 0.0], [r, 0.0], [r, b], [0.0, b]], device=device)
    # inward displacement of each corner: (+x, +y), (-x, +y), (-x, -y), (+x, -y)
    sign = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]], device=device)
    limits = torch.tensor([dx, dy], device=device)
    end = start + sign * u * limits
    return start.expand(n, 4, 2), end


def _random_resized_boxes(
    n: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator,
    device,
    attempts: int = 10,
) -> Tensor:
    """Per-sample crop boxes (top, left, h, w) as RandomResizedCrop (continuous sizes).

    Up to ``attempts`` draws of area fraction ~ U(scale) and log aspect ~ U(log ratio) per
    sample; the first that fits is used, else the central crop with the aspect clamped to
    ``ratio`` (torchvision's fallback).
    """
    area = float(height * width)
    target = area * _uniform(n, scale[0], scale[1], generator, device, attempts)
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator, device, attempts)
    aspect = torch.exp(log_r)
    w = torch.sqrt(target * aspect)
    h = torch.sqrt(target / aspect)
    ok = (w > 0) & (w <= width) & (h > 0) & (h <= height)  # (n, attempts)
    first = torch.argmax(ok.to(torch.int8), dim=1, keepdim=True)
    found = ok.any(dim=1)
    w_sel = torch.gather(w, 1, first).squeeze(1)
    h_sel = torch.gather(h, 1, first).squeeze(1)
    # fallback: whole image cropped to the nearest allowed aspect
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = float(width), width / ratio[0]
    elif in_ratio > ratio[1]:
        fw, fh = height * ratio[1], float(height)
    else:
        fw, fh = float(width), float(height)
    w_sel = torch.where(found, w_sel, torch.full_like(w_sel, fw))
    h_sel = torch.where(found, h_sel, torch.full_like(h_sel, fh))
    pos = _uniform(n, 0.0, 1.0, generator, device, 2)
    top = pos[:, 0] * (height - h_sel)
    left = pos[:, 1] * (width - w_sel)
    return torch.stack([top, left, h_sel, w_sel], dim=1)


# --------------------------------------------------------------------------- filtering


def _gaussian_blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Separable Gaussian blur with a per-sample ``sigma`` (N,), reflect padding (torchvision)."""
    n, c, h, w = x.shape
    half = kernel_size // 2
    offsets = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - half
    kernel = torch.exp(-0.5 * (offsets / sigma.to(x.dtype).unsqueeze(1)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N, k)
    kernel = kernel.repeat_interleave(c, dim=0)  # (N*C, k)
    flat = x.reshape(1, n * c, h, w)
    flat = F.pad(flat, (half, half, half, half), mode="reflect")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, kernel_size), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, kernel_size, 1), groups=n * c)
    return flat.reshape(n, c, h, w)


# --------------------------------------------------------------------------- colour


def _grey(x: Tensor) -> Tensor:
    """Luma (N, 1, H, W) of RGB images (identity for one channel)."""
    if x.shape[1] == 1:
        return x
    r, g, b = x.unbind(dim=1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _per_sample(f: Tensor) -> Tensor:
    return f.view(-1, 1, 1, 1)


def _adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * _per_sample(factor)).clamp(0.0, 1.0)


def _adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = _grey(x).mean(dim=(-3, -2, -1), keepdim=True)
    f = _per_sample(factor)
    return (f * x + (1.0 - f) * mean).clamp(0.0, 1.0)


def _adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    f = _per_sample(factor)
    return (f * x + (1.0 - f) * _grey(x)).clamp(0.0, 1.0)


def _rgb_to_hsv(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(N, 3, H, W) RGB in [0, 1] -> hue in [0, 1), saturation, value, each (N, H, W)."""
    r, g, b = x.unbind(dim=1)
    maxc = torch.maximum(torch.maximum(r, g), b)
    chroma = maxc - torch.minimum(torch.minimum(r, g), b)
    sat = chroma / torch.where(maxc > 0, maxc, 1.0)
    inv = 1.0 / torch.where(chroma > 0, chroma, 1.0)
    # sector offsets 0 / 2 / 4 for a red / green / blue maximum; ties give the same hue
    hue = torch.where(
        maxc == r,
        (g - b) * inv,
        torch.where(maxc == g, 2.0 + (b - r) * inv, 4.0 + (r - g) * inv),
    )
    return torch.remainder(hue * (1.0 / 6.0), 1.0), sat, maxc


def _hsv_to_rgb(h: Tensor, s: Tensor, v: Tensor) -> Tensor:
    """HSV (hue in [0, 1)) -> RGB: channel c = v - v s clamp(min(k, 4 - k), 0, 1),
    k = (n_c + 6 h) mod 6 with n = (5, 3, 1) for (r, g, b)."""
    h, s, v = h.unsqueeze(1), s.unsqueeze(1), v.unsqueeze(1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=v.dtype, device=v.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    return (v - v * s * ramp).clamp(0.0, 1.0)


def _adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    hue, sat, val = _rgb_to_hsv(x)
    return _hsv_to_rgb(torch.remainder(hue + shift.view(-1, 1, 1), 1.0), sat, val)


_COLOUR_OPS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (
    _adjust_brightness,
    _adjust_contrast,
    _adjust_saturation,
    _adjust_hue,
)


_JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")


def _check_magnitudes(magnitudes: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    """Factor ranges of ColorJitter's four magnitudes (validated)."""
    return [
        _factor_range(value, name, centre=0.0 if name == "hue" else 1.0)
        for value, name in zip(magnitudes, _JITTER_NAMES, strict=True)
    ]


def _jitter_params(
    n: int,
    generator: torch.Generator | None,
    device: torch.device,
    magnitudes: tuple[float, float, float, float],
    p: float,
) -> dict[str, Tensor]:
    """Per-sample ColorJitter draws: factors (n, 4), a random op order (n, 4), applied mask."""
    ranges = _check_magnitudes(magnitudes)
    factors = torch.stack([_uniform(n, lo, hi, generator, device) for lo, hi in ranges], dim=1)
    order = torch.argsort(_uniform(n, 0.0, 1.0, generator, device, 4), dim=1)
    jitter = _bernoulli(n, p, generator, device)
    return {"jitter_factors": factors, "jitter_order": order, "jitter": jitter}


def _apply_jitter(
    x: Tensor, params: dict[str, Tensor], magnitudes: tuple[float, float, float, float]
) -> Tensor:
    """ColorJitter with per-sample factors applied in each sample's own random order.

    At each of the 4 positions every op runs once on the samples that have it there (index
    select / copy), so the work equals one pass of each op over the jittered samples.
    """
    factors = params["jitter_factors"].to(x.dtype)
    order, jitter = params["jitter_order"], params["jitter"]
    out = x.clone()
    for position in range(4):
        for op_index, op in enumerate(_COLOUR_OPS):
            if magnitudes[op_index] <= 0:
                continue
            idx = torch.nonzero(jitter & (order[:, position] == op_index)).squeeze(1)
            if idx.numel() == 0:
                continue
            if idx.numel() == out.shape[0]:
                out = op(out, factors[:, op_index])
            else:
                out.index_copy_(0, idx, op(out.index_select(0, idx), factors[idx, op_index]))
    return out


def _where_samples(mask: Tensor, yes: Tensor, no: Tensor) -> Tensor:
    return torch.where(_per_sample(mask), yes, no)


def _on_subset(x: Tensor, mask: Tensor, op: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Replace the masked samples by ``op(x[idx], idx)``; the others are untouched."""
    idx = torch.nonzero(mask).squeeze(1)
    if idx.numel() == 0:
        return x
    if idx.numel() == x.shape[0]:
        return op(x, idx)
    return x.index_copy(0, idx, op(x.index_select(0, idx), idx))


# --------------------------------------------------------------------------- torchvision loop


def _per_sample_torchvision(transform: Callable[[Tensor], Tensor], x: Tensor, generator) -> Tensor:
    """Reference path: apply a torchvision v2 pipeline to each sample on its own.

    torchvision draws from torch's global CPU RNG; each sample runs under a forked RNG seeded
    from ``generator`` so the result is reproducible and leaves the global state untouched.
    """
    src = generator.device if generator is not None else torch.device("cpu")
    seeds = torch.randint(0, 2**62, (x.shape[0],), generator=generator, device=src).tolist()
    views = []
    with torch.random.fork_rng(devices=[]):
        for sample, seed in zip(x, seeds, strict=True):
            torch.manual_seed(seed)
            views.append(transform(sample))
    return torch.stack(views)


def _check_backend(backend: str) -> None:
    if backend not in ("vectorised", "torchvision"):
        raise ConfigError(f"backend must be 'vectorised' or 'torchvision', got {backend!r}")


def _pair(value: float | Sequence[float], name: str) -> tuple[float, float]:
    if isinstance(value, int | float):
        return float(value), float(value)
    lo, hi = (float(v) for v in value)
    if lo > hi:
        raise ConfigError(f"{name} must be (low, high) with low <= high, got {value}")
    return lo, hi


# --------------------------------------------------------------------------- augmenters


@dataclass(frozen=True)
class GaussianNoise:
    """``x + std * N(0, I)`` per sample (NMCE toys: std 0.05 spiral, 0.1 random-MLP manifolds)."""

    std: float = 0.05

    def __post_init__(self) -> None:
        if not self.std >= 0:
            raise ConfigError(f"std must be >= 0, got {self.std}")

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            raise DataError("noise augmentation needs a floating-point tensor")
        src = generator.device if generator is not None else x.device
        dtype = _work_dtype(x)
        noise = torch.randn(x.shape, generator=generator, device=src, dtype=dtype).to(x.device)
        return (x.to(dtype) + self.std * noise).to(x.dtype)


class _ImageAugmenter:
    """Shared driver: draw every sample's parameters once, then apply them chunk by chunk.

    On the CPU the batch is processed in chunks of about ``_CPU_CHUNK_BYTES`` so temporaries stay
    in cache (several times faster than whole-batch temporaries); on accelerators in one go. The
    result does not depend on the chunking: all random draws happen before it.
    """

    backend: Backend

    def _draw(self, n: int, height: int, width: int, generator, device) -> dict[str, Tensor]:
        raise NotImplementedError

    def _apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def _torchvision(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        raise NotImplementedError

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        _check_images(x)
        if self.backend == "torchvision":
            return _per_sample_torchvision(self._torchvision(x), x, generator).to(x.dtype)
        n, _, height, width = x.shape
        params = self._draw(n, height, width, generator, x.device)
        dtype = _work_dtype(x)
        if x.device.type == "cpu":
            per_sample = max(1, x[0].numel() * torch.finfo(dtype).bits // 8)
            step = max(1, _CPU_CHUNK_BYTES // per_sample)
        else:
            step = n
        views = []
        for lo in range(0, n, step):
            chunk = {key: value[lo : lo + step] for key, value in params.items()}
            views.append(self._apply(x[lo : lo + step].to(dtype), chunk).clamp(0.0, 1.0))
        out = views[0] if len(views) == 1 else torch.cat(views)
        return out.to(x.dtype)


@dataclass(frozen=True)
class GreyAugmenter(_ImageAugmenter):
    """Small grey images: random affine, blur with probability, brightness (our choice).

    ``flip_p``: horizontal flip with this probability (0 by default; drawn only when > 0, so
    the other draws are unchanged); ``degrees``: rotation ~ U(-degrees, degrees);
    ``translate``: shift ~ U(-t, t) x size per axis; ``scale``: zoom ~ U(scale);
    ``blur_p``/``blur_sigma``/``blur_kernel``: Gaussian blur; ``brightness``: factor
    ~ U(1 - b, 1 + b). ``interpolation``: ``bilinear`` (default; torchvision's RandomAffine
    defaults to nearest) or ``nearest``. Translations are continuous,
    not rounded to whole pixels as torchvision does; zero fill outside the image.
    """

    degrees: float = 10.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.85, 1.15)
    blur_p: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    blur_kernel: int = 3
    brightness: float = 0.4
    interpolation: str = "bilinear"
    flip_p: float = 0.0
    backend: Backend = "vectorised"

    def __post_init__(self) -> None:
        _check_backend(self.backend)
        if not 0 <= self.flip_p <= 1:
            raise ConfigError(f"flip_p must be a probability in [0, 1], got {self.flip_p}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0:
            raise ConfigError(f"blur_kernel must be a positive odd integer, got {self.blur_kernel}")
        if self.interpolation not in ("bilinear", "nearest"):
            raise ConfigError(f"interpolation must be bilinear or nearest: {self.interpolation!r}")
        _pair(self.scale, "scale")
        _pair(self.blur_sigma, "blur_sigma")
        _factor_range(self.brightness, "brightness")

    def _draw(self, n, height, width, generator, device) -> dict[str, Tensor]:
        t = self.translate
        params = {
            "angle": _uniform(n, -self.degrees, self.degrees, generator, device),
            "zoom": _uniform(n, *_pair(self.scale, "scale"), generator, device),
            "tx": _uniform(n, -t * width, t * width, generator, device),
            "ty": _uniform(n, -t * height, t * height, generator, device),
            "sigma": _uniform(n, *_pair(self.blur_sigma, "blur_sigma"), generator, device),
            "blur": _bernoulli(n, self.blur_p, generator, device),
            "brightness": _uniform(
                n, *_factor_range(self.brightness, "brightness"), generator, device
            ),
        }
        if self.flip_p > 0:
            params["flip"] = _bernoulli(n, self.flip_p, generator, device)
        return params

    def _apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        height, width = x.shape[-2:]
        if "flip" in params:
            x = _where_samples(params["flip"], x.flip(-1), x)
        theta = _affine_theta(
            params["angle"], params["zoom"], params["tx"], params["ty"], height, width
        )
        out = _sample(x, theta, (height, width), mode=self.interpolation)
        if self.blur_kernel > 1:
            sigma = params["sigma"]
            out = _on_subset(
                out, params["blur"], lambda v, i: _gaussian_blur(v, sigma[i], self.blur_kernel)
            )
        if self.brightness > 0:
            out = _adjust_brightness(out, params["brightness"].to(out.dtype))
        return out

    def _torchvision(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomHorizontalFlip(self.flip_p),
                v2.RandomAffine(
                    degrees=self.degrees,
                    translate=(self.translate, self.translate),
                    scale=_pair(self.scale, "scale"),
                    interpolation=v2.InterpolationMode(self.interpolation),
                ),
                v2.RandomApply(
                    [v2.GaussianBlur(self.blur_kernel, sigma=_pair(self.blur_sigma, "blur_sigma"))],
                    p=self.blur_p,
                ),
                v2.ColorJitter(brightness=self.brightness),
            ]
        )


@dataclass(frozen=True)
class SimCLRAugmenter(_ImageAugmenter):
    """SimCLR set: random resized crop, flip, colour jitter with p, grayscale with p.

    Crop area ~ U(scale) of the image, aspect ~ log-U(ratio), resized to ``size`` (default: the
    input size) by bilinear sampling (no antialiasing: shrinking below the crop size aliases);
    the flip is folded into the same grid. Boxes are continuous (torchvision rounds them to whole
    pixels) and the outermost output pixels read just beyond the box instead of replicating its
    edge. One-channel inputs skip saturation, hue and grayscale (as torchvision).
    """

    size: int | tuple[int, int] | None = None
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip_p: float = 0.5
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    backend: Backend = "vectorised"

    def __post_init__(self) -> None:
        _check_backend(self.backend)
        lo, hi = _pair(self.scale, "scale")
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        rlo, rhi = _pair(self.ratio, "ratio")
        if not 0 < rlo <= rhi:
            raise ConfigError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")
        _check_magnitudes(self._magnitudes())

    def _magnitudes(self) -> tuple[float, float, float, float]:
        return (self.brightness, self.contrast, self.saturation, self.hue)

    def _out_size(self, height: int, width: int) -> tuple[int, int]:
        if self.size is None:
            return height, width
        if isinstance(self.size, int):
            return self.size, self.size
        return int(self.size[0]), int(self.size[1])

    def _draw(self, n, height, width, generator, device) -> dict[str, Tensor]:
        scale, ratio = _pair(self.scale, "scale"), _pair(self.ratio, "ratio")
        params = {
            "boxes": _random_resized_boxes(n, height, width, scale, ratio, generator, device),
            "flip": _bernoulli(n, self.flip_p, generator, device),
        }
        params.update(_jitter_params(n, generator, device, self._magnitudes(), self.jitter_p))
        params["grayscale"] = _bernoulli(n, self.grayscale_p, generator, device)
        return params

    def _apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        height, width = x.shape[-2:]
        theta = _crop_theta(params["boxes"], params["flip"], height, width)
        out = _sample(x, theta, self._out_size(height, width), padding="border").clamp(0.0, 1.0)
        out = _apply_jitter(out, params, self._magnitudes())
        if out.shape[1] == 3:
            out = _where_samples(params["grayscale"], _grey(out).expand_as(out), out)
        return out

    def _torchvision(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomResizedCrop(
                    self._out_size(x.shape[-2], x.shape[-1]),
                    scale=self.scale,
                    ratio=self.ratio,
                    antialias=True,
                ),
                v2.RandomHorizontalFlip(self.flip_p),
                v2.RandomApply([v2.ColorJitter(*self._magnitudes())], p=self.jitter_p),
                v2.RandomGrayscale(self.grayscale_p),
            ]
        )


@dataclass(frozen=True)
class CoilAugmenter(_ImageAugmenter):
    """COIL policy (NMCE Appendix B.2): flip p 0.5, perspective 0.3 with p 0.6, jitter always.

    Colour jitter magnitudes (brightness, contrast, saturation, hue) = (0.8, 0.8, 0.8, 0.2),
    per-sample factors in a per-sample random order; perspective corners displaced inwards by
    up to ``distortion`` x half the size, bilinear, zero fill (torchvision's RandomPerspective).
    """

    flip_p: float = 0.5
    distortion: float = 0.3
    perspective_p: float = 0.6
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2
    jitter_p: float = 1.0
    backend: Backend = "vectorised"

    def __post_init__(self) -> None:
        _check_backend(self.backend)
        if not 0 <= self.distortion <= 1:
            raise ConfigError(f"distortion must be in [0, 1], got {self.distortion}")
        _check_magnitudes(self._magnitudes())

    def _magnitudes(self) -> tuple[float, float, float, float]:
        return (self.brightness, self.contrast, self.saturation, self.hue)

    def _draw(self, n, height, width, generator, device) -> dict[str, Tensor]:
        start, end = _perspective_points(n, height, width, self.distortion, generator, device)
        params = {
            "flip": _bernoulli(n, self.flip_p, generator, device),
            "start": start,
            "end": end,
            "warp": _bernoulli(n, self.perspective_p, generator, device)
            & torch.tensor(self.distortion > 0, device=device),
        }
        params.update(_jitter_params(n, generator, device, self._magnitudes(), self.jitter_p))
        return params

    def _apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        out = _where_samples(params["flip"], x.flip(-1), x)
        start, end = params["start"], params["end"]
        out = _on_subset(out, params["warp"], lambda v, i: _perspective(v, start[i], end[i]))
        return _apply_jitter(out.clamp(0.0, 1.0), params, self._magnitudes())

    def _torchvision(self, x: Tensor) -> Callable[[Tensor], Tensor]:
        from torchvision.transforms import v2

        return v2.Compose(
            [
                v2.RandomHorizontalFlip(self.flip_p),
                v2.RandomPerspective(self.distortion, p=self.perspective_p),
                v2.RandomApply([v2.ColorJitter(*self._magnitudes())], p=self.jitter_p),
            ]
        )


# --------------------------------------------------------------------------- factory


def gaussian_noise(std: float = 0.05) -> GaussianNoise:
    """Additive Gaussian noise augmenter (NMCE Sec. 3.5 and Appendix B.1)."""
    return GaussianNoise(std=std)


def grey_augmenter(**options: Any) -> GreyAugmenter:
    """Augmenter for small grey images; see :class:`GreyAugmenter` for the options."""
    return _build(GreyAugmenter, "grey", options)


def simclr_augmenter(**options: Any) -> SimCLRAugmenter:
    """SimCLR colour augmenter; see :class:`SimCLRAugmenter` for the options."""
    return _build(SimCLRAugmenter, "simclr", options)


def coil_augmenter(**options: Any) -> CoilAugmenter:
    """COIL augmenter of NMCE Appendix B.2; see :class:`CoilAugmenter` for the options."""
    return _build(CoilAugmenter, "coil", options)


AUGMENTER_KINDS: dict[str, type] = {
    "noise": GaussianNoise,
    "grey": GreyAugmenter,
    "simclr": SimCLRAugmenter,
    "coil": CoilAugmenter,
}


def _build(cls: type, kind: str, options: dict[str, Any]) -> Any:
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {unknown} for augmenter {kind!r}; allowed: {', '.join(allowed)}"
        )
    normalised = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    return cls(**normalised)


def make_augmenter(kind: str, **options: Any) -> Augmenter:
    """Augmenter of the given kind: ``noise``, ``grey``, ``simclr`` or ``coil``.

    ``options`` are the fields of the matching class (e.g. ``std`` for ``noise``); lists are
    accepted for pairs (YAML). Raises :class:`~basis_nmce.errors.ConfigError` (a ValueError) for
    an unknown kind or option.
    """
    if kind not in AUGMENTER_KINDS:
        raise ConfigError(
            f"unknown augmenter kind {kind!r}; choose one of: {', '.join(AUGMENTER_KINDS)}"
        )
    return _build(AUGMENTER_KINDS[kind], kind, options)
