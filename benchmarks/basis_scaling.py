"""BASiS at n = 1e4, 1e5, 1e6 memory-mapped points beside an exact embedding (issue 4, b).

Each case runs in its own process, so peak memory is that process's alone. For BASiS the
data is a memory-mapped ``.npy``; "anon peak" is the peak of the process's anonymous memory
(``RssAnon``: what it allocated, not the page cache of the mapped file), sampled every 20 ms.
The exact baseline is scikit-learn's ``SpectralEmbedding`` (kNN affinity, ARPACK) on the same
points loaded in memory, stopped after ``--timeout`` seconds.

    .venv/bin/python benchmarks/basis_scaling.py                 # 1e4 1e5 1e6
    .venv/bin/python benchmarks/basis_scaling.py --sizes 10000 100000 --timeout 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _anon_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


class PeakAnon:
    """Samples RssAnon in a thread; ``peak`` in MiB."""

    def __init__(self, every: float = 0.02) -> None:
        self.peak_kib, self.every, self._stop = _anon_kib(), every, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _anon_kib())
            time.sleep(self.every)

    def __enter__(self) -> PeakAnon:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak_kib = max(self.peak_kib, _anon_kib())

    @property
    def peak(self) -> float:
        return self.peak_kib / 1024


def make_data(path: Path, n: int, dim: int, k: int, seed: int = 0) -> None:
    """A Gaussian mixture written chunk by chunk into a .npy (never all in memory)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(k, dim)).astype(np.float32)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    for s in range(0, n, 100_000):
        e = min(n, s + 100_000)
        lab = rng.integers(k, size=e - s)
        out[s:e] = centres[lab] + rng.normal(size=(e - s, dim)).astype(np.float32)
    out.flush()
    del out


def child_basis(path: str, args: dict) -> dict:
    import torch

    from basis_nmce import BASiS

    torch.set_num_threads(args["threads"])
    base = _anon_kib() / 1024
    x = np.load(path, mmap_mode="r")
    with PeakAnon() as fit_mem:
        t0 = time.perf_counter()
        est = BASiS(
            args["components"],
            batch_size=args["batch"],
            n_iter=args["iterations"],
            random_state=0,
            device="cpu",
            n_clusters=args["components"],
        )
        est.fit(x)
        fit_s = time.perf_counter() - t0
    with PeakAnon() as transform_mem:
        t0 = time.perf_counter()
        z = est.transform(x)
        transform_s = time.perf_counter() - t0
    per_iter = float(np.median(np.diff([h["seconds"] for h in est.history_])[10:]))
    return {
        "per_iter_ms": 1000 * per_iter,
        "fit_s": fit_s,
        "transform_s": transform_s,
        "anon_peak_mib": fit_mem.peak - base,
        "transform_extra_mib": transform_mem.peak - base - z.nbytes / 2**20,
    }


def child_exact(path: str, args: dict) -> dict:
    from sklearn.manifold import SpectralEmbedding

    x = np.load(path)
    base = _anon_kib() / 1024
    with PeakAnon() as mem:
        t0 = time.perf_counter()
        SpectralEmbedding(
            args["components"],
            affinity="nearest_neighbors",
            n_neighbors=50,
            eigen_solver="arpack",
            random_state=0,
            n_jobs=args["threads"],
        ).fit_transform(x)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "anon_peak_mib": mem.peak - base}


def run_child(kind: str, path: Path, args: dict, timeout: float) -> dict:
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import basis_scaling as b; "
        f"print(json.dumps(b.child_{kind}({str(path)!r}, json.loads(sys.argv[1]))))"
    )
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", OMP_NUM_THREADS=str(args["threads"]))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not finished in {timeout:.0f} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
        return {"error": tail[0][:80]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=50)
    ap.add_argument("--components", type=int, default=10)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=600.0, help="per exact embedding")
    ap.add_argument("--skip-exact", action="store_true")
    args = ap.parse_args()
    opts = {k: getattr(args, k) for k in ("components", "batch", "iterations", "threads")}
    print(f"# BASiS scaling: d {args.dim}, K {args.components}, batch {args.batch}, "
          f"{args.iterations} iterations, {args.threads} threads; "
          f"{platform.machine()}, {os.cpu_count()} cores")  # fmt: skip
    print("| n | data MiB | BASiS ms/iteration | BASiS fit s | transform s | fit anon peak MiB "
          "| transform anon peak beyond its output MiB | exact (sklearn) s | exact anon peak MiB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"x{n}.npy"
            make_data(path, n, args.dim, args.components)
            b = run_child("basis", path, opts, timeout=3600)
            e = (
                {"error": "skipped"}
                if args.skip_exact
                else run_child("exact", path, opts, timeout=args.timeout)
            )
            data_mib = path.stat().st_size / 2**20
            bcols = (
                f"{b['per_iter_ms']:.1f} | {b['fit_s']:.1f} | {b['transform_s']:.2f} | "
                f"{b['anon_peak_mib']:.0f} | {b['transform_extra_mib']:.0f}"
                if "error" not in b
                else f"{b['error']} | | | |"
            )
            ecols = (
                f"{e['seconds']:.1f} | {e['anon_peak_mib']:.0f}"
                if "error" not in e
                else f"{e['error']} |"
            )
            print(f"| {n:.0e} | {data_mib:.0f} | {bcols} | {ecols} |", flush=True)
            path.unlink()


if __name__ == "__main__":
    main()
