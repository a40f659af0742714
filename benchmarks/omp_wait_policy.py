"""Effect of OMP_WAIT_POLICY on k-means after torch work (two OpenMP runtimes in one process).

torch (Intel OpenMP / MKL) and scikit-learn (GNU OpenMP) each keep a thread pool. With the
default policy idle OpenMP threads spin for a while before sleeping, so alternating torch and
scikit-learn work on 2 cores makes the two pools fight. Each setting runs in its own
subprocess (the policy is read when a runtime loads), alternating a torch matrix product with
``KMeans(10, n_init=10)`` on 10,000 x 10 points, the shape of the exact-embedding benchmark,
once on an otherwise idle machine and once beside one busy process (another job, or another
engineer's tests, on the same 2 cores): spinning threads are cheap while cores are free and
ruinous when they are not.

    .venv/bin/python benchmarks/omp_wait_policy.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs

torch.set_num_threads(int(sys.argv[1]))
x, _ = make_blobs(n_samples=10_000, centers=10, n_features=10, cluster_std=10.0, random_state=0)
a = torch.randn(1024, 1024)
times = []
for _ in range(int(sys.argv[2])):
    (a @ a).sum().item()  # torch work: its OpenMP pool is now awake
    t0 = time.perf_counter()
    KMeans(n_clusters=10, n_init=10, random_state=0).fit(x)
    times.append(time.perf_counter() - t0)
print(json.dumps(times))
"""


def run(policy: str | None, threads: int, repeats: int) -> list[float]:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(threads), str(repeats)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


BUSY = "while True: pass"


def main() -> None:
    threads, repeats = 2, 3
    print(f"KMeans(10, n_init=10) on 10,000 x 10 after a torch matmul; torch threads {threads}")
    print(f"{'other load':<12}{'OMP_WAIT_POLICY':<18}{'first s':>10}{'median s':>10}{'max s':>10}")
    for n_busy in (0, 1):
        busy = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n_busy)]
        try:
            for policy in (None, "PASSIVE", "ACTIVE"):
                t = run(policy, threads, repeats)
                label = policy or "(unset)"
                load = f"{n_busy} busy proc"
                print(
                    f"{load:<12}{label:<18}{t[0]:>10.3f}{statistics.median(t):>10.3f}"
                    f"{max(t):>10.3f}"
                )
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    main()
