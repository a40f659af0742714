"""One BASiS iteration, split into its parts, against a bare MLP step (issue 4, benchmark a).

An iteration of Algorithm 1 is: gather a batch, build its kNN graph, solve for its K smallest
eigenvectors, fit the RANSAC affine map on the anchors, and take one Adam step of the MLP.
The first four do not depend on the network, so :class:`basis_nmce.BASiS` computes them a
step ahead in a worker (a forked process by default, or a thread), and on CPU splits the cores
between the worker and the step. This script prints each part alone (median of
``--repeats``, all threads), the bare MLP step on the same batch with all threads, and the wall
time per iteration of a real ``fit`` in series, prefetching in a thread, and prefetching in a
forked process (the default for runs of 200 steps or more on CPU). Adam is fused in both the
bare step and BASiS.

    .venv/bin/python benchmarks/basis_iteration.py                 # FMNIST-like: d 50, K 10
    .venv/bin/python benchmarks/basis_iteration.py --batch 2048 --repeats 20 --iterations 300
    .venv/bin/python benchmarks/basis_iteration.py --threads 1

The batch graph is BASiS's default: derived from the graph the user means (kNN 50, sigma from
the 7th neighbour, over the 10,000 test images: k 5 / sigma 1 at batch 512, 10 / 1 at 2048);
``--batch-graph same_k`` builds every batch with k 50, the paper's literal.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from basis_nmce import BASiS
from basis_nmce.graph.batch import batch_graph
from basis_nmce.graph.laplacian import affinity, batch_spectral_embedding
from basis_nmce.models import MLP
from basis_nmce.spectral.align import ransac_affine
from basis_nmce.spectral.anchors import build_reference, rows


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def mixture(n: int, d: int, k: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, d))
    return (centres[rng.integers(k, size=n)] + rng.normal(size=(n, d))).astype(np.float32)


def fmnist_pca50() -> np.ndarray | None:
    """Fashion-MNIST's training images, PCA 50 (basis_fmnist.py), if the mirror is present."""
    try:
        from basis_fmnist import load
    except ImportError:
        return None
    try:
        return load(None)[0]
    except SystemExit:
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60000)
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--neighbors", type=int, default=50, help="k of the graph the user means")
    ap.add_argument("--sigma-neighbor", type=int, default=7)
    ap.add_argument("--graph-size", type=int, default=10_000, help="n that k refers to")
    ap.add_argument("--batch-graph", choices=["derived", "same_k"], default="derived")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--iterations", type=int, default=300, help="of the real fit")
    ap.add_argument(
        "--data", choices=["fmnist", "mixture"], default="fmnist",
        help="Fashion-MNIST PCA 50 (falls back to the mixture without the mirror)",
    )  # fmt: skip
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits

    threadpool_limits(args.threads)
    K, m = args.components, args.batch
    x = fmnist_pca50() if args.data == "fmnist" else None
    source = "Fashion-MNIST PCA 50" if x is not None else "Gaussian mixture"
    if x is None:
        x = mixture(args.n, args.dim, K)
    args.n, args.dim = x.shape
    target_graph = {"n_neighbors": args.neighbors, "sigma_neighbor": args.sigma_neighbor}
    graph = batch_graph(target_graph, m, args.graph_size, args.batch_graph)
    n_anchors = min(25 * K, m // 2)
    ref = build_reference(x, K, batch_size=m, n_anchors=n_anchors, graph=graph, n_clusters=K)
    rng = np.random.default_rng(1)
    index = np.concatenate([ref.anchor_index, rng.choice(args.n, m - n_anchors, replace=False)])
    xb = rows(x, index)
    phi, _ = batch_spectral_embedding(xb, K, **graph)
    dst = torch.as_tensor(ref.anchor_embedding)
    gen = torch.Generator().manual_seed(0)

    model = MLP(args.dim, K)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)  # as BASiS steps
    target = torch.randn(m, K)

    def step(xb_=xb):
        loss = torch.mean(torch.sum((model(xb_) - target) ** 2, dim=1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def bare_step():
        idx = rng.choice(args.n, m, replace=False)
        step(rows(x, idx))

    parts = {
        "batch gather": median_ms(lambda: rows(x, index), args.repeats),
        "graph (kNN + kernel)": median_ms(lambda: affinity(xb, **graph), args.repeats),
        "graph + eigenvectors": median_ms(
            lambda: batch_spectral_embedding(xb, K, **graph), args.repeats
        ),
        "RANSAC (100 hypotheses)": median_ms(
            lambda: ransac_affine(
                phi[:n_anchors].double(),
                dst,
                relative=True,
                tolerance=0.3,
                trivial_first=True,
                generator=gen,
            ),
            args.repeats,
        ),
        "MLP step (fwd + bwd + Adam)": median_ms(step, args.repeats),
    }
    parts["eigenvectors alone"] = parts["graph + eigenvectors"] - parts["graph (kNN + kernel)"]
    bare = median_ms(bare_step, args.repeats)

    per_iter = {}
    for prefetch in (False, "thread", "process"):
        est = BASiS(K, **target_graph, batch_size=m, n_iter=args.iterations,
                    batch_graph=args.batch_graph, graph_size=args.graph_size,
                    random_state=0, device="cpu", n_clusters=K, prefetch=prefetch)  # fmt: skip
        est.fit(x, reference=ref)
        seconds = np.array([h["seconds"] for h in est.history_])
        per_iter[prefetch] = 1000 * float(np.median(np.diff(seconds)[10:]))

    print(f"# BASiS iteration cost on {source}: n {args.n}, d {args.dim}, K {K}, batch {m}, "
          f"{n_anchors} anchors, batch graph kNN {graph['n_neighbors']} sigma "
          f"{graph['sigma_neighbor']} ({args.batch_graph} from kNN {args.neighbors} over "
          f"{args.graph_size}); torch/BLAS threads {args.threads}")  # fmt: skip
    print(f"# machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}; medians of {args.repeats} repeats")  # fmt: skip
    print("| part | ms |")
    print("|---|---|")
    for name in (
        "batch gather",
        "graph (kNN + kernel)",
        "eigenvectors alone",
        "RANSAC (100 hypotheses)",
        "MLP step (fwd + bwd + Adam)",
    ):
        print(f"| {name} | {parts[name]:.2f} |")
    serial = (
        sum(parts[k] for k in ("batch gather", "graph + eigenvectors", "RANSAC (100 hypotheses)"))
        + parts["MLP step (fwd + bwd + Adam)"]
    )
    print(f"| sum of the parts (serial) | {serial:.2f} |")
    print(f"| bare MLP step incl. batch gather | {bare:.2f} |")
    for prefetch, how in (
        (False, "in series, prefetch=False"),
        ("thread", "prefetched in a thread, one thread each"),
        ("process", "prefetched in a forked process, one thread each: the default"),
    ):
        print(f"| BASiS fit, wall per iteration (median; {how}) | {per_iter[prefetch]:.2f} |")
    print(f"\nratio BASiS iteration / bare MLP step: {per_iter[False] / bare:.2f}x in series, "
          f"{per_iter['thread'] / bare:.2f}x prefetching in a thread, "
          f"{per_iter['process'] / bare:.2f}x in a process, the default "
          f"(sum of the parts {serial / bare:.2f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
