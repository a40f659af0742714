"""BASiS on Fashion-MNIST against the exact embedding of the test split (issue 4, benchmark c).

Features: raw pixels scaled to [0, 1], PCA 50 fitted on the 60,000 training images. Graph as
in the BASiS paper (Sec. 5.2): 50 nearest neighbours, local sigma from the 7th neighbour,
W + W^T, L_N; K = 10; batch 512 with 25 anchors per k-means cluster (label-free). The network
is trained on the training split and embeds the test split out of sample; it is scored against
the exact eigenvectors of the test split's own graph: d_G (same k, the paper's protocol, and
`matched`: k and the sigma neighbour scaled by n_test / batch), d_perp, and k-means NMI / ACC
beside those of the exact embedding. Each ``--schedule`` is one training run.

    .venv/bin/python benchmarks/basis_fmnist.py                        # the config's setting
    .venv/bin/python benchmarks/basis_fmnist.py --schedule 1000:1e-4:1 3000:1e-3:0.01

A schedule is ``iterations:lr:decay`` (decay: the factor the learning rate reaches at the
last iteration). Data: Debian's ``dataset-fashion-mnist`` or ``--data DIR`` (see
exact_embedding.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from basis_nmce import BASiS
from basis_nmce.graph import spectral_embedding
from basis_nmce.metrics import clustering_scores, grassmann_distance, kmeans_labels, orthogonality
from basis_nmce.stages.evaluate import matched_graph
from exact_embedding import find, read_idx

GRAPH = {"n_neighbors": 50, "sigma_mode": "local", "sigma_neighbor": 7, "laplacian": "sym"}


def load(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def images(stem: str) -> np.ndarray:
        return read_idx(find(data_dir, stem)).reshape(-1, 784).astype(np.float32) / 255.0

    xtr, xte = images("train-images-idx3-ubyte"), images("t10k-images-idx3-ubyte")
    yte = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    pca = PCA(50, random_state=0).fit(xtr)
    return pca.transform(xtr).astype(np.float32), pca.transform(xte).astype(np.float32), yte


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--schedule", nargs="+", default=["3000:1e-3:0.01"])
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, xte, yte = load(args.data)
    K = 10
    t0 = time.perf_counter()
    exact = spectral_embedding(xte, K, seed=args.seed, **GRAPH).embedding
    exact_s = time.perf_counter() - t0
    matched_cfg = matched_graph({**GRAPH, "symmetrize": "sum"}, len(xte), args.batch)
    matched = spectral_embedding(xte, K, seed=args.seed, **matched_cfg).embedding
    ex = clustering_scores(yte, kmeans_labels(exact, K, seed=args.seed))
    print(f"# Fashion-MNIST, PCA 50, kNN 50, sigma 7th, L_sym, K 10, batch {args.batch}; "
          f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} threads")  # fmt: skip
    print(f"# exact test embedding: {exact_s:.1f} s, NMI {ex['nmi']:.3f} ACC {ex['acc']:.3f}; "
          f"d_G(same k, matched k {matched_cfg['n_neighbors']}) = "
          f"{grassmann_distance(exact, matched):.3f}")  # fmt: skip
    print("| iterations | lr | decay | train s | d_G same-k | d_G matched | d_perp | NMI | ACC "
          "| NMI - exact | redrawn batches |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for sched in args.schedule:
        n_iter, lr, decay = sched.split(":")
        est = BASiS(K, n_neighbors=50, sigma_neighbor=7, batch_size=args.batch,
                    n_iter=int(n_iter), lr=float(lr), lr_decay=float(decay),
                    random_state=args.seed, device="cpu", n_clusters=K)  # fmt: skip
        t0 = time.perf_counter()
        est.fit(xtr)
        train_s = time.perf_counter() - t0
        z = est.transform(xte)
        s = clustering_scores(yte, kmeans_labels(z, K, seed=args.seed))
        print(f"| {n_iter} | {lr} | {decay} | {train_s:.0f} | {grassmann_distance(z, exact):.3f} "
              f"| {grassmann_distance(z, matched):.3f} | {orthogonality(z):.3f} | {s['nmi']:.3f} "
              f"| {s['acc']:.3f} | {s['nmi'] - ex['nmi']:+.3f} | {est.rejected_batches_} |",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
