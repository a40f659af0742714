"""BASiS Table 1 on Fashion-MNIST, on this machine: Siamese features, then the exact embedding,
BASiS, SpectralNet, SpecNet2 and Diffusion Net over seeds (:func:`basis_nmce.evaluation.compare.compare`).

Reads the IDX files from the offline mirror (Debian's dataset-fashion-mnist), subsamples
``--n-train`` / ``--n-test`` images (stratified by nothing: the first ones), trains the
paper's grey Siamese CNN (``--pairing labels``, the paper's, or ``knn``, label-free) for
``--siamese-steps`` batches of 128 pairs, then compares the spectral methods on its 16-d
output with the paper's graph (kNN 50, sigma from the 7th neighbour, L_N, K 10, batch 512)
and prints the mean ± std table (also written to ``--out``). The paper's Table 1 Fashion-MNIST
rows, for comparison (10 runs; its d_perp is the authors' measure, its d_G the same-k one):
Diffusion Net d_G 0.488, SpectralNet 0.375, SpecNet2 1.976, BASiS 0.284 (BASiS d_perp
0.590, NMI 0.798, ACC 0.865, linear 87.20%).

    python benchmarks/compare_fmnist.py --seeds 5 --iters 1000 --out results/compare_fmnist
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mirror", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--pairing", choices=["labels", "knn"], default="labels")
    ap.add_argument("--siamese-steps", type=int, default=3000)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="results/compare_fmnist")
    args = ap.parse_args()
    if args.threads:
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    from pathlib import Path

    from basis_nmce.data.idx import read_idx
    from basis_nmce.evaluation.compare import compare, write_tables
    from basis_nmce.features.siamese import siamese_features

    root = Path(args.mirror)

    def load(stem: str) -> np.ndarray:
        path = next(p for p in sorted(root.iterdir()) if p.name.startswith(stem))
        return read_idx(path)

    x_tr = load("train-images")[: args.n_train]
    y_tr = load("train-labels")[: args.n_train].astype(np.int64)
    x_te = load("t10k-images")[: args.n_test]
    y_te = load("t10k-labels")[: args.n_test].astype(np.int64)
    to = lambda a: torch.from_numpy(a[:, None].astype(np.float32) / 255.0)  # noqa: E731
    opts = {
        "network": "grey",
        "pairing": args.pairing,
        "knn_positives": 2,
        "dim": 16,
        "hidden": [256, 256],
        "steps": args.siamese_steps,
        "batch_pairs": 128,
        "lr": 1e-3,
        "margin": 1.0,
        "checkpoint_every": 1000,
    }
    t0 = time.perf_counter()
    f_tr, f_te, info = siamese_features((to(x_tr), to(x_te)), y_tr, opts, seed=0, device="cpu")
    print(
        f"Siamese features ({info['pairing']} pairs, {info['steps']} steps): "
        f"{time.perf_counter() - t0:.0f} s, loss {info['loss_first']:.3f} -> {info['loss_last']:.3f}"
    )
    common = {
        "n_neighbors": 50,
        "sigma_neighbor": 7,
        "laplacian": "sym",
        "batch_size": 512,
        "n_iter": args.iters,
        "graph_size": args.n_test,
    }
    per_method = {"BASiS": {"lr": 1e-3, "lr_decay": 0.01}}
    t0 = time.perf_counter()
    rows = compare(
        f_tr,
        y_tr,
        f_te,
        y_te,
        n_components=10,
        seeds=range(args.seeds),
        common=common,
        per_method=per_method,
    )
    paths = write_tables(rows, args.out)
    print(f"compare: {time.perf_counter() - t0:.0f} s; torch threads {torch.get_num_threads()}")
    print(paths["md"].read_text())


if __name__ == "__main__":
    main()
