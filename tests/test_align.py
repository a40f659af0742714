"""Property tests of the anchor alignment (BASiS Eq. 12-14, RANSAC of Sec. 7.3.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_nmce.errors import DataError
from basis_nmce.spectral.align import AlignmentResult, apply_affine, fit_affine, ransac_affine

FAST = settings(max_examples=25, deadline=None)
seeds = st.integers(0, 2**32 - 1)
dims = st.integers(2, 12)


def random_affine(rng: np.random.Generator, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A well-conditioned A (singular values in [0.5, 2]) and any b in [-10, 10]^K."""
    q1, _ = np.linalg.qr(rng.normal(size=(k, k)))
    q2, _ = np.linalg.qr(rng.normal(size=(k, k)))
    a = q1 @ np.diag(rng.uniform(0.5, 2.0, size=k)) @ q2
    b = rng.uniform(-10, 10, size=k)
    return torch.from_numpy(a), torch.from_numpy(b)


def as_T(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.cat([a, b[:, None]], dim=1)


def anchors(rng: np.random.Generator, l: int, k: int, a, b) -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.from_numpy(rng.normal(size=(l, k)))
    return src, src @ a.T + b


def corrupt(rng: np.random.Generator, dst: torch.Tensor, frac: float = 0.3):
    """Add offsets of norm in [1, 5] (ten times the tolerance or more) to a fraction of rows."""
    l, k = dst.shape
    bad = rng.choice(l, size=round(frac * l), replace=False)
    direction = rng.normal(size=(len(bad), k))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    out = dst.clone()
    out[bad] += torch.from_numpy(direction * rng.uniform(1, 5, size=(len(bad), 1)))
    clean = torch.ones(l, dtype=torch.bool)
    clean[bad] = False
    return out, clean


def hypotheses_needed(l: int, n_clean: int, size: int, fail: float = 1e-7) -> int:
    """Hypotheses so that no all-clean subset is drawn with probability below ``fail``."""
    p = math.prod((n_clean - i) / (l - i) for i in range(size))
    return math.ceil(math.log(fail) / math.log1p(-p))


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- exact recovery
@FAST
@given(seed=seeds, k=dims, extra=st.integers(0, 60))
def test_noiseless_map_is_recovered_exactly(seed, k, extra):
    rng = np.random.default_rng(seed)
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, k + 1 + extra, k, a, b)
    truth = as_T(a, b)
    torch.testing.assert_close(fit_affine(src, dst), truth, atol=1e-6, rtol=0)
    res = ransac_affine(src, dst, generator=gen(seed))
    assert isinstance(res, AlignmentResult)
    torch.testing.assert_close(res.transform, truth, atol=1e-6, rtol=0)
    assert bool(res.inliers.all()) and res.inlier_ratio == 1.0 and not res.fallback
    assert res.residual < 1e-8 and math.isfinite(res.condition_number)
    torch.testing.assert_close(apply_affine(res.transform, src), dst, atol=1e-6, rtol=0)


@FAST
@given(seed=seeds, k=dims, l_per_dim=st.integers(5, 10))
def test_ransac_rejects_30_percent_outliers_where_least_squares_fails(seed, k, l_per_dim):
    rng = np.random.default_rng(seed)
    a, b = random_affine(rng, k)
    l = l_per_dim * (k + 1)
    src, dst = anchors(rng, l, k, a, b)
    dst, clean = corrupt(rng, dst, 0.3)
    truth = as_T(a, b)
    # minimal samples: with the paper's 20 per hypothesis an all-clean draw at 30 % outliers
    # has probability ~0.0006, so 100 hypotheses would rarely find one
    n_hyp = hypotheses_needed(l, int(clean.sum()), k + 1)
    res = ransac_affine(
        src, dst, n_hypotheses=n_hyp, sample_size=k + 1, min_inliers=k + 1, generator=gen(seed)
    )
    err = (apply_affine(res.transform, src[clean]) - apply_affine(truth, src[clean])).abs().max()
    assert float(err) < 1e-4
    assert torch.equal(res.inliers, clean)
    assert res.inlier_ratio == pytest.approx(float(clean.float().mean()))
    assert not res.fallback
    plain = fit_affine(src, dst)
    err_ls = (apply_affine(plain, src[clean]) - apply_affine(truth, src[clean])).abs().max()
    assert float(err_ls) > 1e-2


def test_float32_realistic_scale():
    rng = np.random.default_rng(7)
    k, l = 10, 250
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, l, k, a, b)
    src32, dst32 = src.float(), dst.float()
    res = ransac_affine(src32, dst32, generator=gen(0))  # paper settings: 100 x 20, tol 0.1
    assert res.transform.dtype == torch.float32 and res.transform.shape == (k, k + 1)
    torch.testing.assert_close(res.transform.double(), as_T(a, b), atol=1e-4, rtol=0)
    assert bool(res.inliers.all()) and not res.fallback
    t = fit_affine(src32, dst32)
    assert t.dtype == torch.float32
    torch.testing.assert_close(t.double(), as_T(a, b), atol=1e-4, rtol=0)


# ----------------------------------------------------------------------------- invariances
@FAST
@given(seed=seeds, k=dims, perm_seed=seeds, noise=st.sampled_from([0.0, 0.01, 0.05]))
def test_result_does_not_depend_on_anchor_order(seed, k, perm_seed, noise):
    rng = np.random.default_rng(seed)
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, 6 * (k + 1), k, a, b)
    dst = dst + noise * torch.from_numpy(rng.normal(size=dst.shape))
    dst, _ = corrupt(rng, dst, 0.2)
    perm = torch.from_numpy(np.random.default_rng(perm_seed).permutation(len(src)))
    kw = {"n_hypotheses": 200, "sample_size": k + 1}
    r1 = ransac_affine(src, dst, generator=gen(seed), **kw)
    r2 = ransac_affine(src[perm], dst[perm], generator=gen(seed), **kw)
    torch.testing.assert_close(r2.transform, r1.transform, atol=1e-10, rtol=0)
    assert torch.equal(r2.inliers, r1.inliers[perm])
    assert r2.residual == pytest.approx(r1.residual, rel=1e-9, abs=1e-12)
    assert r2.inlier_ratio == r1.inlier_ratio


def test_same_seed_same_result():
    rng = np.random.default_rng(3)
    a, b = random_affine(rng, 5)
    src, dst = anchors(rng, 80, 5, a, b)
    dst, _ = corrupt(rng, dst + 0.03 * torch.from_numpy(rng.normal(size=dst.shape)), 0.3)
    r1 = ransac_affine(src, dst, generator=gen(11))
    r2 = ransac_affine(src, dst, generator=gen(11))
    assert torch.equal(r1.transform, r2.transform) and torch.equal(r1.inliers, r2.inliers)


@FAST
@given(seed=seeds, k=dims, batch=st.integers(1, 4), weighted=st.booleans())
def test_batched_fit_equals_per_item_fits(seed, k, batch, weighted):
    rng = np.random.default_rng(seed)
    l = k + 1 + int(rng.integers(0, 30))
    src = torch.from_numpy(rng.normal(size=(batch, 2, l, k)))
    dst = torch.from_numpy(rng.normal(size=(batch, 2, l, k)))
    w = torch.from_numpy(rng.uniform(0.5, 2.0, size=(batch, 2, l))) if weighted else None
    t = fit_affine(src, dst, w)
    assert t.shape == (batch, 2, k, k + 1)
    for i in range(batch):
        for j in range(2):
            single = fit_affine(src[i, j], dst[i, j], None if w is None else w[i, j])
            torch.testing.assert_close(t[i, j], single, atol=1e-10, rtol=0)


def test_weights_as_mask_fit_the_subset():
    rng = np.random.default_rng(5)
    src = torch.from_numpy(rng.normal(size=(30, 3)))
    dst = torch.from_numpy(rng.normal(size=(30, 3)))
    mask = torch.zeros(30)
    mask[:12] = 1
    torch.testing.assert_close(fit_affine(src, dst, mask), fit_affine(src[:12], dst[:12]))


# ----------------------------------------------------------------------------- degeneracies
def test_degenerate_hypotheses_never_win():
    """Most subsets repeat one anchor: rank deficient, scored -1, no NaN leaks out."""
    rng = np.random.default_rng(2)
    k = 3
    a, b = random_affine(rng, k)
    src = torch.from_numpy(rng.normal(size=(40, k)))
    src[10:] = src[0]  # 30 copies of one point: subsets of 4 often have < 4 distinct points
    dst = src @ a.T + b
    res = ransac_affine(src, dst, n_hypotheses=100, sample_size=k + 1, generator=gen(0))
    assert 0 < res.n_valid_hypotheses < 100
    assert bool(torch.isfinite(res.transform).all())
    torch.testing.assert_close(res.transform, as_T(a, b), atol=1e-6, rtol=0)


def test_all_anchors_degenerate_is_flagged_not_nan():
    src = torch.zeros(30, 2, dtype=torch.float64)
    src[:, 0] = torch.linspace(-1, 1, 30)  # every anchor on a line: [src, 1] has rank 2 < 3
    dst = torch.randn(30, 2, dtype=torch.float64, generator=gen(0))
    res = ransac_affine(src, dst, generator=gen(0))
    assert res.n_valid_hypotheses == 0 and res.fallback
    assert res.condition_number > 1e10


def test_fallback_to_all_anchors_when_consensus_too_small():
    rng = np.random.default_rng(4)
    src = torch.from_numpy(rng.normal(size=(100, 2)))
    dst = 10 * torch.from_numpy(rng.normal(size=(100, 2)))  # no map explains 20 anchors to 0.1
    res = ransac_affine(src, dst, generator=gen(0))
    assert res.fallback and res.inliers.sum() < 3
    torch.testing.assert_close(res.transform, fit_affine(src, dst))
    assert res.residual > 1.0


def test_sample_size_is_raised_to_minimal_and_clamped_to_l():
    rng = np.random.default_rng(6)
    k = 25  # default sample_size 20 < K + 1: raised to 26
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, 40, k, a, b)
    res = ransac_affine(src, dst, n_hypotheses=10, generator=gen(0))
    torch.testing.assert_close(res.transform, as_T(a, b), atol=1e-6, rtol=0)
    small_src, small_dst = src[:27], dst[:27]  # sample_size 100 > l: clamped
    res = ransac_affine(small_src, small_dst, sample_size=100, generator=gen(0))
    torch.testing.assert_close(res.transform, as_T(a, b), atol=1e-6, rtol=0)


def test_refit_needs_min_inliers_else_all_anchors():
    """A consensus of fewer than ``min_inliers`` (default 4 (K + 1)) is not refitted on."""
    rng = np.random.default_rng(12)
    k, l = 3, 60
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, l, k, a, b)
    dst, clean = corrupt(rng, dst, 0.8)  # 12 clean anchors: 3 (K + 1), below 4 (K + 1)
    kw = {"n_hypotheses": 3000, "sample_size": k + 1, "generator": gen(1)}
    res = ransac_affine(src, dst, **kw)
    assert res.fallback and res.inlier_ratio == pytest.approx(12 / 60)
    torch.testing.assert_close(res.transform, fit_affine(src, dst))
    res = ransac_affine(src, dst, min_inliers=12, **kw)
    assert not res.fallback and torch.equal(res.inliers, clean)
    torch.testing.assert_close(res.transform, as_T(a, b), atol=1e-6, rtol=0)


@FAST
@given(seed=seeds, k=dims, scale=st.sampled_from([1e-3, 1.0, 30.0]))
def test_relative_tolerance_does_not_depend_on_the_coordinates_scale(seed, k, scale):
    """Scaling both embeddings by c scales the map's translation and nothing else."""
    rng = np.random.default_rng(seed)
    a, b = random_affine(rng, k)
    src, dst = anchors(rng, 8 * (k + 1), k, a, b)
    dst = dst + 0.05 * torch.from_numpy(rng.normal(size=dst.shape))
    dst, _ = corrupt(rng, dst, 0.2)
    kw = {"tolerance": 0.1, "relative": True, "sample_size": k + 1, "n_hypotheses": 200}
    r1 = ransac_affine(src, dst, generator=gen(seed), **kw)
    r2 = ransac_affine(src * scale, dst * scale, generator=gen(seed), **kw)
    assert torch.equal(r1.inliers, r2.inliers)
    assert r2.tolerance == pytest.approx(r1.tolerance * scale, rel=1e-9)
    assert r1.tolerance == pytest.approx(
        0.1 * float((dst - dst.mean(0)).norm(dim=1).square().mean().sqrt())
    )
    torch.testing.assert_close(r2.transform[:, :-1], r1.transform[:, :-1], atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(
        r2.transform[:, -1], scale * r1.transform[:, -1], atol=1e-8 * scale, rtol=1e-8
    )


def trivial_anchors(rng, l: int, k: int, spread: float):
    """Column 0 nearly constant (1 +- spread, like sqrt(m) D^1/2 1 / ||D^1/2 1||), the rest
    N(0, 1); the map: a positive scale on column 0, an affine map of the rest."""
    src = torch.from_numpy(rng.normal(size=(l, k)))
    src[:, 0] = 1.0 + spread * src[:, 0]
    a, b = random_affine(rng, k - 1)
    c = float(rng.uniform(0.5, 2.0))
    T = torch.zeros(k, k + 1, dtype=torch.float64)
    T[0, 0] = c
    T[1:, 1:-1], T[1:, -1] = a, b
    return src, T


@FAST
@given(seed=seeds, k=st.integers(2, 11), spread=st.sampled_from([1e-3, 0.05, 0.3]))
def test_trivial_first_is_well_posed_and_recovers_its_map(seed, k, spread):
    rng = np.random.default_rng(seed)
    src, T = trivial_anchors(rng, 10 * (k + 1), k, spread)
    dst = apply_affine(T, src)
    res = ransac_affine(src, dst, trivial_first=True, generator=gen(seed))
    torch.testing.assert_close(res.transform, T, atol=1e-8, rtol=0)
    torch.testing.assert_close(fit_affine(src, dst, trivial_first=True), T, atol=1e-8, rtol=0)
    # the affine design without the trivial column stays well conditioned however flat the
    # trivial column is; with it, the condition grows like 1 / spread
    assert res.condition_number < 10
    x_full = torch.cat([src, torch.ones(len(src), 1, dtype=src.dtype)], dim=1)
    s = torch.linalg.svdvals(x_full)
    assert float(s.max() / s.min()) > 0.2 / spread


def test_trivial_first_with_one_component_is_a_scale():
    rng = np.random.default_rng(9)
    src = 1.0 + 0.01 * torch.from_numpy(rng.normal(size=(40, 1)))
    res = ransac_affine(src, 3.0 * src, trivial_first=True, generator=gen(0))
    torch.testing.assert_close(res.transform, torch.tensor([[3.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("trivial_first", [False, True])
def test_heldout_error_is_the_leave_one_out_error(trivial_first):
    """Independent route: refit without each anchor and measure its error."""
    rng = np.random.default_rng(10)
    k, l = 4, 40
    src, T = trivial_anchors(rng, l, k, 0.05)
    dst = apply_affine(T, src) + 0.1 * torch.from_numpy(rng.normal(size=(l, k)))
    dst[:5] += 3.0  # five outliers, outside the fit set
    res = ransac_affine(src, dst, trivial_first=trivial_first, tolerance=0.5, generator=gen(0))
    assert not res.fallback and not bool(res.inliers[:5].any())
    errs = []
    for i in range(l):
        keep = res.inliers.clone()
        keep[i] = False
        t_i = fit_affine(src[keep], dst[keep], trivial_first=trivial_first)
        errs.append(float(torch.linalg.vector_norm(apply_affine(t_i, src[i : i + 1]) - dst[i])))
    assert res.heldout_error == pytest.approx(float(np.median(errs)), rel=1e-9)


# ----------------------------------------------------------------------------- errors
@given(k=dims, short=st.integers(1, 12))
@settings(max_examples=10, deadline=None)
def test_too_few_anchors_is_a_clear_error(k, short):
    l = max(k + 1 - short, 1)
    src, dst = torch.randn(l, k), torch.randn(l, k)
    msg = f"need at least K\\+1 = {k + 1} anchors for a {k}-dimensional affine map, got {l}"
    for call in (fit_affine, ransac_affine):
        with pytest.raises(ValueError, match=msg) as info:
            call(src, dst)
        assert "anchors.per_cluster" in str(info.value) and "n_components" in str(info.value)


def test_invalid_inputs_name_the_argument():
    src, dst = torch.randn(30, 3), torch.randn(30, 3)
    with pytest.raises(DataError, match="same shape"):
        ransac_affine(src, dst[:, :2])
    bad = src.clone()
    bad[4, 1] = math.nan
    with pytest.raises(DataError, match=r"^src contains NaN"):
        ransac_affine(bad, dst)
    with pytest.raises(DataError, match=r"^dst contains NaN"):
        fit_affine(src, bad)
    with pytest.raises(DataError, match="weights"):
        fit_affine(src, dst, -torch.ones(30))
    with pytest.raises(DataError, match="columns"):
        apply_affine(torch.randn(3, 3), src)
    with pytest.raises(ValueError, match="n_hypotheses"):
        ransac_affine(src, dst, n_hypotheses=0)
    with pytest.raises(ValueError, match="tolerance"):
        ransac_affine(src, dst, tolerance=-1.0)


@pytest.mark.gpu
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    a, b = random_affine(rng, 10)
    src, dst = anchors(rng, 250, 10, a, b)
    dst, clean = corrupt(rng, dst, 0.1)
    cpu = ransac_affine(src.float(), dst.float(), sample_size=11, generator=gen(0))
    gpu = ransac_affine(src.float().cuda(), dst.float().cuda(), sample_size=11, generator=gen(0))
    assert gpu.transform.device.type == "cuda" and gpu.transform.dtype == torch.float32
    torch.testing.assert_close(gpu.transform.cpu(), cpu.transform, atol=1e-5, rtol=0)
    assert torch.equal(gpu.inliers.cpu(), cpu.inliers) and torch.equal(cpu.inliers, clean)
