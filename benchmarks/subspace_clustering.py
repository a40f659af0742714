"""EnSC and SSC-OMP (``basis_nmce.evaluation.subspace_clustering``) on synthetic unions of subspaces.

Data as in You et al. (CVPR 2016, both papers): ``--n-subspaces`` random subspaces of dimension
``--subspace-dim`` in R^``--ambient-dim``, equally many Gaussian points on each, optional
isotropic noise, rows scaled to unit norm. Prints, per n and method: the time to compute the
codes, the total time (codes + affinity + spectral clustering), clustering accuracy (ACC) and
NMI (max-normalised), the subspace-preserving rate and error of the codes, and non-zeros per
code.

    .venv/bin/python benchmarks/subspace_clustering.py [--sizes 1000 2000 5000] [--noise 0.01]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time

import numpy as np

from basis_nmce.evaluation.metrics import cluster_accuracy, nmi
from basis_nmce.evaluation.subspace_clustering import (
    affinity_from_coefficients,
    ensc_coefficients,
    spectral_clustering_from_affinity,
    ssc_omp_coefficients,
    subspace_preserving_error,
    subspace_preserving_rate,
)


def union_of_subspaces(
    n: int, n_subspaces: int, dim: int, ambient: int, noise: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit-norm points on ``n_subspaces`` random ``dim``-dim subspaces of R^ambient."""
    y = np.arange(n) % n_subspaces
    X = np.empty((n, ambient))
    for s in range(n_subspaces):
        basis = np.linalg.qr(rng.normal(size=(ambient, dim)))[0]
        rows = y == s
        X[rows] = rng.normal(size=(int(rows.sum()), dim)) @ basis.T
    X += noise * rng.normal(size=X.shape)
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000])
    p.add_argument("--n-subspaces", type=int, default=10)
    p.add_argument("--subspace-dim", type=int, default=5)
    p.add_argument("--ambient-dim", type=int, default=30)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--methods", nargs="+", default=["ensc", "ssc_omp"])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    coders = {
        "ensc": lambda X: ensc_coefficients(X),
        "ssc_omp": lambda X: ssc_omp_coefficients(X, n_nonzero=args.subspace_dim, thr=1e-6),
    }
    print(
        f"{args.n_subspaces} subspaces of dim {args.subspace_dim} in R^{args.ambient_dim}, "
        f"noise {args.noise}"
    )
    head = f"{'n':>6} {'method':>8} {'codes s':>8} {'total s':>8} {'ACC':>6} {'NMI':>6}"
    print(head + f" {'SP-rate':>8} {'SP-err':>7} {'nnz/pt':>7}")
    for n in args.sizes:
        rng = np.random.default_rng(args.seed)
        X, y = union_of_subspaces(
            n, args.n_subspaces, args.subspace_dim, args.ambient_dim, args.noise, rng
        )
        for method in args.methods:
            t0 = time.perf_counter()
            C = coders[method](X)
            t1 = time.perf_counter()
            W = affinity_from_coefficients(C)
            labels = spectral_clustering_from_affinity(W, args.n_subspaces, seed=args.seed)
            t2 = time.perf_counter()
            print(
                f"{n:>6} {method:>8} {t1 - t0:>8.2f} {t2 - t0:>8.2f} "
                f"{cluster_accuracy(y, labels):>6.3f} {nmi(y, labels):>6.3f} "
                f"{subspace_preserving_rate(C, y):>8.3f} {subspace_preserving_error(C, y):>7.4f} "
                f"{C.nnz / n:>7.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
