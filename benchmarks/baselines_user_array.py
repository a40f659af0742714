"""The four learnt spectral embeddings on a user's own array, as a user would call them.

    from basis_nmce import SpectralNet
    SpectralNet(n_components=5).fit(x).transform(x_new)

``x``: 20,000 points in 24 dimensions (a mixture of 5 Gaussian clusters on random 3-d
subspaces, plus noise), ``x_new``: 5,000 more from the same distribution. Every estimator with
its defaults (kNN 50, sigma from the 7th neighbour, L_N, batch 512, 1000 iterations, the
derived batch graph) and ``n_components=5``. Prints fit and transform seconds, and the squared
Grassmann distance of the output on ``x_new`` to the exact eigenvectors of ``x_new``'s own
graph at the density of the graph the user meant (50 neighbours among 20,000 points, so
``50 * 5000 / 20000`` among the 5,000), and k-means NMI against the mixture's components.

    python benchmarks/baselines_user_array.py [--n 20000] [--iters 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch


def mixture(n: int, dim: int = 24, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(k, dim))
    bases = rng.normal(size=(k, 3, dim))
    y = rng.integers(0, k, n)
    coords = rng.normal(size=(n, 3))
    x = centres[y] + np.einsum("ni,nid->nd", coords, bases[y]) + 0.3 * rng.normal(size=(n, dim))
    return x.astype(np.float32), y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--n-new", type=int, default=5000)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None, help="torch / BLAS threads")
    ap.add_argument(
        "--methods", nargs="+", default=["BASiS", "SpectralNet", "SpecNet2", "DiffusionNet"]
    )
    args = ap.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    import basis_nmce
    from basis_nmce.evaluation.metrics import grassmann_distance, nmi
    from basis_nmce.graph.batch import rescale
    from basis_nmce.graph.laplacian import spectral_embedding

    x_all, y_all = mixture(args.n + args.n_new)  # one distribution, split in two
    x, x_new, y_new = x_all[: args.n], x_all[args.n :], y_all[args.n :]
    graph = {"n_neighbors": 50, "sigma_neighbor": 7, "laplacian": "sym"}
    target = rescale(graph, args.n_new / args.n, args.n_new)
    exact = spectral_embedding(x_new, 5, **target, solver="sparse").embedding
    print(
        f"x {x.shape}, x_new {x_new.shape}; exact reference: k {target['n_neighbors']}, "
        f"sigma neighbour {target['sigma_neighbor']} on x_new; torch threads "
        f"{torch.get_num_threads()}"
    )
    print(
        "| method | fit s | transform s (5,000 points) | d_G (test graph, user's density) | NMI |"
    )
    print("|---|---|---|---|---|")
    for name in args.methods:
        cls = getattr(basis_nmce, name)
        est = cls(n_components=5, n_iter=args.iters, random_state=0, device="cpu")
        t0 = time.perf_counter()
        est.fit(x)
        t1 = time.perf_counter()
        z = est.transform(x_new)
        t2 = time.perf_counter()
        score = nmi(y_new, est.clusters_of(z))
        print(
            f"| {name} | {t1 - t0:.1f} | {t2 - t1:.2f} | {grassmann_distance(z, exact):.3f} "
            f"| {score:.3f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
