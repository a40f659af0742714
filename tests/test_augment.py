"""Batched augmentations: shapes, ranges, per-sample randomness, seeding, torchvision parity."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.nmce import augment as A
from basis_nmce.nmce.augment import AUGMENTER_KINDS, gaussian_noise, make_augmenter

IMAGE_CASES = [
    ("grey", (6, 1, 28, 28)),
    ("simclr", (6, 3, 32, 32)),
    ("simclr", (6, 1, 16, 16)),
    ("coil", (6, 1, 32, 32)),
    ("coil", (6, 3, 32, 24)),
]


def images(shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- factory


def test_factory_kinds():
    assert set(AUGMENTER_KINDS) == {"noise", "grey", "simclr", "coil"}
    for kind in AUGMENTER_KINDS:
        assert callable(make_augmenter(kind))


def test_unknown_kind_lists_kinds():
    with pytest.raises(ValueError, match="noise, grey, simclr, coil"):
        make_augmenter("cutout")


def test_unknown_option_rejected():
    with pytest.raises(ValueError, match="allowed"):
        make_augmenter("noise", sigma=0.1)
    with pytest.raises(ValueError):
        make_augmenter("grey", backend="pil")
    with pytest.raises(ValueError):
        make_augmenter("coil", hue=0.7)


def test_options_and_lists_accepted():
    aug = make_augmenter("simclr", size=[24, 20], scale=[0.5, 1.0], jitter_p=0.0)
    out = aug(images((3, 3, 32, 32)), gen())
    assert out.shape == (3, 3, 24, 20)
    assert make_augmenter("noise", std=0.1).std == 0.1


# --------------------------------------------------------------------------- common properties


@pytest.mark.parametrize("kind,shape", IMAGE_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_dtype_range_kept(kind, shape, dtype):
    x = images(shape, dtype=dtype)
    out = make_augmenter(kind)(x, gen())
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.isfinite(out.float()).all()
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("kind,shape", IMAGE_CASES)
def test_identical_samples_get_different_views(kind, shape):
    x = images((1, *shape[1:])).expand(shape).contiguous()
    out = make_augmenter(kind)(x, gen(1))
    flat = out.flatten(1)
    distinct = torch.cdist(flat, flat) + torch.eye(shape[0]) * 1e9
    assert distinct.min() > 1e-3


@pytest.mark.parametrize("kind,shape", IMAGE_CASES)
def test_seeded_determinism(kind, shape):
    x = images(shape)
    aug = make_augmenter(kind)
    assert torch.equal(aug(x, gen(5)), aug(x, gen(5)))
    assert not torch.equal(aug(x, gen(5)), aug(x, gen(6)))


@pytest.mark.parametrize("kind,shape", IMAGE_CASES)
def test_generator_leaves_global_rng_alone(kind, shape):
    x = images(shape)
    state = torch.get_rng_state()
    make_augmenter(kind)(x, gen())
    make_augmenter(kind, backend="torchvision")(x, gen())
    assert torch.equal(state, torch.get_rng_state())


def test_without_generator_uses_global_rng():
    x = images((4, 3, 16, 16))
    aug = make_augmenter("simclr")
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    assert torch.equal(a, aug(x))


@pytest.mark.parametrize("kind,shape", [("grey", (40, 1, 28, 28)), ("coil", (40, 3, 32, 32))])
def test_result_does_not_depend_on_chunking(kind, shape, monkeypatch):
    x = images(shape)
    aug = make_augmenter(kind)
    whole = aug(x, gen(2))
    monkeypatch.setattr(A, "_CPU_CHUNK_BYTES", 3 * x[0].numel() * 4)  # 3 samples per chunk
    assert torch.allclose(aug(x, gen(2)), whole, atol=1e-6)


@pytest.mark.parametrize("kind", ["grey", "simclr", "coil"])
def test_torchvision_backend_runs_and_is_seeded(kind):
    shape = (4, 1 if kind == "grey" else 3, 20, 20)
    x = images(shape)
    aug = make_augmenter(kind, backend="torchvision")
    out = aug(x, gen(1))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, aug(x, gen(1)))


def test_bad_inputs_rejected():
    with pytest.raises(DataError):
        make_augmenter("grey")(torch.rand(3, 28, 28), gen())
    with pytest.raises(DataError):
        make_augmenter("coil")(torch.rand(2, 2, 8, 8), gen())
    with pytest.raises(DataError):
        make_augmenter("simclr")(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), gen())


# --------------------------------------------------------------------------- noise


def test_noise_std_and_mean():
    x = torch.full((4000, 12), 0.3)
    out = gaussian_noise(0.1)(x, gen())
    delta = out - x
    assert out.shape == x.shape and out.dtype == x.dtype
    assert delta.std().item() == pytest.approx(0.1, rel=0.02)
    assert abs(delta.mean().item()) < 0.003
    assert not torch.equal(delta[0], delta[1])


def test_noise_seeded_and_any_shape():
    aug = make_augmenter("noise", std=0.05)
    x = torch.zeros(5, 2, dtype=torch.float64)
    assert torch.equal(aug(x, gen(1)), aug(x, gen(1)))
    assert aug(x, gen(1)).dtype == torch.float64
    assert aug(torch.zeros(2, 3, 4, 4), gen()).shape == (2, 3, 4, 4)
    assert torch.equal(make_augmenter("noise", std=0.0)(x, gen()), x)
    with pytest.raises(ValueError):
        gaussian_noise(-1.0)


# --------------------------------------------------------------------------- identity settings


def test_neutral_grey_settings_are_identity():
    x = images((5, 1, 28, 28))
    aug = make_augmenter(
        "grey",
        degrees=0,
        translate=0,
        scale=(1, 1),
        blur_p=0,
        brightness=0,
        interpolation="bilinear",
    )
    assert torch.allclose(aug(x, gen()), x, atol=1e-5)


def test_neutral_coil_and_simclr_settings_are_identity():
    x = images((5, 3, 16, 16))
    coil = make_augmenter("coil", flip_p=0, perspective_p=0, jitter_p=0)
    assert torch.equal(coil(x, gen()), x)
    simclr = make_augmenter(
        "simclr", scale=(1, 1), ratio=(1, 1), flip_p=0, jitter_p=0, grayscale_p=0
    )
    assert torch.allclose(simclr(x, gen()), x, atol=1e-6)


def test_flip_only_flips():
    x = images((64, 3, 8, 8))
    out = make_augmenter("coil", flip_p=0.5, perspective_p=0, jitter_p=0)(x, gen(3))
    flipped = torch.tensor([torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)])
    same = torch.tensor([torch.equal(o, s) for o, s in zip(out, x, strict=True)])
    assert (flipped | same).all()
    assert 15 < flipped.sum() < 49


def test_grey_flip_only_flips_and_leaves_other_draws_alone():
    x = images((64, 1, 8, 8))
    neutral = dict(degrees=0, translate=0, scale=(1, 1), blur_p=0, brightness=0)
    out = make_augmenter("grey", flip_p=0.5, **neutral)(x, gen(3))
    flipped = torch.tensor(
        [torch.allclose(o, s.flip(-1), atol=1e-5) for o, s in zip(out, x, strict=True)]
    )
    same = torch.tensor([torch.allclose(o, s, atol=1e-5) for o, s in zip(out, x, strict=True)])
    assert (flipped | same).all()
    assert 15 < flipped.sum() < 49
    # flip_p 0 (the default) draws nothing extra: the views are those of before the option
    default = make_augmenter("grey")(x, gen(5))
    assert torch.equal(make_augmenter("grey", flip_p=0.0)(x, gen(5)), default)
    with pytest.raises(ConfigError, match="flip_p"):
        make_augmenter("grey", flip_p=1.5)


def test_grayscale_fraction():
    x = images((2000, 3, 4, 4))
    out = make_augmenter("simclr", jitter_p=0.0)(x, gen(4))
    grey = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert grey.float().mean().item() == pytest.approx(0.2, abs=0.03)


def test_jitter_probability():
    x = images((2000, 3, 4, 4))
    out = make_augmenter("simclr", scale=(1, 1), ratio=(1, 1), flip_p=0, grayscale_p=0)(x, gen(4))
    changed = (out - x).abs().flatten(1).amax(1) > 1e-5
    assert changed.float().mean().item() == pytest.approx(0.8, abs=0.03)


# --------------------------------------------------------------------------- torchvision parity


def test_colour_ops_match_torchvision():
    x = images((4, 3, 16, 16), seed=1)
    factors = torch.tensor([0.2, 0.9, 1.3, 1.8])
    shifts = torch.tensor([-0.2, -0.05, 0.1, 0.2])
    cases = [
        (A._adjust_brightness, TF.adjust_brightness, factors),
        (A._adjust_contrast, TF.adjust_contrast, factors),
        (A._adjust_saturation, TF.adjust_saturation, factors),
        (A._adjust_hue, TF.adjust_hue, shifts),
    ]
    for ours, theirs, values in cases:
        got = ours(x, values)
        ref = torch.stack([theirs(x[i], float(values[i])) for i in range(4)])
        assert torch.allclose(got, ref, atol=1e-5), ours.__name__
    assert torch.allclose(A._grey(x), TF.rgb_to_grayscale(x), atol=1e-6)


def test_hsv_round_trip():
    x = images((3, 3, 10, 10), seed=2)
    x[0, :, 0, 0] = 0.5  # grey pixel (zero chroma)
    x[1, :, 0, 0] = 0.0  # black
    x[2, :, 0, 0] = torch.tensor([1.0, 1.0, 0.0])  # tie between red and green
    assert torch.allclose(A._hsv_to_rgb(*A._rgb_to_hsv(x)), x, atol=1e-6)


def test_resized_crop_matches_torchvision_inside_box():
    x = images((3, 3, 32, 32), seed=3)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 17.0], [0.0, 0.0, 32.0, 32.0], [5.0, 1.0, 10.0, 30.0]])
    flip = torch.tensor([False, True, False])
    got = A._sample(x, A._crop_theta(boxes, flip, 32, 32), (24, 24), padding="border")
    for i in range(3):
        top, left, h, w = (int(v) for v in boxes[i])
        ref = TF.resized_crop(x[i], top, left, h, w, [24, 24], antialias=False)
        if flip[i]:
            ref = TF.horizontal_flip(ref)
        # the outermost output ring reads half a pixel beyond the box (continuous crop)
        assert torch.allclose(got[i, :, 1:-1, 1:-1], ref[:, 1:-1, 1:-1], atol=1e-5)
    # a crop of the whole image matches everywhere
    assert torch.allclose(
        got[1], TF.horizontal_flip(TF.resize(x[1], [24, 24], antialias=False)), atol=1e-5
    )


def test_perspective_matches_torchvision():
    x = images((3, 3, 20, 24), seed=4)
    start = torch.tensor([[0.0, 0.0], [23.0, 0.0], [23.0, 19.0], [0.0, 19.0]]).expand(3, 4, 2)
    offsets = torch.randint(0, 4, (3, 4, 2), generator=gen(0)).float()
    sign = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    end = start + sign * offsets
    got = A._perspective(x, start, end)
    for i in range(3):
        ref = TF.perspective(x[i], start[i].int().tolist(), end[i].int().tolist())
        assert torch.allclose(got[i], ref, atol=1e-5)


def test_affine_matches_torchvision():
    x = images((3, 1, 28, 28), seed=5)
    angle = torch.tensor([10.0, -25.0, 0.0])
    zoom = torch.tensor([1.2, 0.8, 1.0])
    tx, ty = torch.tensor([2.0, -3.0, 1.0]), torch.tensor([-1.0, 2.0, 4.0])
    got = A._sample(x, A._affine_theta(angle, zoom, tx, ty, 28, 28), (28, 28))
    for i in range(3):
        ref = TF.affine(
            x[i],
            float(angle[i]),
            [int(tx[i]), int(ty[i])],
            float(zoom[i]),
            [0.0, 0.0],
            interpolation=TF.InterpolationMode.BILINEAR,
        )
        assert torch.allclose(got[i], ref, atol=1e-5)


def test_blur_matches_torchvision():
    x = images((3, 3, 12, 12), seed=6)
    sigma = torch.tensor([0.3, 1.0, 2.0])
    got = A._gaussian_blur(x, sigma, 5)
    for i in range(3):
        ref = TF.gaussian_blur(x[i], [5, 5], [float(sigma[i])] * 2)
        assert torch.allclose(got[i], ref, atol=1e-6)


def test_crop_boxes_respect_scale_and_ratio():
    boxes = A._random_resized_boxes(
        5000, 32, 48, (0.08, 1.0), (0.75, 4 / 3), gen(), torch.device("cpu")
    )
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32 + 1e-4).all() and (left + w <= 48 + 1e-4).all()
    area = h * w / (32 * 48)
    assert (area >= 0.08 - 1e-5).all() and (area <= 1 + 1e-5).all()
    aspect = w / h
    assert (aspect >= 0.75 - 1e-5).all() and (aspect <= 4 / 3 + 1e-5).all()


@pytest.mark.gpu
@pytest.mark.parametrize("kind,shape", IMAGE_CASES)
def test_cuda_matches_cpu_draws(kind, shape):
    x = images(shape)
    aug = make_augmenter(kind)
    cpu = aug(x, gen(7))
    cuda = aug(x.cuda(), gen(7))  # parameters drawn on the CPU generator
    assert cuda.device.type == "cuda"
    assert torch.allclose(cuda.cpu(), cpu, atol=1e-3)
