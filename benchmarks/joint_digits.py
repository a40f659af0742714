"""BASiS Algorithm 2 (Sec. 5.4, Fig. 6) on digits with and without T_G: the figures the README
quotes. Runs the pipeline's basis_joint stage with configs/joint-digits.yaml (config.yaml merged
under it: 1500 feature iterations, a spectral step every 10th, 16-d Siamese CNN features, K = 9,
Adam 1e-3 / 1e-4, 100 anchors of a 512 batch), for each variant, and prints the test-split
curves (every 5th spectral step), their end points and where the network's NMI meets the exact
embedding's (within 0.02 from there on; the paper's "around iteration 800").

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/joint_digits.py [--dataset digits] [--seed 0]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/joint_digits.py --preset joint-fmnist \
        --dataset fmnist_joint                  # Fashion-MNIST from the local mirror
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch

from _presets import prepared, preset
from basis_nmce.io import read_csv, read_json
from basis_nmce.stages.joint import run_basis_joint
from basis_nmce.stages.params import stage_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="joint-digits", help="configs/<preset>.yaml")
    ap.add_argument("--dataset", default="digits", help="a run.joint data set of the preset")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset)
    cfg["seed"] = args.seed
    params = stage_params(cfg, "basis_joint", args.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        prep = prepared(cfg, args.dataset, folder)
        runs = {}
        for variant in ("tg", "no_tg"):
            t0 = time.perf_counter()
            out = folder / variant / "embedding.npz"
            out.parent.mkdir()
            run_basis_joint(params, prep, variant, out)
            runs[variant] = (
                read_json(out.with_suffix(".json")),
                read_csv(out.parent / "log.csv"),
                time.perf_counter() - t0,
            )
    tg, no = runs["tg"][1], runs["no_tg"][1]
    ev = tg.dropna(subset=["nmi_network"]).merge(
        no.dropna(subset=["nmi_network"])[
            ["iteration", "nmi_network", "spectral_loss", "grassmann"]
        ],
        on="iteration",
        suffixes=("_tg", "_no_tg"),
    )
    print(f"{args.dataset}, seed {args.seed}: test NMI (k-means, max-normalised) during training")
    print("iteration  exact  net(T_G)  net(no T_G)  loss(T_G)  loss(no T_G)  d_G(T_G)  d_G(no)")
    for _, r in ev.iterrows():
        print(
            f"{int(r.iteration):9d}  {r.nmi_exact:.3f}  {r.nmi_network_tg:8.3f}  "
            f"{r.nmi_network_no_tg:11.3f}  {r.spectral_loss_tg:9.3f}  {r.spectral_loss_no_tg:12.3f}"
            f"  {r.grassmann_tg:8.3f}  {r.grassmann_no_tg:7.3f}"
        )
    for variant, (rec, _, secs) in runs.items():
        gap = rec["nmi_network"] - rec["nmi_exact"]
        meet = rec["meeting_iteration"]
        print(
            f"end {variant:5s}: network NMI {rec['nmi_network']:.4f}, exact {rec['nmi_exact']:.4f} "
            f"(gap {gap:+.4f}), d_G {rec['grassmann']:.3f}, final spectral loss "
            f"{rec['final_spectral_loss']:.4f}, within 0.02 from iteration "
            f"{meet if meet is not None else 'never'}; {secs:.0f} s"
        )
    ok = abs(runs["tg"][0]["nmi_network"] - runs["tg"][0]["nmi_exact"]) <= 0.02
    worse = runs["no_tg"][0]["nmi_network"] < runs["tg"][0]["nmi_network"] - 0.02 or math.isnan(
        runs["no_tg"][0]["nmi_network"]
    )
    print(f"T_G within 0.02 of exact: {ok}; without T_G worse by > 0.02: {worse}")


if __name__ == "__main__":
    main()
