"""Independent restarts of a training stage, kept by the constraint functional D (NMCE Sec. 3).

NMCE's identifiability argument (Sec. 3): a constraint functional ``D(f)`` is 0 exactly for the
cluster assignments ``f`` that keep every point and its augmentations in one cluster, and every
such ``f`` with the right number of clusters is the correct clustering. A run that ends in a
poor local minimum breaks that constraint somewhere: on the double spiral it keeps label flips
("walls") along an arm, and the points at a wall have augmented copies across the cluster
boundary. :func:`assignment_violation` measures ``D`` for the hard assignments on the training
data, without labels; :func:`train_restarts` trains independent restarts (in parallel worker
processes when asked) and keeps, among those that use the most clusters (a collapsed run puts
everything in one cluster and has ``D = 0`` trivially), the one with the smallest ``D`` (ties:
the earlier restart), as k-means keeps the best of its ``n_init`` starts by its own objective.
It stops at the first restart that uses every cluster with ``D = 0``.

Restart ``k`` uses seed ``config.seed + k`` for the network's initialisation and for every
generator of the stage, so restart 0 is the run that ``restarts=1`` gives.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor

from basis_nmce.errors import ConfigError, TrainingError
from basis_nmce.nmce.augment import Augmenter
from basis_nmce.nmce.constraint import Violation, assignment_violation
from basis_nmce.nmce.networks import NMCENet
from basis_nmce.nmce.train import TrainConfig, TrainResult

__all__ = [
    "Restart",
    "Violation",
    "assignment_violation",
    "kept_restart",
    "restart_checkpoint",
    "train_restarts",
]

log = logging.getLogger(__name__)

StageFn = Callable[..., TrainResult]
ModelFactory = Callable[..., NMCENet]


@dataclass
class Restart:
    """One restart: its seed, ``D`` of its final model and the number of clusters it uses (on
    the sampled points) out of the model's ``n_clusters``, what its stage returned, and (with
    ``keep_states``) its final ``state_dict``. A restart stopped by a :class:`TrainingError`
    (collapse, non-finite values) counts as failed: ``D`` 1, no cluster used, ``error`` set."""

    index: int
    seed: int
    violation: float
    clusters_used: int
    n_clusters: int
    result: TrainResult
    state: dict[str, Tensor] | None = None
    error: str | None = None  # why the restart stopped (collapse, non-finite values), if it did

    @property
    def final_loss(self) -> float:
        loss = self.result.last.get("loss")
        return float("inf") if loss is None else float(loss)

    @property
    def rank_key(self) -> tuple[int, float, int]:
        """Sort key of :func:`train_restarts`: most clusters used, then smallest ``D``, then
        restart order."""
        return (-self.clusters_used, self.violation, self.index)

    @property
    def satisfied(self) -> bool:
        """``D = 0`` with every cluster used: no later restart can be kept over this one."""
        return self.violation == 0.0 and self.clusters_used == self.n_clusters


def kept_restart(runs: list[Restart]) -> Restart:
    """The restart :func:`train_restarts` keeps: the smallest :attr:`Restart.rank_key`."""
    return min(runs, key=lambda r: r.rank_key)


def restart_checkpoint(checkpoint: str | Path | None, index: int, restarts: int) -> Path | None:
    """Restart ``index``'s checkpoint: ``checkpoint`` itself for a single run, else
    ``<stem>.restart<index><suffix>`` beside it."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    if restarts == 1:
        return path
    return path.with_name(f"{path.stem}.restart{index}{path.suffix}")


def _run_one(
    index: int,
    stage_fn: StageFn,
    make_model: ModelFactory,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    checkpoint: Path | None,
    threads: int | None,
    views: int,
    points: int,
) -> Restart:
    if threads is not None:
        torch.set_num_threads(threads)
    model = make_model(seed=config.seed)
    try:
        result = stage_fn(model, x, augmenter, config, checkpoint=checkpoint)
    except TrainingError as e:  # a collapsed restart is a failed attempt, not the end
        log.warning("restart %d (seed %d) failed: %s", index, config.seed, e)
        failed = TrainResult(stage=stage_fn.__name__, steps=0)
        return Restart(index, config.seed, 1.0, 0, model.n_clusters, failed, None, str(e))
    d, used = assignment_violation(
        model, x, augmenter, views=views, max_points=points, seed=config.seed
    )
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return Restart(index, config.seed, d, used, model.n_clusters, result, state)


def train_restarts(
    stage_fn: StageFn,
    make_model: ModelFactory,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    *,
    restarts: int = 1,
    workers: int = 1,
    threads: int | None = None,
    checkpoint: str | Path | None = None,
    violation_views: int = 4,
    violation_points: int = 20_000,
    keep_states: bool = False,
) -> tuple[NMCENet, list[Restart]]:
    """Train up to ``restarts`` independent runs of ``stage_fn`` (e.g. ``train_joint``) and
    return the model kept (:attr:`Restart.rank_key`: most clusters used, then the smallest
    :func:`assignment_violation` on ``x``, then the earliest) and the summary of every restart
    that ran (in restart order; with ``keep_states`` each holds its final ``state_dict``).

    Restarts are taken in order, and none after the first that uses every cluster with
    ``D = 0``: no later one could be kept over it. So the result does not depend on
    ``workers``; with ``workers > 1`` a later restart already running when that happens ends
    unused.

    ``make_model(seed=s)`` builds restart's fresh model (for a stage that starts from a trained
    model, a factory that loads it). ``workers > 1`` runs the restarts in that many spawned
    processes with ``threads`` torch threads each (default: this process's count divided by
    ``workers``); ``stage_fn``, ``make_model`` and ``augmenter`` must then be picklable
    (module-level functions, ``functools.partial``). Checkpoints: :func:`restart_checkpoint`.
    """
    if restarts < 1 or workers < 1:
        raise ConfigError(f"restarts and workers must be >= 1, got {restarts}, {workers}")
    workers = min(workers, restarts)
    if threads is None and workers > 1:
        threads = max(1, torch.get_num_threads() // workers)
    jobs = [
        (
            k,
            stage_fn,
            make_model,
            x,
            augmenter,
            replace(config, seed=config.seed + k),
            restart_checkpoint(checkpoint, k, restarts),
            threads,
            violation_views,
            violation_points,
        )
        for k in range(restarts)
    ]
    t0 = time.perf_counter()
    runs: list[Restart] = []
    if workers == 1:
        for job in jobs:
            runs.append(_run_one(*job))
            if runs[-1].satisfied:
                break
    else:
        ctx = multiprocessing.get_context("spawn")  # fork after OpenMP has started can hang
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = [pool.submit(_run_one, *job) for job in jobs]
            for future in futures:  # in restart order, so the kept one is deterministic
                runs.append(future.result())
                if runs[-1].satisfied:
                    for later in futures[len(runs) :]:
                        later.cancel()  # not started yet; running ones end with the pool
                    break
    best = kept_restart(runs)
    if best.error is not None:  # every restart failed
        raise TrainingError(f"all {len(runs)} restarts failed; the first: {runs[0].error}")
    for r in runs:
        log.info(
            "restart %d (seed %d): D %.2e, %d clusters used, final loss %.4g%s",
            r.index,
            r.seed,
            r.violation,
            r.clusters_used,
            r.final_loss,
            "  <- kept" if r is best else "",
        )
    log.info("%d restarts on %d worker(s) in %.1fs", restarts, workers, time.perf_counter() - t0)
    model = make_model(seed=best.seed)
    model.load_state_dict(best.state)
    model.eval()
    if not keep_states:
        for r in runs:
            r.state = None
    return model, runs
