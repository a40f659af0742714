"""Batched RANSAC (``basis_nmce.spectral.align.ransac_affine``) against a Python loop over hypotheses.

Paper setting (Sec. 7.3.3): l = 250 anchors, K = 10, 100 hypotheses of 20 anchors, tolerance
0.1. The loop version solves the *same* hypotheses (same canonical anchor order and subsets)
one ``torch.linalg.lstsq`` call at a time; both must return the same map.

    .venv/bin/python benchmarks/ransac.py [--runs 50] [--device cpu]
"""

from __future__ import annotations

import os

os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from basis_nmce.spectral.align import (
    _canonical_order,
    _draw_subsets,
    fit_affine,
    ransac_affine,
)

torch.set_num_threads(2)


def ransac_loop(
    src: torch.Tensor,
    dst: torch.Tensor,
    *,
    n_hypotheses: int = 100,
    sample_size: int = 20,
    tolerance: float = 0.1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Reference implementation: one least-squares solve and one scoring per hypothesis."""
    l, k = src.shape
    size = min(max(sample_size, k + 1), l)
    perm = _canonical_order(src.double(), dst.double())
    s64, d64 = src.double()[perm], dst.double()[perm]
    x_all = torch.cat([s64, torch.ones(l, 1, dtype=torch.float64, device=src.device)], dim=1)
    idx = _draw_subsets(n_hypotheses, l, size, generator, src.device)
    best_key, best_mask = (-2, 0.0), None
    for h in range(n_hypotheses):
        sol = torch.linalg.lstsq(x_all[idx[h]], d64[idx[h]]).solution
        err = torch.linalg.vector_norm(x_all @ sol - d64, dim=1)
        mask = err < tolerance
        n = int(mask.sum())
        rms = float(err[mask].square().mean().sqrt()) if n else float("inf")
        if (n, -rms) > best_key:
            best_key, best_mask = (n, -rms), mask
    assert best_mask is not None
    fit = torch.ones_like(best_mask) if best_key[0] < k + 1 else best_mask
    return fit_affine(s64[fit], d64[fit]).to(src.dtype)


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--anchors", type=int, default=250)
    ap.add_argument("--dim", type=int, default=10)
    ap.add_argument("--hypotheses", type=int, default=100)
    ap.add_argument("--sample", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    g = torch.Generator().manual_seed(0)
    l, k = args.anchors, args.dim
    src = torch.randn(l, k, generator=g)
    a = torch.randn(k, k, generator=g) / k**0.5 + torch.eye(k)
    dst = src @ a.T + torch.randn(k, generator=g) + 0.02 * torch.randn(l, k, generator=g)
    dst[: l // 10] += 3.0  # 10 % outliers
    src, dst = src.to(args.device), dst.to(args.device)
    kw = {"n_hypotheses": args.hypotheses, "sample_size": args.sample}

    t_batched = ransac_affine(src, dst, generator=torch.Generator().manual_seed(1), **kw)
    t_loop = ransac_loop(src, dst, generator=torch.Generator().manual_seed(1), **kw)
    diff = float((t_batched.transform - t_loop).abs().max())
    assert diff < 1e-5, f"batched and loop RANSAC disagree by {diff:.2e}"

    def batched() -> object:
        return ransac_affine(src, dst, generator=torch.Generator().manual_seed(1), **kw)

    def loop() -> object:
        return ransac_loop(src, dst, generator=torch.Generator().manual_seed(1), **kw)

    ms_b, ms_l = median_ms(batched, args.runs), median_ms(loop, args.runs)
    print(
        f"l={l} K={k} hypotheses={args.hypotheses}x{args.sample} device={args.device} "
        f"threads={torch.get_num_threads()} median of {args.runs} runs; max |dT| = {diff:.1e}"
    )
    print(f"{'version':<14}{'median ms':>12}{'ratio':>10}")
    print(f"{'batched':<14}{ms_b:>12.3f}{1.0:>10.2f}")
    print(f"{'python loop':<14}{ms_l:>12.3f}{ms_l / ms_b:>10.2f}")


if __name__ == "__main__":
    main()
