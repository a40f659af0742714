"""Exact spectral embedding of the Fashion-MNIST test split (10,000 images), timed.

Graph as in the BASiS paper (Sec. 5.2): 50 nearest neighbours, local sigma from the 7th
neighbour, W + W^T, L_N = I - D^-1/2 W D^-1/2, K = 10 eigenvectors, sparse solver. Features:
raw pixels (flattened, scaled to [0, 1]) and PCA-50 of them. Prints a table of medians over
``--repeats`` runs (kNN, affinity, eigensolver, k-means) and the k-means (10 clusters,
n_init 10) NMI / ACC (Hungarian) / ARI against the labels.

Data: the raw IDX files of Debian's ``dataset-fashion-mnist`` (``apt-get install
dataset-fashion-mnist``, files under /usr/share/datasets/fashion-mnist), or ``--data DIR``
holding ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``.

    .venv/bin/python benchmarks/exact_embedding.py
"""

from __future__ import annotations

import os

# Before numpy / torch / sklearn load their OpenMP runtimes (see benchmarks/omp_wait_policy.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import gzip
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA

from basis_nmce.evaluation.metrics import clustering_scores
from basis_nmce.graph.laplacian import knn, knn_affinity, spectral_embedding_from_affinity

DEFAULT_DIRS = ("/usr/share/datasets/fashion-mnist",)
GRAPH = {"n_neighbors": 50, "sigma_mode": "local", "sigma_neighbor": 7, "symmetrize": "sum"}


def read_idx(path: Path) -> np.ndarray:
    """A (possibly gzipped) IDX file as a numpy array (unsigned-byte data only)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {raw[:4]!r})")
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(data_dir: Path | None, stem: str) -> Path:
    dirs = [data_dir] if data_dir else [Path(d) for d in DEFAULT_DIRS]
    for d in dirs:
        for name in (stem, stem + ".gz"):
            if (d / name).exists():
                return d / name
    raise SystemExit(
        f"{stem}: not found in {', '.join(map(str, dirs))}; install Debian's "
        "dataset-fashion-mnist (apt-get install dataset-fashion-mnist) or pass --data DIR"
    )


def run_once(x: np.ndarray, y: np.ndarray, k_eig: int, seed: int) -> dict[str, float]:
    t = {}
    t0 = time.perf_counter()
    dist, idx = knn(x, GRAPH["n_neighbors"])
    t["knn"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    W = knn_affinity(dist, idx, **GRAPH)
    t["affinity"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = spectral_embedding_from_affinity(W, k_eig, laplacian="sym", solver="sparse", seed=seed)
    t["solver"] = time.perf_counter() - t0
    t["embed_total"] = t["knn"] + t["affinity"] + t["solver"]
    t0 = time.perf_counter()
    pred = KMeans(n_clusters=10, n_init=10, random_state=seed).fit_predict(res.embedding)
    t["kmeans"] = time.perf_counter() - t0
    t.update(clustering_scores(y, pred))  # the project's metrics: NMI normalised by max(H)
    t["lambda_K"] = float(res.eigenvalues[-1])
    t["max_residual"] = res.max_residual
    t["n_cc"] = res.n_connected_components
    t["solver_name"] = res.solver  # type: ignore[assignment]
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10, help="eigenvectors K")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    t0 = time.perf_counter()
    images = read_idx(find(args.data, "t10k-images-idx3-ubyte"))
    labels = read_idx(find(args.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    x_raw = images.reshape(len(images), -1).astype(np.float32) / 255.0
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    x_pca = PCA(50, random_state=args.seed).fit_transform(x_raw).astype(np.float32)
    t_pca = time.perf_counter() - t0
    print(
        f"Fashion-MNIST test split: {x_raw.shape[0]} x {x_raw.shape[1]}, load {t_load:.2f} s, "
        f"PCA-50 {t_pca:.2f} s; torch {torch.__version__}, {args.threads} threads, "
        f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}"
    )
    print(
        f"graph: kNN {GRAPH['n_neighbors']}, local sigma (neighbour {GRAPH['sigma_neighbor']}), "
        f"W + W^T, L_sym, K {args.k}, sparse solver; k-means 10 clusters n_init 10; "
        f"median of {args.repeats} runs (seconds)"
    )
    cols = ["knn", "affinity", "solver", "embed_total", "kmeans"]
    header = f"{'features':<10}" + "".join(f"{c:>12}" for c in cols)
    header += f"{'NMI':>8}{'ACC':>8}{'ARI':>8}{'lambda_K':>10}  solver"
    print(header)
    print("-" * len(header))
    for name, x in (("raw", x_raw), ("pca50", x_pca)):
        runs = [run_once(x, labels, args.k, args.seed) for _ in range(args.repeats)]
        med = {c: statistics.median(r[c] for r in runs) for c in cols}
        last = runs[-1]
        print(
            f"{name:<10}"
            + "".join(f"{med[c]:>12.3f}" for c in cols)
            + f"{last['nmi']:>8.3f}{last['acc']:>8.3f}{last['ari']:>8.3f}"
            + f"{last['lambda_K']:>10.4f}  {last['solver_name']} "
            + f"(components {last['n_cc']}, max residual {last['max_residual']:.1e})"
        )
    print(f"total wall time {time.perf_counter() - t_start:.1f} s (including PCA and k-means)")


if __name__ == "__main__":
    main()
