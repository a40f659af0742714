"""Coding rates and NMCE objectives against independent numpy float64 routes."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_nmce.errors import DataError
from basis_nmce.nmce.coding_rate import (
    authors_code_eps,
    cluster_coding_rate,
    coding_rate,
    eps_from_authors_code,
    gumbel_softmax_memberships,
    nmce_loss,
    total_coding_rate_loss,
)

# --------------------------------------------------------------------------- references


def ref_rate(z: np.ndarray, eps: float) -> float:
    """R from the singular values: 1/2 sum log(1 + d/(m eps^2) s_i^2) (NMCE Eq. 6)."""
    m, d = z.shape
    s = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    return 0.5 * float(np.sum(np.log1p(d / (m * eps**2) * s**2)))


def ref_cluster_rate(z: np.ndarray, pi: np.ndarray, eps: float) -> float:
    """MCR^2 compression term, one cluster at a time, numpy float64."""
    z = np.asarray(z, dtype=np.float64)
    pi = np.asarray(pi, dtype=np.float64)
    m, d = z.shape
    total = 0.0
    for j in range(pi.shape[1]):
        tr = pi[:, j].sum()
        if tr <= 0:
            continue
        mat = np.eye(d) + d / (tr * eps**2) * (z.T * pi[:, j]) @ z
        sign, logdet = np.linalg.slogdet(mat)
        assert sign > 0
        total += tr / (2 * m) * logdet
    return total


def sphere(m: int, d: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(m, d, generator=g, dtype=dtype), dim=1)


def soft_memberships(m: int, k: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed + 100)
    return torch.softmax(2.0 * torch.randn(m, k, generator=g, dtype=dtype), dim=1)


# --------------------------------------------------------------------------- coding_rate


@pytest.mark.parametrize("m,d", [(64, 8), (8, 64), (16, 16), (1, 5), (300, 40)])
@pytest.mark.parametrize("eps", [0.1, 0.5, 2.0])
def test_rate_matches_singular_values(m, d, eps):
    z = sphere(m, d)
    assert coding_rate(z, eps).item() == pytest.approx(ref_rate(z.numpy(), eps), rel=1e-10)


def test_rate_float32_matches_float64_reference():
    z = sphere(256, 32, dtype=torch.float32)
    got = coding_rate(z, 0.1)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(ref_rate(z.double().numpy(), 0.1), rel=1e-5)


@pytest.mark.parametrize("m,d", [(5, 30), (30, 5), (12, 12)])
def test_both_gram_forms_agree(m, d):
    z = torch.randn(m, d, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    feature = coding_rate(z, 0.3, form="feature")
    sample = coding_rate(z, 0.3, form="sample")
    auto = coding_rate(z, 0.3)
    assert feature.item() == pytest.approx(sample.item(), rel=1e-11)
    assert auto.item() == pytest.approx(ref_rate(z.numpy(), 0.3), rel=1e-11)


@settings(max_examples=25, deadline=None)
@given(
    m=st.integers(1, 20),
    d=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    eps=st.floats(0.05, 3.0),
)
def test_rate_invariant_to_rotations(m, d, seed, eps):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(m, d, generator=g, dtype=torch.float64)
    q_right, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    q_left, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    base = coding_rate(z, eps).item()
    assert coding_rate(z @ q_right, eps).item() == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert coding_rate(q_left @ z, eps).item() == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_rate_nonnegative_and_zero_for_zero_matrix():
    assert coding_rate(torch.zeros(10, 4), 0.5).item() == 0.0
    assert coding_rate(torch.zeros(3, 9), 0.5).item() == 0.0
    for seed in range(5):
        assert coding_rate(sphere(20, 6, seed), 0.7).item() >= 0.0


def test_rate_monotone_in_inverse_eps():
    z = sphere(50, 10)
    rates = [coding_rate(z, eps).item() for eps in (4.0, 1.0, 0.5, 0.1, 0.01)]
    assert all(a < b for a, b in itertools.pairwise(rates))


def test_full_rank_upper_bound():
    # Unit rows, m >> d: R <= d/2 log(1 + 1/eps^2) with equality for isotropic features.
    z = sphere(4000, 4, seed=3)
    eps = 0.5
    bound = 4 / 2 * math.log1p(1 / eps**2)
    got = coding_rate(z, eps).item()
    assert got <= bound + 1e-12
    assert got == pytest.approx(bound, rel=1e-2)


def test_authors_code_eps_mapping():
    z = sphere(40, 6)
    code_eps = 0.01  # the authors' --eps; their scale is d / (m * code_eps)
    m, d = z.shape
    expected = 0.5 * torch.logdet(torch.eye(d, dtype=z.dtype) + d / (m * code_eps) * z.T @ z)
    got = coding_rate(z, eps_from_authors_code(code_eps))
    assert got.item() == pytest.approx(expected.item(), rel=1e-10)
    assert eps_from_authors_code(0.01) == pytest.approx(0.1)
    assert authors_code_eps(0.1) == pytest.approx(0.01)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), "x"])
def test_bad_eps_rejected(bad):
    with pytest.raises(ValueError):
        coding_rate(sphere(4, 3), bad)


def test_bad_shapes_rejected():
    with pytest.raises(DataError):
        coding_rate(torch.ones(3), 0.5)
    with pytest.raises(DataError):
        coding_rate(torch.ones(0, 3), 0.5)
    with pytest.raises(DataError):
        cluster_coding_rate(torch.ones(4, 3), torch.ones(5, 2), 0.5)
    with pytest.raises(DataError):
        coding_rate(torch.ones(4, 3, dtype=torch.int64), 0.5)


def test_cholesky_failure_falls_back_to_eigenvalues(monkeypatch):
    z = sphere(30, 5)
    expected = coding_rate(z, 0.4).item()
    real = torch.linalg.cholesky_ex

    def failing(a, *args, **kwargs):
        chol, info = real(a, *args, **kwargs)
        return chol, torch.ones_like(info)

    monkeypatch.setattr(torch.linalg, "cholesky_ex", failing)
    with pytest.warns(RuntimeWarning, match="eigenvalue"):
        got = coding_rate(z, 0.4)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pi = soft_memberships(30, 3)
        assert cluster_coding_rate(z, pi, 0.4).item() == pytest.approx(
            ref_cluster_rate(z.numpy(), pi.numpy(), 0.4), rel=1e-10
        )


# --------------------------------------------------------------------------- cluster rate


@pytest.mark.parametrize("m,d,k", [(60, 8, 3), (10, 20, 4), (200, 16, 10), (7, 3, 1)])
def test_cluster_rate_matches_per_cluster_loop(m, d, k):
    z = sphere(m, d, seed=m)
    pi = soft_memberships(m, k, seed=k)
    got = cluster_coding_rate(z, pi, 0.2)
    assert got.item() == pytest.approx(ref_cluster_rate(z.numpy(), pi.numpy(), 0.2), rel=1e-10)


def test_cluster_rate_chunked_equals_unchunked(monkeypatch):
    import basis_nmce.nmce.coding_rate as cr

    z, pi = sphere(50, 6), soft_memberships(50, 7)
    whole = cluster_coding_rate(z, pi, 0.3)
    monkeypatch.setattr(cr, "_CHUNK_ELEMENTS", 50 * 6 * 2)  # two clusters per chunk
    assert cluster_coding_rate(z, pi, 0.3).item() == pytest.approx(whole.item(), rel=1e-12)


def test_hard_memberships_equal_weighted_subset_rates():
    m, d, k, eps = 90, 7, 3, 0.25
    z = sphere(m, d, seed=5)
    labels = torch.arange(m) % k
    labels[:7] = 0  # unequal sizes
    pi = F.one_hot(labels, k).double()
    expected = sum(
        (labels == j).sum().item() / m * coding_rate(z[labels == j], eps).item() for j in range(k)
    )
    assert cluster_coding_rate(z, pi, eps).item() == pytest.approx(expected, rel=1e-10)


def test_single_cluster_equals_total_rate():
    z = sphere(40, 5)
    pi = torch.ones(40, 1, dtype=z.dtype)
    assert cluster_coding_rate(z, pi, 0.3).item() == pytest.approx(
        coding_rate(z, 0.3).item(), rel=1e-12
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("empty_mass", [0.0, 1e-30, 1e-12])
def test_empty_cluster_is_safe(dtype, empty_mass):
    m, k = 32, 4
    z = sphere(m, 6, dtype=dtype).requires_grad_(True)
    pi = soft_memberships(m, k, dtype=dtype)
    pi[:, 2] = empty_mass
    pi = (pi / pi.sum(dim=1, keepdim=True)).detach().requires_grad_(True)
    value = cluster_coding_rate(z, pi, 0.01)
    assert torch.isfinite(value)
    value.backward()
    assert torch.isfinite(z.grad).all()
    assert torch.isfinite(pi.grad).all()
    # the empty cluster contributes (almost) nothing
    kept = [0, 1, 3]
    ref = ref_cluster_rate(z.detach().double().numpy(), pi.detach().double().numpy()[:, kept], 0.01)
    assert value.item() == pytest.approx(ref, rel=1e-4 if dtype == torch.float32 else 1e-9)


def test_nmce_loss_with_empty_cluster_has_finite_gradient():
    m, k = 24, 3
    z1 = sphere(m, 5, seed=1).requires_grad_(True)
    z2 = sphere(m, 5, seed=2).requires_grad_(True)
    logits = torch.zeros(m, k, dtype=torch.float64)
    logits[:, 0] = -1e4  # cluster 0 empty after softmax (underflows to exactly 0)
    logits.requires_grad_(True)
    pi = torch.softmax(logits, dim=1)
    assert (pi[:, 0] == 0).all()
    loss, stats = nmce_loss(z1, z2, pi, pi, 0.1, 1.0)
    loss.backward()
    for t in (z1, z2, logits):
        assert torch.isfinite(t.grad).all()
    assert stats["cluster_sizes"][0] == 0.0


# --------------------------------------------------------------------------- precision


@pytest.mark.parametrize("half", [torch.bfloat16, torch.float16])
def test_half_inputs_under_autocast_give_float32_value(half):
    z32 = sphere(128, 16, dtype=torch.float32)
    pi32 = soft_memberships(128, 4, dtype=torch.float32)
    zh, pih = z32.to(half), pi32.to(half)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rate = coding_rate(zh, 0.1)
        rate_c = cluster_coding_rate(zh, pih, 0.1)
        loss, _ = nmce_loss(zh, zh, pih, pih, 0.1, 1.0)
        tcr, _ = total_coding_rate_loss(zh, zh, 0.1, 1.0)
    assert rate.dtype == rate_c.dtype == loss.dtype == tcr.dtype == torch.float32
    # same (rounded) input in float32: identical computation
    assert rate.item() == pytest.approx(coding_rate(zh.float(), 0.1).item(), rel=1e-6)
    assert rate_c.item() == pytest.approx(
        cluster_coding_rate(zh.float(), pih.float(), 0.1).item(), rel=1e-6
    )
    # against the unrounded float32 input: only the input rounding differs
    assert rate.item() == pytest.approx(coding_rate(z32, 0.1).item(), rel=2e-2)
    assert rate_c.item() == pytest.approx(cluster_coding_rate(z32, pi32, 0.1).item(), rel=2e-2)


def test_compute_dtype_float64_option():
    z = sphere(64, 8, dtype=torch.float32)
    got = coding_rate(z, 0.01, compute_dtype=torch.float64)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(ref_rate(z.double().numpy(), 0.01), rel=1e-12)


def test_small_eps_stays_accurate_in_float32():
    # Table B.1's COIL-100 setting: d = 200, eps 0.001 (either convention, a hard case).
    z = sphere(600, 200, dtype=torch.float32, seed=4)
    got = coding_rate(z, 0.001).item()
    assert got == pytest.approx(ref_rate(z.double().numpy(), 0.001), rel=1e-5)


# --------------------------------------------------------------------------- gradients


def test_gradcheck_rates():
    z = sphere(5, 3).requires_grad_(True)
    zw = sphere(3, 5).requires_grad_(True)
    pi = soft_memberships(5, 2).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a: coding_rate(a, 0.5), (z,))
    assert torch.autograd.gradcheck(lambda a: coding_rate(a, 0.5), (zw,))
    assert torch.autograd.gradcheck(lambda a: coding_rate(a, 0.5, form="sample"), (z,))
    assert torch.autograd.gradcheck(lambda a, p: cluster_coding_rate(a, p, 0.5), (z, pi))


def test_gradcheck_objectives():
    z1 = sphere(6, 3, seed=1).requires_grad_(True)
    z2 = sphere(6, 3, seed=2).requires_grad_(True)
    p1 = soft_memberships(6, 2, seed=1).requires_grad_(True)
    p2 = soft_memberships(6, 2, seed=2).requires_grad_(True)
    for mode in ("mean_of_views", "view_mean"):
        assert torch.autograd.gradcheck(
            lambda a, b, mode=mode: total_coding_rate_loss(a, b, 0.5, 3.0, mode=mode)[0], (z1, z2)
        )
    assert torch.autograd.gradcheck(
        lambda a, b, p, q: nmce_loss(a, b, p, q, 0.5, 3.0)[0], (z1, z2, p1, p2)
    )


def test_gradients_finite_at_training_scale():
    z = sphere(512, 32, dtype=torch.float32).requires_grad_(True)
    pi = soft_memberships(512, 10, dtype=torch.float32).requires_grad_(True)
    loss, _ = nmce_loss(z, z, pi, pi, 0.01, 50.0)
    loss.backward()
    assert torch.isfinite(z.grad).all() and torch.isfinite(pi.grad).all()
    assert z.grad.abs().sum() > 0 and pi.grad.abs().sum() > 0


# --------------------------------------------------------------------------- objectives


def test_total_coding_rate_loss_modes():
    z1, z2 = sphere(50, 6, seed=1), sphere(50, 6, seed=2)
    eps, lam = 0.2, 7.0
    cos = float(np.mean(np.sum(z1.numpy() * z2.numpy(), axis=1)))
    loss, stats = total_coding_rate_loss(z1, z2, eps, lam)
    rate = 0.5 * (ref_rate(z1.numpy(), eps) + ref_rate(z2.numpy(), eps))
    assert loss.item() == pytest.approx(-rate - lam * cos, rel=1e-10)
    assert stats["R"] == pytest.approx(rate, rel=1e-10)
    assert stats["similarity"] == pytest.approx(cos, rel=1e-10)
    assert stats["loss"] == pytest.approx(loss.item())

    loss_vm, stats_vm = total_coding_rate_loss(z1, z2, eps, lam, mode="view_mean")
    mean = F.normalize(z1 + z2, dim=1).numpy()
    assert stats_vm["R"] == pytest.approx(ref_rate(mean, eps), rel=1e-10)
    assert loss_vm.item() == pytest.approx(-ref_rate(mean, eps) - lam * cos, rel=1e-10)
    with pytest.raises(ValueError, match="mode"):
        total_coding_rate_loss(z1, z2, eps, lam, mode="nope")


def test_identical_views_have_similarity_one():
    z = sphere(20, 4)
    _, stats = total_coding_rate_loss(z, z, 0.5, 1.0)
    assert stats["similarity"] == pytest.approx(1.0)


def test_nmce_loss_composition_and_stats():
    m, d, k, eps, lam = 80, 6, 4, 0.3, 5.0
    z1, z2 = sphere(m, d, seed=1), sphere(m, d, seed=2)
    p1, p2 = soft_memberships(m, k, seed=1), soft_memberships(m, k, seed=2)
    loss, stats = nmce_loss(z1, z2, p1, p2, eps, lam)
    zbar = F.normalize((z1 + z2) / 2, dim=1).numpy()
    pbar = ((p1 + p2) / 2).numpy()
    cos = float(np.mean(np.sum(z1.numpy() * z2.numpy(), axis=1)))
    rate, rate_c = ref_rate(zbar, eps), ref_cluster_rate(zbar, pbar, eps)
    assert loss.item() == pytest.approx(rate_c - rate - lam * cos, rel=1e-10)
    assert stats["R"] == pytest.approx(rate, rel=1e-10)
    assert stats["Rc"] == pytest.approx(rate_c, rel=1e-10)
    assert stats["delta_R"] == pytest.approx(rate - rate_c, rel=1e-9)
    assert stats["similarity"] == pytest.approx(cos, rel=1e-10)
    assert stats["cluster_sizes"] == pytest.approx(list(pbar.sum(axis=0)), rel=1e-12)
    assert sum(stats["cluster_sizes"]) == pytest.approx(m)
    marginal = pbar.mean(axis=0)
    assert stats["marginal_entropy"] == pytest.approx(-np.sum(marginal * np.log(marginal)))
    assert all(isinstance(v, float) for k_, v in stats.items() if k_ != "cluster_sizes")


def test_uniform_memberships_have_maximal_marginal_entropy():
    z = sphere(30, 5)
    pi = torch.full((30, 5), 0.2, dtype=z.dtype)
    _, stats = nmce_loss(z, z, pi, pi, 0.5, 1.0)
    assert stats["marginal_entropy"] == pytest.approx(math.log(5))


def test_rate_reduction_nonnegative():
    # Concavity of logdet: R(Z) >= R_c(Z, Pi) for memberships summing to one.
    for seed in range(5):
        z = sphere(40, 6, seed=seed)
        pi = soft_memberships(40, 3, seed=seed)
        assert coding_rate(z, 0.2).item() >= cluster_coding_rate(z, pi, 0.2).item() - 1e-12


# --------------------------------------------------------------------------- gumbel-softmax


def test_gumbel_rows_sum_to_one_and_are_seeded():
    logits = torch.randn(50, 6, generator=torch.Generator().manual_seed(0))
    a = gumbel_softmax_memberships(logits, 1.0, generator=torch.Generator().manual_seed(3))
    b = gumbel_softmax_memberships(logits, 1.0, generator=torch.Generator().manual_seed(3))
    c = gumbel_softmax_memberships(logits, 1.0, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.sum(dim=1), torch.ones(50))
    assert (a >= 0).all()
    assert a.dtype == logits.dtype


def test_gumbel_matches_formula():
    logits = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tau = 0.2
    got = gumbel_softmax_memberships(logits, tau, generator=torch.Generator().manual_seed(9))
    e = torch.empty(7, 3, dtype=torch.float64).exponential_(
        generator=torch.Generator().manual_seed(9)
    )
    expected = torch.softmax((torch.log_softmax(logits, dim=1) - torch.log(e)) / tau, dim=1)
    assert torch.allclose(got, expected, atol=1e-12)


def test_gumbel_max_frequencies_follow_softmax():
    probs = torch.tensor([0.6, 0.3, 0.1])
    logits = torch.log(probs).expand(20000, 3)
    hard = gumbel_softmax_memberships(
        logits, 1.0, hard=True, generator=torch.Generator().manual_seed(0)
    )
    freq = hard.mean(dim=0)
    assert torch.allclose(freq, probs, atol=0.015)
    assert set(hard.unique().tolist()) <= {0.0, 1.0}


def test_gumbel_hard_straight_through_gradient():
    logits = torch.randn(10, 4, requires_grad=True)
    gen = torch.Generator().manual_seed(1)
    hard = gumbel_softmax_memberships(logits, 0.5, hard=True, generator=gen)
    assert torch.allclose(hard.sum(dim=1), torch.ones(10))
    (hard * torch.arange(4.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_gumbel_low_temperature_is_nearly_one_hot():
    logits = torch.randn(100, 5, generator=torch.Generator().manual_seed(2))
    soft = gumbel_softmax_memberships(logits, 0.01, generator=torch.Generator().manual_seed(0))
    assert (soft.max(dim=1).values > 0.99).float().mean() > 0.95


def test_gumbel_rejects_bad_tau():
    with pytest.raises(ValueError):
        gumbel_softmax_memberships(torch.zeros(2, 2), 0.0)


# --------------------------------------------------------------------------- mcr2 package


def test_against_mcr2_package():
    """Cross-check with the unofficial ``mcr2`` package (test-only: pip install --no-deps mcr2).

    Its second moments divide by max(tr(Pi_j), 1), so clusters here carry mass > 1.
    """
    mcr2_rate = pytest.importorskip("mcr2.primitives.coding_rate")
    z = sphere(64, 8, dtype=torch.float32)
    pi = soft_memberships(64, 3, dtype=torch.float32)
    assert (pi.sum(dim=0) > 1).all()
    for eps in (0.1, 0.5):
        assert coding_rate(z, eps).item() == pytest.approx(mcr2_rate.R(z, eps).item(), rel=1e-4)
        assert cluster_coding_rate(z, pi, eps).item() == pytest.approx(
            mcr2_rate.Rc(z, pi, eps).item(), rel=1e-4
        )
        loss, _ = nmce_loss(z, z, pi, pi, eps, 0.0)
        assert -loss.item() == pytest.approx(
            mcr2_rate.DeltaR(z, pi, eps).item(), rel=1e-3, abs=1e-4
        )
