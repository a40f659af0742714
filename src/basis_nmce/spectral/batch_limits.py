"""What one BASiS batch can hold: batch size, anchors and K checked against the data.

A batch of ``m`` points holds ``l`` anchors plus ``m - l`` fresh points. The affine map of a
K-dimensional embedding needs ``l >= K + 1`` anchors (Eq. 13) and every batch needs a fresh
point, so ``m >= K + 2``; the kNN graph needs ``m > n_neighbors``. A setting the data cannot
honour is refused with advice that works; where a value is capped (a batch larger than the
data, more anchors per cluster than half a batch), a :class:`~basis_nmce.errors.SettingWarning`
says so. Nothing is changed silently.

The estimator and the pipeline share these checks; ``Keys`` names the settings as the user
wrote them (``batch_size`` for :class:`~basis_nmce.BASiS`, ``basis.batch_size`` in the config).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from basis_nmce.errors import ConfigError, SettingWarning


@dataclass(frozen=True)
class Keys:
    """How the user spells each setting (estimator parameter or config key)."""

    batch_size: str = "batch_size"
    n_components: str = "n_components"
    n_anchors: str = "n_anchors"
    n_neighbors: str = "n_neighbors"
    drop_first: str = "drop_first"
    per_cluster: str = "anchors_per_cluster"


ESTIMATOR = Keys()
PIPELINE = Keys(
    "basis.batch_size",
    "graph.n_components",
    "basis.n_anchors",
    "graph.n_neighbors",
    "graph.drop_first",
    "basis.anchors_per_cluster",
)


def check_components(n_components: int, drop_first: bool, keys: Keys = ESTIMATOR) -> None:
    """Refuse K = 1 with the trivial eigenvector kept: that embedding has no structure."""
    if int(n_components) < 1:
        raise ConfigError(f"{keys.n_components} {n_components}: must be at least 1")
    if int(n_components) == 1 and not drop_first:
        raise ConfigError(
            f"{keys.n_components} 1 with {keys.drop_first} false asks for the trivial "
            "eigenvector alone (D^1/2 1, or a constant: no cluster structure); set "
            f"{keys.drop_first} true for the first non-trivial one, or {keys.n_components} >= 2"
        )


def plan_batch(
    batch_size: int,
    n: int,
    n_components: int,
    n_neighbors: int,
    n_anchors: int | None,
    per_cluster: int,
    n_clusters: int,
    keys: Keys = ESTIMATOR,
    *,
    warn_cap: bool = True,
) -> tuple[int, int]:
    """``(m, l)``: the batch size used on ``n`` training points and the number of anchors.

    ``m`` is ``batch_size``, or ``n`` with a warning when the data are fewer. ``l`` is
    ``n_anchors`` if set (within ``[K + 1, m - 1]``), else ``per_cluster`` per cluster, at
    most half a batch (a warning says when that caps it, if ``warn_cap``). Raises
    :class:`ConfigError` with a working fix when K, the anchors or the kNN graph cannot fit.
    """
    batch_size, k = int(batch_size), int(n_components)
    if batch_size < 1:
        raise ConfigError(f"{keys.batch_size} {batch_size}: must be at least 1")
    m = min(batch_size, n)
    # the smallest batch that holds K + 1 anchors and a fresh point, however l is chosen
    need = k + 2 if n_anchors is not None else 2 * (k + 1)
    how = (
        f"K + 1 = {k + 1} anchors for the affine map and a fresh point"
        if n_anchors is not None
        else f"K + 1 = {k + 1} anchors for the affine map, at most half a batch unless "
        f"{keys.n_anchors} is set"
    )
    if m < need:
        if n < need:
            most = n - 2 if n_anchors is not None else n // 2 - 1
            raise ConfigError(
                f"{keys.n_components} {k}: the {n} training points cannot hold {how}; lower "
                f"{keys.n_components} to at most {most}"
            )
        most = m - 2 if n_anchors is not None else m // 2 - 1
        raise ConfigError(
            f"{keys.n_components} {k} needs batches of at least {need} points ({how}), but "
            f"{keys.batch_size} is {m}; raise {keys.batch_size} to >= {need} or lower "
            f"{keys.n_components} to <= {most}"
        )
    if int(n_neighbors) >= m:
        more = f"raise {keys.batch_size} above {n_neighbors} or " if n > n_neighbors else ""
        raise ConfigError(
            f"{keys.n_neighbors} {n_neighbors}: a batch of {m} points (of {n} training points) "
            f"has at most {m - 1} neighbours per point; {more}lower {keys.n_neighbors} to "
            f"<= {m - 1}"
        )
    if batch_size > n:
        warnings.warn(
            f"{keys.batch_size} {batch_size} exceeds the {n} training points: every batch is "
            f"the whole training set (no sampling); set {keys.batch_size} <= {n} to choose",
            SettingWarning,
            stacklevel=3,
        )
    lo, hi = k + 1, m - 1
    if n_anchors is not None:
        if not lo <= int(n_anchors) <= hi:
            raise ConfigError(
                f"{keys.n_anchors} {n_anchors}: choose between K + 1 = {lo} (the affine map of "
                f"{k} components) and {hi} (a batch of {m} with one fresh point)"
            )
        return m, int(n_anchors)
    wanted, cap = int(per_cluster) * int(n_clusters), m // 2
    if wanted < lo:
        raise ConfigError(
            f"{keys.per_cluster} {per_cluster} x {n_clusters} clusters = {wanted} anchors, "
            f"fewer than the K + 1 = {lo} that {keys.n_components} {k} needs; raise "
            f"{keys.per_cluster} to >= {-(-lo // int(n_clusters))} or set {keys.n_anchors} "
            f"between {lo} and {hi}"
        )
    if wanted > cap and warn_cap:
        warnings.warn(
            f"{keys.per_cluster} {per_cluster} x {n_clusters} clusters = {wanted} anchors "
            f"exceed half of {keys.batch_size} {m}: using {cap}; set {keys.n_anchors} "
            f"(between {lo} and {hi}) to choose, or raise {keys.batch_size} to >= {2 * wanted}",
            SettingWarning,
            stacklevel=3,
        )
    return m, min(wanted, cap)
