"""Cost of the ELU activation on the CPU: ``torch.nn.ELU`` against ``basis_nmce.models.ELU``.

PyTorch's CPU ELU kernel computes ``expm1``, which is not vectorised; ``models.ELU`` computes
``relu(x) + exp(min(x, 0)) - 1`` (same function to float32 rounding). Prints the median time
of the activation alone (forward, forward + backward) on a 4096 x 128 tensor, the size of the
double spiral's two views at batch 2048 through a width-128 layer, and of one whole NMCE step
(joint objective, MLP 128 x 5, batch 2048, two views) with each activation, plus the largest
absolute difference of the two activations' values and gradients.

    .venv/bin/python benchmarks/elu.py [--threads 2] [--repeats 100] [--steps 60]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from basis_nmce.data.toys import generate
from basis_nmce.models import ELU
from basis_nmce.nmce.augment import make_augmenter
from basis_nmce.nmce.networks import build_network
from basis_nmce.nmce.train import TrainConfig, train_joint


def paired_median_ms(
    a: Callable[[], object], b: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median milliseconds of ``a`` and of ``b``, timed alternately (drift hits both alike)."""
    a(), b()  # warm-up
    ta, tb = [], []
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(ta), 1000 * statistics.median(tb)


def step_ms(activation: type[nn.Module], x: torch.Tensor, steps: int) -> float:
    """Median milliseconds per step of ``train_joint`` (one step per call) with ``activation``."""
    model = build_network("mlp", (2,), 6, 2, seed=0, width=128, depth=5)
    for i, layer in enumerate(model.backbone):
        if isinstance(layer, ELU | nn.ELU):
            model.backbone[i] = activation()
    aug = make_augmenter("noise", std=0.2)
    times = []
    for i in range(steps + 5):
        cfg = TrainConfig(steps=1, batch_size=2048, lr=1e-3, eps=0.1, lam=4000.0, tau=0.2, seed=i)
        t0 = time.perf_counter()
        train_joint(model, x, aug, cfg)
        if i >= 5:  # warm-up
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--steps", type=int, default=60)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(4096, 128, generator=g) * 3
    upstream = torch.randn(4096, 128, generator=g)
    ours, torchs = ELU(), nn.ELU()
    a_grad = a.clone().requires_grad_()

    def fwd(act: nn.Module) -> Callable[[], object]:
        return lambda: act(a)

    def fwd_bwd(act: nn.Module) -> Callable[[], None]:
        def run() -> None:
            a_grad.grad = None
            act(a_grad).backward(upstream)

        return run

    rows = [
        ("forward", *paired_median_ms(fwd(torchs), fwd(ours), args.repeats)),
        ("forward + backward", *paired_median_ms(fwd_bwd(torchs), fwd_bwd(ours), args.repeats)),
    ]
    x64 = torch.randn(10_000, generator=g, dtype=torch.float64) * 5
    x_t, x_o = x64.float().requires_grad_(), x64.float().requires_grad_()
    y_t, y_o = nn.functional.elu(x_t), ours(x_o)
    value_diff = float((y_t - y_o).abs().max())
    (gt,) = torch.autograd.grad(y_t.sum(), x_t)
    (go,) = torch.autograd.grad(y_o.sum(), x_o)
    grad_diff = float((gt - go).abs().max())

    x, _ = generate("double_spiral", {"n_samples": 200_000, "noise": 0.1}, 0)
    xt = torch.from_numpy(x)
    rows.append(
        ("NMCE step (batch 2048)", step_ms(nn.ELU, xt, args.steps), step_ms(ELU, xt, args.steps))
    )

    print(
        f"torch {torch.__version__}, {args.threads} threads, medians of {args.repeats} calls "
        f"({args.steps} steps for the NMCE step)"
    )
    print(f"{'what':26} {'nn.ELU ms':>10} {'models.ELU ms':>14} {'ratio':>7}")
    for name, t_torch, t_ours in rows:
        print(f"{name:26} {t_torch:10.2f} {t_ours:14.2f} {t_torch / t_ours:7.2f}")
    print(f"max |difference|: values {value_diff:.2e}, gradients {grad_diff:.2e}")


if __name__ == "__main__":
    main()
