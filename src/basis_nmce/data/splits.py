"""Seeded hold-out split and subsampling; indices come sorted, so rows keep the source order."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .spec import rng_for


def holdout_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (train, test) with ``round(n * fraction)`` test points (at least
    one of each). The same ``(n, fraction, seed)`` always gives the same split."""
    if n < 2:
        raise DataError(f"a hold-out split needs at least 2 points, the data has {n}")
    n_test = min(max(round(n * fraction), 1), n - 1)
    perm = rng_for(seed, "split").permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def subsample_indices(n: int, limit: int | None, seed: int, stream: str) -> np.ndarray | None:
    """Sorted indices of a seeded subset of ``limit`` of ``n`` rows, or None to keep all."""
    if limit is None or n <= limit:
        return None
    return np.sort(rng_for(seed, stream).choice(n, size=limit, replace=False))
