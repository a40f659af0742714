"""How far a batch's anchors land from the reference: the measurement behind the RANSAC rule.

For each data set of the default pipeline (digits K 10, the toys K 1-2) and, with the Debian
mirror, Fashion-MNIST (PCA 50, K 10, batch 512 / 1024 / 2048), this builds BASiS's reference
with the batch graph BASiS uses (``derived`` from the config's graph over the test split's
size), draws ``--batches`` batches (the anchors plus fresh points), solves each exactly and
fits the affine map on *all* anchors by least squares. It prints, as medians over batches:

* the anchors' residual norms after that fit, relative to ``s``, the reference anchors' RMS
  spread (``basis_nmce.spectral.align.anchor_scale``, about sqrt(K)): the median and the 90th percentile;
* the RANSAC inlier ratio with the paper's absolute tolerance 0.1 and with relative ones;
* the condition number of the affine design ``[phi, 1]`` with a kept trivial eigenvector and
  without it (how the trivial column is now aligned: by a scale alone).

    .venv/bin/python benchmarks/basis_alignment.py [--batches 20] [--no-fmnist]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from basis_nmce import data
from basis_nmce.config import dataset_section, validate_config
from basis_nmce.features.raw import raw_features
from basis_nmce.graph.batch import batch_graph
from basis_nmce.graph.laplacian import batch_spectral_embedding
from basis_nmce.spectral.align import _design, anchor_scale, apply_affine, fit_affine, ransac_affine
from basis_nmce.spectral.anchors import build_reference, rows

ROOT = Path(__file__).resolve().parents[1]
RELATIVE = (0.2, 0.3, 0.5)


def pipeline_sets() -> list[tuple[str, np.ndarray, int, dict, int, int]]:
    """(name, train features, K, batch graph, batch size, anchors) as `make run` builds them."""
    cfg = validate_config(yaml.safe_load((ROOT / "config.yaml").read_text()))
    out = []
    with tempfile.TemporaryDirectory() as raw:
        for name in cfg["run"]["datasets"]:
            spec = cfg["datasets"][name]
            data.fetch(name, spec, Path(raw) / name, seed=cfg["seed"])
            ds = data.prepare(name, spec, Path(raw) / name, seed=cfg["seed"])
            feats = dataset_section(cfg, name, "features")["raw"]
            xtr, xte = raw_features(ds.x_train, ds.x_test, **feats, seed=cfg["seed"])
            graph = dict(dataset_section(cfg, name, "graph"))
            basis = dataset_section(cfg, name, "basis")
            k = graph.pop("n_components") or ds.n_classes
            m = basis["batch_size"]
            n_clusters = ds.n_classes or k + int(graph["drop_first"])
            anchors = basis["n_anchors"] or min(basis["anchors_per_cluster"] * n_clusters, m // 2)
            bg = batch_graph(graph, m, basis["graph_size"] or len(xte), basis["batch_graph"])
            out.append((name, xtr, k, bg, m, anchors))
    return out


def fmnist_sets() -> list[tuple[str, np.ndarray, int, dict, int, int]]:
    try:
        from basis_fmnist import GRAPH, load
    except ImportError:
        return []
    try:
        xtr = load(None)[0]
    except SystemExit:
        return []
    graph = {**GRAPH, "drop_first": False}
    return [
        (f"fashion_mnist batch {m}", xtr, 10, batch_graph(graph, m, 10_000), m, 250)
        for m in (512, 1024, 2048)
    ]


def probe(name, x, k, graph, m, n_anchors, batches: int, seed: int = 0) -> str:
    ref = build_reference(
        x, k, batch_size=m, n_anchors=n_anchors, graph=graph, seed=seed,
        n_clusters=k + int(bool(graph.get("drop_first"))),
    )  # fmt: skip
    dst = torch.as_tensor(ref.anchor_embedding, dtype=torch.float64)
    s = anchor_scale(dst)
    trivial = not graph.get("drop_first")
    rng = np.random.default_rng(1)
    pool = np.setdiff1d(np.arange(len(x)), ref.anchor_index)
    rows_ = []
    for b in range(batches):
        index = np.concatenate([ref.anchor_index, rng.choice(pool, m - n_anchors, replace=False)])
        phi, _ = batch_spectral_embedding(rows(x, index), k, **graph)
        src = phi[:n_anchors].double()
        r = torch.linalg.vector_norm(
            apply_affine(fit_affine(src, dst, trivial_first=trivial), src) - dst, dim=1
        )
        inl = [ransac_affine(src, dst, generator=torch.Generator().manual_seed(b)).inlier_ratio]
        inl += [
            ransac_affine(
                src, dst, tolerance=t, relative=True, trivial_first=trivial,
                generator=torch.Generator().manual_seed(b),
            ).inlier_ratio
            for t in RELATIVE
        ]  # fmt: skip
        conds = [float(torch.linalg.cond(_design(src)))]
        conds.append(float(torch.linalg.cond(_design(src[:, 1:]))) if trivial and k > 1 else np.nan)
        rows_.append([float(r.median()) / s, float(r.quantile(0.9)) / s, *inl, *conds])
    a = np.median(np.array(rows_), axis=0)
    graph_s = f"k {graph['n_neighbors']}" + (
        f", sigma {graph['sigma_neighbor']}" if graph.get("sigma_mode", "local") != "fixed" else ""
    )
    no_trivial = "" if np.isnan(a[-1]) else f"{a[-1]:.1f}"
    return (
        f"| {name} | {k} | {m} / {n_anchors} | {graph_s} | {s:.2f} | {a[0]:.3f} | {a[1]:.3f} | "
        + " | ".join(f"{v:.2f}" for v in a[2:-2])
        + f" | {a[-2]:.1f} | {no_trivial} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--no-fmnist", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"# least squares on all anchors, {args.batches} batches each; medians over batches")
    rel = " | ".join(f"inliers rel {t}" for t in RELATIVE)
    print(
        "| data set | K | batch / anchors | batch graph | s | residual / s, median | "
        f"residual / s, 90% | inliers abs 0.1 | {rel} | cond [phi, 1] | cond without trivial |"
    )
    print("|---|---|---|---|---|---|---|---|" + "---|" * len(RELATIVE) + "---|---|")
    sets = pipeline_sets() + ([] if args.no_fmnist else fmnist_sets())
    for item in sets:
        print(probe(*item, batches=args.batches), flush=True)


if __name__ == "__main__":
    main()
