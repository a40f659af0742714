"""The graph of one batch, derived from the graph the user wants (ours; the paper is silent).

A kNN graph's operator is set by its density, not by k alone: k neighbours among n points
reach as far as ``k m / n`` neighbours among m points of the same distribution (both cover the
same share ``k / n`` of the data), and the local sigma likewise. The BASiS paper builds every
batch with the target graph's k (50 of 512, about 10% of the batch), so a network trained on
such batches learns a far smoother operator than the test split's kNN-50 graph (0.5% of 10,000
points) it is scored against: on Fashion-MNIST the two operators' exact eigenvectors are d_G
1.81 apart on the same points.

``derived`` (default): the user states the graph they mean (``n_neighbors`` and
``sigma_neighbor`` over ``graph_size`` points) and each batch of m gets
``k_b = round(k m / n)`` and ``sigma_b = round(sigma m / n)``, floored at ``MIN_NEIGHBORS`` and
1 (below a few neighbours a batch graph falls apart into components and a local sigma is the
distance to the nearest point: noise), and capped at ``m - 1``. ``same_k``: the paper's literal
"the same k in every batch". The ``matched`` d_G protocol inverts the same scaling: the test
graph at the density of the batch graph that was actually used.
"""

from __future__ import annotations

from typing import Any

from basis_nmce.errors import ConfigError

__all__ = ["BATCH_GRAPH_RULES", "MIN_NEIGHBORS", "batch_graph", "matched_graph", "rescale"]

BATCH_GRAPH_RULES = ("derived", "same_k")
#: the fewest neighbours a derived batch graph keeps
MIN_NEIGHBORS = 5


def rescale(graph: dict[str, Any], factor: float, n_points: int, floor: int = 1) -> dict[str, Any]:
    """``graph`` with ``n_neighbors`` and ``sigma_neighbor`` times ``factor`` (rounded), the
    neighbours floored at ``floor`` and both capped at ``n_points - 1``; the sigma neighbour is
    at least 1 and at most the number of neighbours. Other keys are kept."""
    out = dict(graph)
    cap = max(1, n_points - 1)
    k = min(cap, max(floor, round(graph["n_neighbors"] * factor)))
    out["n_neighbors"] = k
    if graph.get("sigma_neighbor") is not None:
        out["sigma_neighbor"] = min(k, max(1, round(graph["sigma_neighbor"] * factor)))
    return out


def batch_graph(
    graph: dict[str, Any], batch_size: int, graph_size: int, rule: str = "derived"
) -> dict[str, Any]:
    """The graph every batch of ``batch_size`` points is built with (module docstring).

    ``graph``: the target graph's settings (``n_neighbors``, ``sigma_neighbor`` and the rest of
    a ``graph`` config section), meant over ``graph_size`` points.
    """
    if rule not in BATCH_GRAPH_RULES:
        raise ConfigError(
            f"basis.batch_graph: {rule!r} is not one of {list(BATCH_GRAPH_RULES)} (derived: "
            "each batch at the target graph's density; same_k: the paper's same k in every batch)"
        )
    if rule == "same_k":
        return dict(graph)
    if graph_size < 2:
        raise ConfigError(f"basis.graph_size: the target graph needs >= 2 points, got {graph_size}")
    return rescale(graph, batch_size / graph_size, batch_size, floor=MIN_NEIGHBORS)


def matched_graph(batch: dict[str, Any], batch_size: int, n_test: int) -> dict[str, Any]:
    """The test graph at the density of the batch graph ``batch`` (the ``matched`` protocol):
    its k and sigma neighbour times ``n_test / batch_size``."""
    return rescale(batch, n_test / batch_size, n_test)
