"""BASiS: Batch Aligned Spectral Embedding Space (Algorithm 1).

Every iteration draws ``m - l`` fresh points, adds the ``l`` anchors, computes the batch's
exact eigenvectors, maps them onto the fixed reference with the affine transform fitted on the
anchors (Eq. 13, least squares inside RANSAC), and takes one MSE step (Eq. 15) of a network
regressing the aligned coordinates. The batch targets do not depend on the network, so a
background thread computes the next ones while the current step runs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import multiprocessing
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from basis_nmce.errors import BasisNmceError, ConfigError, DataError
from basis_nmce.graph.laplacian import batch_spectral_embedding
from basis_nmce.io import (
    load_checkpoint,
    save_checkpoint,
)
from basis_nmce.models import MLP, resolve_device
from basis_nmce.spectral import batch_limits
from basis_nmce.spectral.align import apply_affine, ransac_affine
from basis_nmce.spectral.anchors import ANCHOR_STRATEGIES, Reference, build_reference, rows
from basis_nmce.spectral.estimator import (
    SpectralEstimator,
    check_array,
    progress_bar,
    write_history,
)

log = logging.getLogger(__name__)

LOG_FIELDS = (
    "step",
    "loss",
    "lr",
    "inlier_ratio",
    "fallback",
    "residual",
    "heldout_error",
    "condition",
    "rejected",
    "seconds",
)
#: below this median RANSAC inlier ratio the alignment is suspect, and fit() says so
LOW_INLIER_RATIO = 0.5
TOLERANCE_MODES = ("relative", "absolute")
TRACE_BATCHES = 20  # batches whose anchor coordinates are kept (paper Fig. 3)


@dataclass
class BatchTarget:
    """One batch of Algorithm 1, lines 5-9: indices and aligned exact coordinates."""

    index: np.ndarray
    target: torch.Tensor
    inlier_ratio: float
    residual: float
    condition: float
    rejected: int
    fallback: bool = False
    heldout_error: float = math.nan
    translation: np.ndarray | None = None  # (K,) the affine map's offset b (Eq. 13)
    anchors_raw: np.ndarray | None = None  # (l, K) batch eigenvectors of the anchors
    anchors_aligned: np.ndarray | None = None  # (l, K) the same after the affine map


class AlignmentGuard:
    """Rejects affine maps far beyond the running typical residual or condition number.

    A batch whose anchors' embedding is near-degenerate yields a map that blows its targets
    up (SEEDS.md: loss from ~2 to ~4e5). Such a batch is redrawn and counted.
    """

    def __init__(self, factor: float = 10.0, window: int = 50, max_condition: float = 1e4):
        self.factor, self.max_condition = factor, max_condition
        self.residuals: deque[float] = deque(maxlen=window)
        self.conditions: deque[float] = deque(maxlen=window)

    def state(self) -> list[tuple[float, float]]:
        """The running window, as (residual, condition) pairs (checkpoints, worker results)."""
        return list(zip(self.residuals, self.conditions, strict=True))

    def restore(self, state: list[tuple[float, float]]) -> None:
        self.residuals.clear()
        self.conditions.clear()
        for r, c in state:
            self.residuals.append(r)
            self.conditions.append(c)

    def accept(self, residual: float, condition: float) -> bool:
        if not (math.isfinite(residual) and math.isfinite(condition)):
            return False
        if condition > self.max_condition:
            return False
        if len(self.residuals) >= 5:
            typical_r = float(np.median(self.residuals))
            typical_c = float(np.median(self.conditions))
            if residual > self.factor * max(typical_r, 1e-3) or condition > self.factor * typical_c:
                return False
        self.residuals.append(residual)
        self.conditions.append(condition)
        return True


#: runs with at least this many steps to go compute their targets in a forked process
PROCESS_MIN_STEPS = 200
_FORKED: tuple[Any, Any, Any] | None = None  # (estimator, X, reference) for the forked worker
_THREAD_LIMITS: Any = None  # the forked worker's BLAS thread limit, kept alive


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _init_target_worker(threads: int) -> None:
    """Threads of the forked target worker: the half of the cores the step leaves it."""
    from threadpoolctl import threadpool_limits

    global _THREAD_LIMITS
    torch.set_num_threads(threads)
    _THREAD_LIMITS = threadpool_limits(threads)


def _forked_target(step: int, m: int) -> tuple[BatchTarget, list[tuple[float, float]]]:
    """One batch's targets in the worker, with the alignment guard's state after it."""
    est, x, ref = _FORKED
    bt = est._batch_target(x, ref, step, m)
    return bt, est._guard.state()


class BASiS(SpectralEstimator):
    """Learn the leading Laplacian eigenvectors from aligned mini-batches (scikit-learn API).

    Defaults are the paper's (Sec. 5.2, 7.3.3) where it has one: kNN 50, sigma from the 7th
    neighbour, L_N, batch 512, Adam 1e-4, 1000 iterations, MLP 256-512-512-256-K; RANSAC 100
    hypotheses of 20 anchors. ``n_anchors`` defaults to 25 per cluster (at most half a batch).

    Ours, where the paper is silent or its literal setting fails at K = 10 (README, "BASiS"):

    * ``batch_graph``: ``derived`` builds each batch's graph at the density of the graph the
      user means (``n_neighbors`` and ``sigma_neighbor`` over ``graph_size`` points, default
      the ``fit`` data; :mod:`basis_nmce.graph.batch`); ``same_k`` is the paper's literal.
    * ``ransac_tolerance_mode``: ``relative`` (default) takes ``ransac_tolerance`` as a fraction
      of the reference anchors' RMS spread, so the inlier test means the same for any K and
      batch size; ``absolute`` with ``ransac_tolerance=0.1`` is the paper's. A refit needs
      ``ransac_min_inliers`` inliers (default 4 (K + 1)), else the map is fitted on all anchors
      (counted as ``fallback`` in the log).
    * With ``drop_first=False`` the trivial eigenvector (column 0) is aligned by a scale alone
      and the others by an affine map of the others: ``[phi, 1]`` with a near-constant column
      is ill-posed (:mod:`basis_nmce.spectral.align`).
    * ``diffusion_time`` t (Sec. 5.3): learn diffusion-map coordinates instead of eigenvectors:
      each batch's exact ``(1 - lambda)^t psi`` of its random walk ``P = D^-1 W`` (set
      ``laplacian='rw'``; :func:`~basis_nmce.graph.laplacian.batch_spectral_embedding`),
      aligned on the anchors like eigenvectors (the affine family covers the eigenvalue scale).
    * ``recenter``: the mean translation of the batches' maps, ``offset_``, is subtracted by
      :meth:`transform` (see :meth:`fit`). ``False`` gives the paper's output.

    ``prefetch``: the next batch's exact targets are computed while the network steps, in a
    forked worker process (``auto`` on CPU for 200 steps or more; ``process``), a thread
    (``auto`` otherwise; ``thread``) or not at all (``False``); the targets, and so the fit,
    are the same either way.
    """

    #: columns of the per-step training log (``history_``, ``log.csv``)
    LOG_FIELDS: ClassVar[tuple[str, ...]] = LOG_FIELDS

    def __init__(
        self,
        n_components: int = 2,
        n_neighbors: int = 50,
        sigma_neighbor: int = 7,
        laplacian: str = "sym",
        batch_size: int = 512,
        n_anchors: int | None = None,
        anchor_strategy: str = "kmeans",
        n_iter: int = 1000,
        lr: float = 1e-4,
        hidden: tuple[int, ...] = (256, 512, 512, 256),
        random_state: int | None = None,
        device: str = "auto",
        *,
        sigma_mode: str = "local",
        sigma_value: float | None = None,
        symmetrize: str | None = None,
        kernel: str = "paper",
        drop_first: bool = False,
        diffusion_time: int | None = None,
        n_clusters: int | None = None,
        ransac_hypotheses: int = 100,
        ransac_sample: int = 20,
        ransac_tolerance: float = 0.3,
        ransac_tolerance_mode: str = "relative",
        ransac_min_inliers: int | None = None,
        batch_graph: str = "derived",
        graph_size: int | None = None,
        lr_decay: float = 1.0,
        recenter: bool = True,
        checkpoint_every: int = 100,
        prefetch: bool | str = "auto",
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.sigma_neighbor = sigma_neighbor
        self.laplacian = laplacian
        self.batch_size = batch_size
        self.n_anchors = n_anchors
        self.anchor_strategy = anchor_strategy
        self.n_iter = n_iter
        self.lr = lr
        self.hidden = hidden
        self.random_state = random_state
        self.device = device
        self.sigma_mode = sigma_mode
        self.sigma_value = sigma_value
        self.symmetrize = symmetrize
        self.kernel = kernel
        self.drop_first = drop_first
        self.diffusion_time = diffusion_time
        self.n_clusters = n_clusters
        self.ransac_hypotheses = ransac_hypotheses
        self.ransac_sample = ransac_sample
        self.ransac_tolerance = ransac_tolerance
        self.ransac_tolerance_mode = ransac_tolerance_mode
        self.ransac_min_inliers = ransac_min_inliers
        self.batch_graph = batch_graph
        self.graph_size = graph_size
        self.lr_decay = lr_decay
        self.recenter = recenter
        self.checkpoint_every = checkpoint_every
        self.prefetch = prefetch
        self.verbose = verbose

    @property
    def graph_kwargs(self) -> dict[str, Any]:
        """The graph the user means, with ``diffusion_time`` (BASiS can learn diffusion-map
        coordinates, Sec. 5.3); batches use :meth:`batch_graph_kwargs`."""
        return {**super().graph_kwargs, "diffusion_time": self.diffusion_time}

    def _check_params(self, n: int) -> tuple[int, int]:
        if self.anchor_strategy not in ANCHOR_STRATEGIES:
            raise ConfigError(
                f"anchor_strategy {self.anchor_strategy!r}: choose one of {', '.join(ANCHOR_STRATEGIES)}"
            )
        if self.ransac_tolerance_mode not in TOLERANCE_MODES:
            raise ConfigError(
                f"ransac_tolerance_mode {self.ransac_tolerance_mode!r}: choose one of "
                f"{', '.join(TOLERANCE_MODES)}"
            )
        # Refuse what the data cannot honour, warn where a batch is capped (batch_limits).
        batch_limits.check_components(self.n_components, self.drop_first)
        return batch_limits.plan_batch(  # anchors by default: 25 per cluster, <= half a batch
            self.batch_size,
            n,
            self.n_components,
            self.batch_graph_kwargs(n)["n_neighbors"],  # the batch graph's k
            self.n_anchors,
            25,
            self._n_clusters(),
            warn_cap=False,
        )

    # ----------------------------------------------------------- batch targets
    def _batch_target(self, x, ref: Reference, step: int, m: int) -> BatchTarget:
        """Algorithm 1 lines 5-9, redrawing batches the guard rejects."""
        anchors = ref.anchor_index
        l = len(anchors)
        pool_size = len(x) - l
        dst = torch.as_tensor(ref.anchor_embedding, dtype=torch.float64)
        for attempt in range(50):
            rng = np.random.default_rng([self._seed(), step, attempt])
            fresh = rng.choice(pool_size, size=m - l, replace=False)
            fresh = _skip_anchors(fresh, self._sorted_anchors)
            index = np.concatenate([anchors, fresh])
            xb = rows(x, index, self.device_)
            phi, _ = batch_spectral_embedding(xb, self.n_components, **self.batch_graph_)
            gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
            res = ransac_affine(
                phi[:l].double().cpu(),
                dst,
                n_hypotheses=self.ransac_hypotheses,
                sample_size=self.ransac_sample,
                tolerance=self.ransac_tolerance,
                relative=self.ransac_tolerance_mode == "relative",
                min_inliers=self.ransac_min_inliers,
                trivial_first=not self.drop_first,
                generator=gen,
            )
            if self._guard.accept(res.residual, res.condition_number):
                target = apply_affine(res.transform.to(phi.device, torch.float64), phi.double())
                traced = step < TRACE_BATCHES
                return BatchTarget(
                    index=index,
                    target=target.float(),
                    inlier_ratio=float(res.inlier_ratio),
                    residual=float(res.residual),
                    condition=float(res.condition_number),
                    rejected=attempt,
                    fallback=res.fallback,
                    heldout_error=float(res.heldout_error),
                    translation=res.transform[:, -1].double().cpu().numpy(),
                    anchors_raw=phi[:l].float().cpu().numpy() if traced else None,
                    anchors_aligned=target[:l].float().cpu().numpy() if traced else None,
                )
        raise BasisNmceError(
            f"step {step}: 50 batches in a row gave ill-conditioned anchor alignments; the anchors "
            "do not span the embedding: raise n_anchors or use anchor_strategy 'kmeans'"
        )

    def _prefetch_mode(self, steps: int) -> str | None:
        """How the next batch's targets are computed during the current step: ``process``,
        ``thread`` or ``None`` (in series).

        ``auto`` (default): a forked worker process on CPU for runs of at least
        ``PROCESS_MIN_STEPS`` steps, a thread otherwise (CUDA, short runs, platforms without
        ``fork``). A thread shares the interpreter lock with the training step, and the
        target work holds it for long stretches (ARPACK's reverse-communication loop: ~200
        Python-level iterations for a sparse 512-point batch graph); a process does not.
        """
        mode = self.prefetch
        if mode is False or mode is None or mode == "none":
            return None
        if mode == "process" and not _can_fork():
            raise ConfigError(
                "prefetch='process' needs the 'fork' start method (Linux); use 'thread'"
            )
        if mode in ("auto", True):
            cpu = getattr(self, "device_", torch.device("cpu")).type == "cpu"
            use_process = cpu and steps >= PROCESS_MIN_STEPS and _can_fork()
            return "process" if use_process else "thread"
        if mode not in ("process", "thread"):
            raise ConfigError(
                f"prefetch {mode!r}: choose 'auto', 'process', 'thread' or False (in series)"
            )
        return mode

    @contextlib.contextmanager
    def _split_threads(self, mode: str | None) -> Iterator[None]:
        """On CPU with prefetching, give the step and the target worker half the cores each.

        torch's and BLAS's thread pools are process-wide, so with two busy Python threads each
        op would fight for all the cores. Halving both pools turns that into task parallelism:
        on 2 cores (Fashion-MNIST, batch 512, K 10) an iteration took 66 ms with 2 threads in
        series, 40 ms prefetching with 2 threads, and 24 ms prefetching with 1 thread each
        (benchmarks/basis_iteration.py). A worker process takes the other half likewise.
        """
        if self.device_.type != "cpu" or mode is None:
            yield
            return
        from threadpoolctl import threadpool_limits

        before = torch.get_num_threads()
        half = max(1, before // 2)
        torch.set_num_threads(half)
        try:
            with threadpool_limits(half):
                yield
        finally:
            torch.set_num_threads(before)

    def _targets(self, x, ref: Reference, start: int, m: int) -> Iterator[BatchTarget]:
        """Targets for steps ``start..n_iter-1``, computed one step ahead when prefetching."""
        mode = self._prefetch_mode(self.n_iter - start)
        if mode is None:
            for step in range(start, self.n_iter):
                yield self._batch_target(x, ref, step, m)
            return
        if mode == "thread":
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="basis-targets")
            job = functools.partial(self._batch_target, x, ref)
        else:
            global _FORKED
            _FORKED = (self, x, ref)  # inherited by the worker at fork: nothing is pickled
            pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_init_target_worker,
                initargs=(max(1, torch.get_num_threads()),),
            )
            job = _forked_target
        try:
            with pool:
                pending: deque[Future] = deque()
                nxt = start
                while nxt < min(start + 2, self.n_iter):
                    pending.append(pool.submit(job, nxt, m))
                    nxt += 1
                while pending:
                    item = pending.popleft().result()
                    if mode == "process":  # the guard evolves in the worker
                        item, guard = item
                        self._guard.restore(guard)
                    if nxt < self.n_iter:
                        pending.append(pool.submit(job, nxt, m))
                        nxt += 1
                    yield item
        finally:
            if mode == "process":
                _FORKED = None

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X,
        y=None,
        *,
        reference: Reference | None = None,
        checkpoint: str | Path | None = None,
        log_csv: str | Path | None = None,
    ):
        """Train on ``X`` (n, d); ``y`` is used only by ``anchor_strategy='labels'``.

        ``reference``: a precomputed :class:`~basis_nmce.spectral.anchors.Reference` (the pipeline's
        ``basis_reference`` stage); by default it is built here. ``checkpoint``: a file that is
        written every ``checkpoint_every`` steps and, when it exists and was written by the same
        settings on the same data, resumed from. ``log_csv``: the per-step training log.

        ``recenter`` (why the mean translation estimates an offset): every batch's exact
        eigenvectors, like the population eigenfunctions ``g``, are orthogonal to the trivial
        eigenvector (``sum_i sqrt(d_i) phi_i = 0`` for L_N, ``sum_i d_i psi_i = 0`` for rw), in
        the batch's own sample: a batch embeds as ``R_b (g - c_b)``, ``c_b`` the (degree-
        weighted) sample mean of ``g`` that the constraint removes, and the reference as
        ``R_r (g - c_r)``. The map of a batch onto the reference then translates by
        ``b = R_r (c_b - c_r)``; the network learns ``R_r (g - c_r)``, and subtracting the mean
        ``b`` over the batches leaves ``R_r (g - E[c_b])``. The weighting cancels: only the
        batches and the reference obeying the same constraint matters. The anchors are in every
        batch and in the reference, so their part of ``c_r`` stays; what goes is the sampling
        offset of the reference's ``m - l`` other points.
        """
        x = check_array(X, "X")
        n = len(x)
        m, n_anchors = self._check_params(n)
        self.device_ = resolve_device(self.device)
        torch.manual_seed(self._seed())
        self.n_features_in_ = x.shape[1]
        self.batch_graph_ = self.batch_graph_kwargs(n)
        if reference is None:
            reference = build_reference(
                x,
                self.n_components,
                batch_size=m,
                n_anchors=n_anchors,
                strategy=self.anchor_strategy,
                n_clusters=self._n_clusters(),
                labels=None if y is None else np.asarray(y),
                graph=self.batch_graph_,
                seed=self._seed(),
            )
        ref = _check_reference(reference, n, m, self.n_components)
        self.reference_ = ref
        self.eigenvalues_ = ref.eigenvalues
        self._sorted_anchors = np.sort(ref.anchor_index)
        self._guard = AlignmentGuard()
        self.model_ = MLP(self.n_features_in_, self.n_components, self.hidden).to(self.device_)
        # fused: one kernel for all parameters (0.9 of the 11 ms a 512-point step takes on
        # one CPU thread, benchmarks/basis_iteration.py)
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr, fused=True)
        sched = torch.optim.lr_scheduler.ExponentialLR(
            opt, gamma=self.lr_decay ** (1 / max(self.n_iter, 1))
        )
        start, history, trace = 0, [], []
        self._offset_sum = np.zeros(self.n_components)
        fingerprint = self._fingerprint(x, ref)
        ckpt = load_checkpoint(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
            log.warning("%s was written by other settings or data; starting afresh", checkpoint)
            ckpt = None
        if ckpt is not None:
            self.model_.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            sched.load_state_dict(ckpt["scheduler"])
            start, history = int(ckpt["step"]), list(ckpt["history"])
            trace = [(np.asarray(a), np.asarray(b)) for a, b in ckpt["trace"]]
            self._offset_sum = np.asarray(ckpt["offset_sum"], dtype=np.float64).copy()
            self._guard.restore(ckpt["guard"])
            log.info("resuming from %s at step %d", checkpoint, start)
        self.resumed_from_ = start
        self.model_.train()
        with self._split_threads(self._prefetch_mode(self.n_iter - start)):
            history, trace = self._train(
                x, ref, m, start, history, trace, opt, sched, (checkpoint, fingerprint)
            )
        self.history_ = history
        self.anchor_trace_ = trace
        self.n_iter_ = len(history)
        self.rejected_batches_ = int(sum(h["rejected"] for h in history))
        self.fallback_batches_ = int(sum(h["fallback"] for h in history))
        self.median_inlier_ratio_ = (
            float(np.median([h["inlier_ratio"] for h in history])) if history else math.nan
        )
        if self.median_inlier_ratio_ < LOW_INLIER_RATIO:
            log.warning(
                "BASiS: median RANSAC inlier ratio %.3f < %.1f (%d of %d batches fell back to "
                "all anchors): the anchors' alignment is unreliable. With "
                "ransac_tolerance_mode='absolute' the tolerance must suit K and the coordinates' "
                "scale; 'relative' (default) does",
                self.median_inlier_ratio_,
                LOW_INLIER_RATIO,
                self.fallback_batches_,
                len(history),
            )
        self.offset_ = (
            self._offset_sum / max(len(history), 1)
            if self.recenter
            else np.zeros(self.n_components)
        )
        if log_csv:
            write_history(log_csv, history, LOG_FIELDS)
        self.model_.eval()
        self._fit_kmeans(x)
        return self

    def _train(self, x, ref, m, start, history, trace, opt, sched, saving):
        """Algorithm 1 lines 4-11 from step ``start``: one MSE step per aligned batch."""
        checkpoint, fingerprint = saving
        progress = progress_bar("BASiS", self.n_iter, start, self.verbose)
        t0 = time.perf_counter()
        for step, bt in enumerate(self._targets(x, ref, start, m), start=start):
            xb = rows(x, bt.index, self.device_)
            target = bt.target.to(self.device_)
            self._offset_sum += bt.translation
            loss = torch.mean(torch.sum((self.model_(xb) - target) ** 2, dim=1))  # Eq. 15
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            lr_now = float(opt.param_groups[0]["lr"])
            sched.step()
            if bt.anchors_raw is not None:
                trace.append((bt.anchors_raw, bt.anchors_aligned))
            history.append(
                {
                    "step": step + 1,
                    "loss": float(loss.detach()),
                    "lr": lr_now,
                    "inlier_ratio": bt.inlier_ratio,
                    "fallback": int(bt.fallback),
                    "residual": bt.residual,
                    "heldout_error": bt.heldout_error,
                    "condition": bt.condition,
                    "rejected": bt.rejected,
                    "seconds": time.perf_counter() - t0,
                }
            )
            progress.update(1)
            if self.verbose and (step + 1) % 50 == 0:
                progress.set_postfix(
                    loss=f"{history[-1]['loss']:.4g}", inliers=f"{bt.inlier_ratio:.2f}"
                )
            if checkpoint and ((step + 1) % self.checkpoint_every == 0 or step + 1 == self.n_iter):
                save_checkpoint(
                    checkpoint,
                    {
                        "model": self.model_.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "step": step + 1,
                        "history": history,
                        "fingerprint": fingerprint,
                        "trace": [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in trace],
                        "offset_sum": torch.from_numpy(self._offset_sum.copy()),
                        "guard": self._guard.state(),
                    },
                )
        progress.close()
        return history, trace

    def _fingerprint(self, x, ref: Reference) -> str:
        """What a checkpoint must match to be resumed: settings, data shape, anchors."""
        import hashlib
        import json

        params = {
            k: v for k, v in self.get_params().items() if k not in ("verbose", "device", "prefetch")
        }
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(repr((tuple(x.shape), str(x.dtype))).encode())
        h.update(np.ascontiguousarray(np.asarray(x[:64], dtype=np.float32)).tobytes())
        h.update(np.ascontiguousarray(ref.reference_index).tobytes())
        h.update(np.ascontiguousarray(ref.anchor_embedding, dtype=np.float64).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------- estimator hooks
    def _head(self, out: torch.Tensor) -> torch.Tensor:
        """The network output less ``offset_`` (``recenter``, see :meth:`fit`)."""
        offset = getattr(self, "offset_", None)
        return out if offset is None else out - torch.as_tensor(offset, dtype=out.dtype)

    def _extra_meta(self) -> dict[str, Any]:
        return {
            "eigenvalues": np.asarray(self.eigenvalues_).tolist(),
            "offset": np.asarray(getattr(self, "offset_", np.zeros(self.n_components))).tolist(),
            "rejected_batches": getattr(self, "rejected_batches_", None),
        }

    def _set_extra_meta(self, meta: dict[str, Any]) -> None:
        if "eigenvalues" not in meta:
            raise KeyError("eigenvalues")
        self.eigenvalues_ = np.asarray(meta["eigenvalues"])
        self.offset_ = np.asarray(meta.get("offset", np.zeros(self.n_components)), dtype=np.float64)
        self.rejected_batches_ = meta.get("rejected_batches")


def _skip_anchors(candidates: np.ndarray, sorted_anchors: np.ndarray) -> np.ndarray:
    """Shift pool positions past the anchor rows so ``candidates`` index non-anchor rows."""
    # A position p in the pool maps to row r with r - #(anchors <= r) == p; solve iteratively.
    rows_ = candidates.copy()
    while True:
        shifted = candidates + np.searchsorted(sorted_anchors, rows_, side="right")
        if np.array_equal(shifted, rows_):
            return rows_
        rows_ = shifted


def _check_reference(ref: Reference, n: int, m: int, n_components: int) -> Reference:
    """A reference built elsewhere must fit this data and these settings."""
    idx = np.asarray(ref.reference_index)
    if ref.anchor_embedding.shape[1] != n_components:
        raise ConfigError(
            f"the reference embedding has {ref.anchor_embedding.shape[1]} components but "
            f"n_components is {n_components}; rebuild the reference (stage basis_reference)"
        )
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise DataError(
            f"the reference indexes rows up to {idx.max()} but the training set has {n} rows; "
            "rebuild the reference (stage basis_reference) on these features"
        )
    if len(ref.anchor_index) >= m:
        raise ConfigError(
            f"{len(ref.anchor_index)} anchors do not leave room for fresh points in a batch of {m}"
        )
    return ref
