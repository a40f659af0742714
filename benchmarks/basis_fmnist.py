"""BASiS on Fashion-MNIST against the exact embedding of the test split, beside `spectralnet`.

Features: raw pixels scaled to [0, 1], PCA 50 fitted on the 60,000 training images. The graph
the user means is the BASiS paper's (Sec. 5.2) on the test split: 50 nearest neighbours, local
sigma from the 7th neighbour, W + W^T, L_N; K = 10. Every method trains on the training split
and embeds the test split out of sample; scores, all on the 10,000 test images:

* ``d_G same-k``: squared Grassmann distance to the exact eigenvectors of the test split's own
  kNN-50 graph (the paper's protocol);
* ``d_G matched``: to the test graph at the density of the batch graph the method trained on
  (its k and sigma neighbour times n_test / batch; equal to same-k for a derived batch graph,
  up to rounding);
* ``d_perp`` ours (``||Y^T Y / n - I||_F^2``) and the authors' (unit columns, not squared);
* k-means (10 clusters) NMI normalised by max(H) (BASiS Eq. 18) and ACC, beside the exact
  embedding's.

BASiS runs with each ``--batch-graph`` rule: ``derived`` (each batch's k and sigma neighbour
scaled by batch / 10,000, the density of the test graph; the default) and ``same_k`` (the
paper's literal k 50 in every batch). ``--peer spectralnet`` trains the ``spectralnet``
package (1.1.0, ``pip install -e .[bench]``) on the same features with the same batch size,
its batch graph at the same density (``spectral_n_nbg`` = BASiS's derived k), and its
degree-normalised loss, which its trainer never passes (set as the loss's default here).

    .venv/bin/python benchmarks/basis_fmnist.py                      # batch 512, 1024, 2048
    .venv/bin/python benchmarks/basis_fmnist.py --batch 2048 --peer spectralnet
    .venv/bin/python benchmarks/basis_fmnist.py --batch 1024 --batch-graph --peer spectralnet

Defaults: 2000 iterations, Adam 1e-3 decayed to 1e-5, 100 anchors (10 per k-means cluster;
the paper's 25 per class fill half a 512-point batch with the same points, ``--anchors 0``).

Data: Debian's ``dataset-fashion-mnist`` or ``--data DIR`` (see exact_embedding.py).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TQDM_DISABLE", "1")  # spectralnet's per-epoch progress bars

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA

from basis_nmce import BASiS
from basis_nmce.evaluation.metrics import (
    clustering_scores,
    grassmann_distance,
    kmeans_labels,
    orthogonality,
    orthogonality_authors,
)
from basis_nmce.graph.batch import batch_graph, matched_graph
from basis_nmce.graph.laplacian import spectral_embedding
from exact_embedding import find, read_idx

K = 10
GRAPH = {"n_neighbors": 50, "sigma_mode": "local", "sigma_neighbor": 7, "laplacian": "sym"}


def load(data_dir: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def images(stem: str) -> np.ndarray:
        return read_idx(find(data_dir, stem)).reshape(-1, 784).astype(np.float32) / 255.0

    xtr, xte = images("train-images-idx3-ubyte"), images("t10k-images-idx3-ubyte")
    yte = read_idx(find(data_dir, "t10k-labels-idx1-ubyte")).astype(np.int64)
    pca = PCA(50, random_state=0).fit(xtr)
    return pca.transform(xtr).astype(np.float32), pca.transform(xte).astype(np.float32), yte


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


class Scorer:
    """Scores of a test embedding against the exact ones (computed once per graph)."""

    def __init__(self, xte: np.ndarray, yte: np.ndarray, seed: int):
        self.xte, self.yte, self.seed = xte, yte, seed
        self._exact: dict[tuple[int, int], np.ndarray] = {}

    def exact(self, k: int, k_sigma: int) -> np.ndarray:
        if (k, k_sigma) not in self._exact:
            g = {**GRAPH, "n_neighbors": k, "sigma_neighbor": k_sigma}
            self._exact[k, k_sigma] = spectral_embedding(self.xte, K, seed=self.seed, **g).embedding
        return self._exact[k, k_sigma]

    def row(self, z: np.ndarray, trained_on: dict | None, batch: int) -> dict[str, float]:
        out = {"dG": grassmann_distance(z, self.exact(50, 7))}
        if trained_on is not None:
            m = matched_graph({**GRAPH, **trained_on}, batch, len(self.xte))
            out["dG_matched"] = grassmann_distance(
                z, self.exact(m["n_neighbors"], m["sigma_neighbor"])
            )
            out["matched_k"] = f"{m['n_neighbors']}/{m['sigma_neighbor']}"
        s = clustering_scores(self.yte, kmeans_labels(z, K, seed=self.seed))
        out.update(
            dperp=orthogonality(z),
            dperp_authors=orthogonality_authors(z),
            nmi=s["nmi"],
            acc=s["acc"],
        )
        return out


def run_basis(xtr: np.ndarray, args, batch: int, rule: str) -> tuple[BASiS, float]:
    est = BASiS(
        K,
        **{k: GRAPH[k] for k in ("n_neighbors", "sigma_neighbor", "laplacian")},
        batch_size=batch,
        batch_graph=rule,
        graph_size=10_000,
        n_anchors=args.anchors or None,
        n_iter=args.iterations,
        lr=args.lr,
        lr_decay=args.lr_decay,
        random_state=args.seed,
        device="cpu",
        n_clusters=K,
    )
    t0 = time.perf_counter()
    est.fit(xtr)
    return est, time.perf_counter() - t0


def run_spectralnet(
    xtr: np.ndarray, xte: np.ndarray, args, batch: int
) -> tuple[np.ndarray, float, str]:
    """The `spectralnet` package on the same features, batch and batch-graph density."""
    from spectralnet import SpectralNet
    from spectralnet._losses import SpectralNetLoss

    SpectralNetLoss.forward.__defaults__ = (True,)  # the degree-normalised loss (L_sym)
    k_b = args.peer_k or batch_graph(GRAPH, batch, 10_000)["n_neighbors"]
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)  # noqa: NPY002 -- spectralnet draws from the legacy global state
    net = SpectralNet(
        n_clusters=K,
        spectral_hiddens=[256, 512, 512, 256, K],
        spectral_batch_size=batch,
        spectral_epochs=args.peer_epochs,
        spectral_n_nbg=k_b,
        spectral_lr=args.lr,
    )
    net.device = torch.device("cpu")
    t0 = time.perf_counter()
    net.fit(torch.from_numpy(xtr))
    seconds = time.perf_counter() - t0
    net.predict(torch.from_numpy(xte))
    how = "its default k" if args.peer_k == 30 else "k" if args.peer_k else "derived k"
    return net.embeddings_, seconds, f"{how} {k_b}, its median local scale"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--batch", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--batch-graph", nargs="*", default=["derived", "same_k"])
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.01)
    ap.add_argument(
        "--anchors", type=int, default=100, help="n_anchors (0: BASiS's default, 25 per cluster)"
    )
    ap.add_argument("--peer", choices=["spectralnet"], nargs="*", default=[])
    ap.add_argument("--peer-epochs", type=int, default=30)
    ap.add_argument(
        "--peer-k", type=int, default=None, help="spectral_n_nbg (default: BASiS's derived k)"
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    xtr, xte, yte = load(args.data)
    scorer = Scorer(xte, yte, args.seed)
    t0 = time.perf_counter()
    exact = scorer.exact(50, 7)
    exact_s = time.perf_counter() - t0
    ex = clustering_scores(yte, kmeans_labels(exact, K, seed=args.seed))
    print(
        f"# Fashion-MNIST, PCA 50; the test graph: kNN 50, sigma 7th, W + W^T, L_sym, K {K}; "
        f"{cpu_name()}, {os.cpu_count()} cores, {args.threads} threads; seed {args.seed}; "
        f"{args.iterations} iterations, Adam {args.lr} decayed to x{args.lr_decay}"
    )
    print(
        f"# exact test embedding: {exact_s:.1f} s, NMI {ex['nmi']:.3f} ACC {ex['acc']:.3f} "
        "(NMI normalised by max(H))"
    )
    print(
        "| method | batch | batch graph k / k_sigma | train s | d_G same-k | d_G matched "
        "(test k / k_sigma) | d_perp | d_perp authors | NMI | NMI - exact | ACC | inliers "
        "| fallbacks | redrawn |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for batch in args.batch:
        for rule in args.batch_graph:
            est, seconds = run_basis(xtr, args, batch, rule)
            bg = est.batch_graph_
            r = scorer.row(est.transform(xte), bg, batch)
            print(
                f"| BASiS {rule} | {batch} | {bg['n_neighbors']} / {bg['sigma_neighbor']} "
                f"| {seconds:.0f} | {r['dG']:.3f} | {r['dG_matched']:.3f} ({r['matched_k']}) "
                f"| {r['dperp']:.3f} | {r['dperp_authors']:.3f} | {r['nmi']:.3f} "
                f"| {r['nmi'] - ex['nmi']:+.3f} | {r['acc']:.3f} | {est.median_inlier_ratio_:.2f} "
                f"| {est.fallback_batches_} | {est.rejected_batches_} |",
                flush=True,
            )
        for peer in args.peer:
            z, seconds, graph = run_spectralnet(xtr, xte, args, batch)
            r = scorer.row(z, None, batch)
            print(
                f"| {peer} 1.1.0, normalised loss, {args.peer_epochs} epochs | {batch} | {graph} "
                f"| {seconds:.0f} | {r['dG']:.3f} | | {r['dperp']:.3f} | {r['dperp_authors']:.3f} "
                f"| {r['nmi']:.3f} | {r['nmi'] - ex['nmi']:+.3f} | {r['acc']:.3f} | | | |",
                flush=True,
            )


if __name__ == "__main__":
    main()
