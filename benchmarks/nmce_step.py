"""One NMCE training step on the CPU: eager against ``torch.compile``, 1 and 2 threads.

The step is the double spiral's (``configs/toy.yaml``, ``benchmarks/nmce_toys.py``): MLP 128 x 5
with ELU, d_z 6, two clusters, batch 2048 (two augmented views of 2048 points through the
network as one batch of 4096), the NMCE objective (Eq. 4, Gumbel-softmax memberships, tau 0.2,
lambda 4000), Adam. Each variant runs in its own process (a fresh compile cache, its own thread
count) and reports:

* ``first s``: the first step, compilation included (what a run pays once);
* ``median ms``: the median of the timed steps after ``--warmup`` steps;
* ``break-even``: training steps after which the compiled variant has paid back its
  compilation against eager at the same thread count (``-`` when it is not faster).

Variants: ``eager`` (our vectorised CPU ELU, ``models.ELU``), ``eager-F.elu`` (PyTorch's ELU),
``compile`` (``torch.compile`` of the network, default inductor mode; our ELU is an autograd
Function, which the compiler traces), ``compile-F.elu`` (the network with PyTorch's ELU
compiled: inductor fuses it into vectorised C++), and ``compile-step`` (the network and the
objective compiled together). Thread counts: ``--threads 1 2``.

    .venv/bin/python benchmarks/nmce_step.py [--steps 200] [--threads 1 2] [--variants ...]

Timings depend on the machine and on what else runs on it: the script prints the processor,
torch version and OMP_WAIT_POLICY it ran with.

Measured 2026-12-02 on the 2-core Intel Xeon developer machine (idle), torch 2.14.1, defaults
(200 timed steps after 20): median ms per step, first step s, break-even steps::

    threads 1: eager 45.9 | eager-F.elu 37.9 | compile 33.6 (21.5 s, 1732) |
               compile-F.elu 34.5 (5.5 s, 471) | compile-step 37.2 (27.8 s, 3163)
    threads 2: eager 24.2 | eager-F.elu 25.1 | compile 21.4 (5.3 s, 1873) |
               compile-F.elu 21.0 (5.7 s, 1766) | compile-step 22.6 (18.2 s, 11360)

At 2 threads (the default run) compiling saves 12-13% per step after ~1800 steps and needs a
C++ compiler at run time; not adopted yet. At 1 thread PyTorch's own ELU beats ours
(37.9 vs 45.9 ms); at 2 threads ours is slightly ahead (24.2 vs 25.1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

VARIANTS = ("eager", "eager-F.elu", "compile", "compile-F.elu", "compile-step")


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_variant(variant: str, threads: int, steps: int, warmup: int) -> dict:
    """One variant in this process: times of every step."""
    import torch
    from torch import nn

    from basis_nmce.data.toys import generate
    from basis_nmce.nmce.augment import make_augmenter
    from basis_nmce.nmce.coding_rate import gumbel_softmax_memberships, nmce_loss
    from basis_nmce.nmce.networks import build_network

    torch.set_num_threads(threads)
    x, _ = generate("double_spiral", {"n_samples": 20480, "noise": 0.1}, 0)
    x = torch.from_numpy(x)
    model = build_network("mlp", (2,), 6, 2, seed=0, width=128, depth=5)
    if variant.endswith("F.elu"):
        for module in list(model.backbone.modules()):
            for child_name, child in list(module.named_children()):
                if type(child).__name__ == "ELU":
                    setattr(module, child_name, nn.ELU())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=1e-5)
    aug = make_augmenter("noise", std=0.2)
    g = torch.Generator().manual_seed(0)

    def objective(net, views, gen):
        z, logits = net(views)
        pi = gumbel_softmax_memberships(logits, 0.2, generator=gen)
        z1, z2 = z.chunk(2)
        p1, p2 = pi.chunk(2)
        return nmce_loss(z1, z2, p1, p2, 0.1, 4000.0)[0]

    net = model
    if variant in ("compile", "compile-F.elu"):
        net = torch.compile(model)
    step_fn = objective
    if variant == "compile-step":
        step_fn = torch.compile(objective)
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        idx = torch.randint(0, len(x), (2048,), generator=g)
        xb = x[idx]
        views = torch.cat([aug(xb, generator=g), aug(xb, generator=g)])
        loss = step_fn(net, views, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
        if i == 0 and not torch.isfinite(loss):
            raise RuntimeError(f"{variant}: non-finite loss")
    return {
        "variant": variant,
        "threads": threads,
        "first_s": times[0],
        "median_ms": 1000 * statistics.median(times[warmup:]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("--one", nargs=2, metavar=("VARIANT", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        res = run_variant(args.one[0], int(args.one[1]), args.steps, args.warmup)
        print("RESULT " + json.dumps(res))
        return
    import torch

    print(
        f"CPU: {_cpu()}, {os.cpu_count()} logical cores; torch {torch.__version__}; "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}; "
        f"{args.steps} timed steps after {args.warmup}"
    )
    rows = []
    for threads in args.threads:
        for variant in args.variants:
            cmd = [sys.executable, __file__, "--one", variant, str(threads)]
            cmd += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = [s for s in out.stdout.splitlines() if s.startswith("RESULT ")]
            if out.returncode != 0 or not line:
                err = (out.stderr.strip().splitlines() or ["?"])[-1]
                rows.append({"variant": variant, "threads": threads, "error": err[:80]})
                continue
            rows.append(json.loads(line[0][7:]))
    eager = {r["threads"]: r for r in rows if r["variant"] == "eager" and "error" not in r}
    head = f"{'variant':14} {'threads':>7} {'first s':>8} {'median ms':>10} {'break-even':>11}"
    print(head)
    print("-" * len(head))
    for r in rows:
        if "error" in r:
            print(f"{r['variant']:14} {r['threads']:>7}  failed: {r['error']}")
            continue
        base = eager.get(r["threads"])
        even = "-"
        if base and r["variant"] != "eager" and r["median_ms"] < base["median_ms"]:
            extra = r["first_s"] - base["first_s"]
            gain = (base["median_ms"] - r["median_ms"]) / 1000
            even = f"{max(0, extra) / gain:.0f} steps"
        print(
            f"{r['variant']:14} {r['threads']:>7} {r['first_s']:8.2f} {r['median_ms']:10.2f} "
            f"{even:>11}"
        )


if __name__ == "__main__":
    main()
