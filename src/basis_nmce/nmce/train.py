"""The NMCE training stages as library functions on tensors (NMCE Sec. 3.4-3.6, Appendix B).

* :func:`train_tcr` - stage 1, Total Coding Rate ``-R(Z) + lambda D`` (Eq. 5).
* :func:`train_cluster` - stage 2: backbone and pre-feature frozen, feature head
  re-initialised, cluster head (fresh, with its own optimiser) trained with Gumbel-softmax
  memberships on the NMCE objective ``sum_j R(Z_j) - R(Z) + lambda D`` (Eq. 4).
* :func:`train_finetune` - stage 3: every parameter, NMCE objective.
* :func:`train_joint` - the NMCE objective from the start (the paper's double spiral, Sec. 4.1).

Every step takes the next batch of an epoch-wise shuffle (each sample once per epoch; the whole
set when ``batch_size >= n``), makes two augmented views with the given augmenter, runs them
through the network as one batch of ``2 m`` (as the authors' code) and applies the objective of
:mod:`basis_nmce.nmce.coding_rate` (``D = -mean cos(z, z')``; in stages 2-4 features are averaged over
the views and renormalised, memberships averaged, both inside ``nmce_loss``).

Randomness comes only from generators seeded by ``config.seed`` (batches, augmentations,
Gumbel noise, head re-initialisation), so a run is deterministic given the seed and the
initial model. With ``checkpoint`` set, the full state (model, optimisers, schedules,
generators, history) is written every ``checkpoint_every`` steps and at the end with
:func:`basis_nmce.io.save_checkpoint` (loadable with ``weights_only=True``); calling the same
function again with the same path resumes and ends after the same number of steps with the
same result as an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.io import load_checkpoint, save_checkpoint
from basis_nmce.models import resolve_device
from basis_nmce.nmce.augment import Augmenter
from basis_nmce.nmce.coding_rate import (
    gumbel_softmax_memberships,
    nmce_loss,
    total_coding_rate_loss,
)
from basis_nmce.nmce.constraint import assignment_violation
from basis_nmce.nmce.guards import CollapseMonitor, check_finite, effective_rank
from basis_nmce.nmce.networks import NMCENet
from basis_nmce.nmce.optim import build_optimizer, build_scheduler
from basis_nmce.nmce.warm_start import fit_cluster_head, kmeans_labels_of_features

__all__ = [
    "TrainConfig",
    "TrainResult",
    "embed",
    "embed_and_predict",
    "predict_clusters",
    "train_cluster",
    "train_finetune",
    "train_joint",
    "train_tcr",
]

Stage = Literal["tcr", "cluster", "finetune", "joint"]
Callback = Callable[[dict[str, Any]], None]

# Fields that do not change the result: a checkpoint may be resumed with other values.
_NON_RESULT_FIELDS = ("log_every", "checkpoint_every", "device")


@dataclass
class TrainConfig:
    """Settings of one training stage.

    ``eps`` is the paper's epsilon (Eq. 2); the authors' code's ``--eps`` is its square
    (``coding_rate.eps_from_authors_code``). ``lam``: weight of the invariance term D. ``tau``:
    Gumbel-softmax temperature (the code: 1 for images, 0.2 for the toy). ``tcr_mode``:
    ``mean_of_views`` (CIFAR code: mean of each view's rate) or ``view_mean`` (COIL code: rate
    of the renormalised view mean). ``cluster_lr`` / ``cluster_weight_decay``: the cluster
    head's own optimiser (None: same as ``lr`` / ``weight_decay``). ``optimizer``: ``adam``,
    ``adamw``, ``sgd`` or ``lars`` (with ``base_batch_size`` the lr is scaled by
    ``batch_size / base_batch_size``). ``schedule``: ``constant`` or ``cosine``, both with
    ``warmup_steps`` of linear warm-up. ``cluster_head_init``: how a stage that starts the
    cluster head (``joint``, ``cluster``) initialises it - ``default`` (PyTorch's, as the
    authors' code), ``zeros`` (uniform memberships at step 0, so the first partition is
    learnt rather than a random hyperplane of the untrained trunk) or ``kmeans`` (stage 2
    only: fitted to k-means of the stage-1 features; :mod:`~basis_nmce.nmce.warm_start`).
    ``collapse_patience``: steps of collapse before stopping (None: never).

    ``trust_coefficient`` / ``lars_clip``: LARS as the authors' code wraps SGD (eta 0.02, the
    adapted rate clipped at the base rate; :class:`~basis_nmce.nmce.optim.LARS`).

    ``max_steps`` (ours, not the paper's): a stage that trains a cluster head (``cluster``,
    ``finetune``, ``joint``) keeps training past ``steps`` while the constraint functional D of
    its hard assignments (NMCE Sec. 3, :func:`~basis_nmce.nmce.constraint.assignment_violation`
    on the training data, no labels) is above ``d_tolerance`` or a cluster is empty, checking
    every ``check_every`` steps from ``steps`` on, and stops at ``max_steps`` at the latest.
    ``None``: exactly ``steps``. Up to the stop the run is the one ``steps`` alone would give.
    """

    steps: int = 1000
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-6
    optimizer: str = "adam"
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    trust_coefficient: float = 0.02
    lars_clip: bool = True
    base_batch_size: int | None = None
    schedule: str = "constant"
    warmup_steps: int = 0
    final_lr_factor: float = 0.0
    eps: float = 0.1
    lam: float = 1.0
    tau: float = 1.0
    hard_memberships: bool = False
    tcr_mode: str = "mean_of_views"
    cluster_lr: float | None = None
    cluster_weight_decay: float | None = None
    reset_feature_head: bool = True
    cluster_head_init: str = "default"
    grad_clip: float | None = None
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    checkpoint_every: int = 0
    collapse_patience: int | None = 200
    min_effective_rank: float = 1.05
    max_cluster_fraction: float = 0.999
    max_steps: int | None = None
    check_every: int = 500
    d_tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 2:
            raise ConfigError(
                f"steps must be >= 1, batch_size >= 2: {self.steps}, {self.batch_size}"
            )
        for name in ("lr", "eps", "tau"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lam < 0 or self.weight_decay < 0:
            raise ConfigError(f"lam and weight_decay must be >= 0: {self.lam}, {self.weight_decay}")
        if self.cluster_head_init not in ("default", "zeros", "kmeans"):
            raise ConfigError(
                "cluster_head_init must be default, zeros or kmeans, "
                f"got {self.cluster_head_init!r}"
            )
        if self.tcr_mode not in ("mean_of_views", "view_mean"):
            raise ConfigError(f"tcr_mode must be mean_of_views or view_mean: {self.tcr_mode!r}")
        if self.log_every < 1 or self.checkpoint_every < 0:
            raise ConfigError("log_every must be >= 1 and checkpoint_every >= 0")
        if self.max_steps is not None and self.max_steps < self.steps:
            raise ConfigError(
                f"max_steps ({self.max_steps}) is the budget of training past steps "
                f"({self.steps}) while D > 0: it must be >= steps, or null for exactly steps"
            )
        if self.check_every < 1 or not 0 <= self.d_tolerance < 1:
            raise ConfigError(
                f"check_every must be >= 1 and 0 <= d_tolerance < 1: {self.check_every}, "
                f"{self.d_tolerance}"
            )
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise ConfigError(f"unknown training option(s) {unknown}; allowed: {sorted(allowed)}")
        return cls(**values)

    def fingerprint(self) -> dict[str, Any]:
        d = asdict(self)
        for key in _NON_RESULT_FIELDS:
            d.pop(key)
        d["betas"] = list(d["betas"])
        return d


@dataclass
class TrainResult:
    """What a stage returns: the logged records, steps done, where it resumed, wall time, and
    (with ``max_steps``) every check of the constraint functional D past ``steps``
    (``checks``: step, D, clusters used) and whether the last one was satisfied."""

    stage: str
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_at: int = 0
    seconds: float = 0.0
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def satisfied(self) -> bool | None:
        """The last D check passed (None: no check ran)."""
        return bool(self.checks[-1]["satisfied"]) if self.checks else None

    @property
    def last(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


# --------------------------------------------------------------------------- helpers


def _seed(seed: int, *stream: int) -> int:
    return int(
        np.random.SeedSequence([int(seed), *stream]).generate_state(1, dtype=np.uint64)[0] >> 1
    )


def _generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_seed(seed, stream))


def _check_inputs(model: nn.Module, x: Tensor, min_samples: int = 2) -> Tensor:
    """``x`` checked like scikit-learn's ``check_array`` against the network: a floating
    tensor (arrays and lists are converted to float32) of finite values, at least
    ``min_samples`` rows, each of the shape the network was built for."""
    if not isinstance(model, NMCENet):
        raise ConfigError(
            f"model must be an NMCENet (nmce.networks.build_network), got {type(model).__name__}"
        )
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        except (TypeError, ValueError) as e:
            raise DataError(f"x must be numeric (n, ...) data; got {type(x).__name__} ({e})") from e
    if x.dim() < 2 or x.shape[0] < min_samples:
        raise DataError(
            f"x must be a tensor of at least {min_samples} samples (n, ...), got {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise DataError(f"x must be floating point, got {x.dtype}")
    expected = tuple(getattr(model, "spec", {}).get("in_shape", x.shape[1:]))
    if tuple(x.shape[1:]) != expected:
        raise DataError(
            f"x has samples of shape {tuple(x.shape[1:])}, but the network was built for "
            f"{expected}; pass the data it was built for, or build a network for these"
        )
    for start in range(0, len(x), 8192):  # chunks: no full-size boolean copy of a big x
        finite = torch.isfinite(x[start : start + 8192]).flatten(1).all(dim=1)
        if not bool(finite.all()):
            row = start + int(torch.nonzero(~finite)[0, 0])
            raise DataError(
                f"x contains NaN or infinite values (first in sample {row}); remove or impute "
                "them first"
            )
    return x


class _EpochBatches:
    """Mini-batch indices for step ``1, 2, ...``: each epoch a fresh permutation of the ``n``
    samples cut into ``n // batch`` batches (the remainder is left for that epoch), so every
    sample is seen once per epoch. A pure function of ``(seed, step)``: a resumed run draws the
    batches the uninterrupted run would have drawn. ``None`` when the batch holds all samples.
    One permutation per epoch, not per step: ``randperm(200000)`` costs 1.7 ms, 4% of a double
    spiral step."""

    def __init__(self, n: int, batch: int, seed: int) -> None:
        self.n, self.batch, self.seed = n, batch, seed
        self.per_epoch = max(1, n // batch)
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def __call__(self, step: int) -> Tensor | None:
        if self.batch >= self.n:
            return None
        epoch, k = divmod(step - 1, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(_seed(self.seed, 0, epoch))
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        return self._perm[k * self.batch : (k + 1) * self.batch]


def _modules_for(model: NMCENet, stage: Stage) -> tuple[list[nn.Module], list[nn.Module]]:
    """(main optimiser's modules, cluster optimiser's modules) per stage."""
    if stage == "tcr":
        return [model.backbone, model.pre_feature, model.feature_head], []
    if stage == "cluster":
        return [model.feature_head], [model.cluster_head]
    return [model.backbone, model.pre_feature, model.feature_head], [model.cluster_head]


def _optimisers(model: NMCENet, stage: Stage, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    main, cluster = _modules_for(model, stage)
    opts = [
        build_optimizer(
            nn.ModuleList(main),
            cfg.optimizer,
            cfg.lr,
            cfg.weight_decay,
            cfg.momentum,
            betas=cfg.betas,
            trust_coefficient=cfg.trust_coefficient,
            lars_clip=cfg.lars_clip,
            batch_size=cfg.batch_size,
            base_batch_size=cfg.base_batch_size,
        )
    ]
    if cluster:
        opts.append(
            build_optimizer(
                nn.ModuleList(cluster),
                cfg.optimizer,
                cfg.cluster_lr if cfg.cluster_lr is not None else cfg.lr,
                cfg.cluster_weight_decay
                if cfg.cluster_weight_decay is not None
                else cfg.weight_decay,
                cfg.momentum,
                betas=cfg.betas,
                trust_coefficient=cfg.trust_coefficient,
                lars_clip=cfg.lars_clip,
                batch_size=cfg.batch_size,
                base_batch_size=cfg.base_batch_size,
            )
        )
    return opts


def _record(step: int, stats: Mapping[str, Any], lr: float, rank: float) -> dict[str, Any]:
    rec: dict[str, Any] = {"step": step, "lr": lr, "effective_rank": rank}
    for key in ("loss", "R", "Rc", "delta_R", "similarity", "marginal_entropy"):
        if key in stats:
            rec[key] = float(stats[key])
    if "cluster_sizes" in stats:
        sizes = [float(s) for s in stats["cluster_sizes"]]
        total = sum(sizes) or 1.0
        rec["cluster_fractions"] = [s / total for s in sizes]
    return rec


def _constraint_check(
    model: NMCENet, x: Tensor, augmenter: Augmenter, cfg: TrainConfig, step: int
) -> dict[str, Any]:
    """D of the hard assignments on (a seeded subsample of) the training data, NMCE Sec. 3."""
    d, used = assignment_violation(model, x, augmenter, seed=cfg.seed)
    ok = d <= cfg.d_tolerance and used == model.n_clusters
    return {"step": step, "D": d, "clusters_used": used, "satisfied": bool(ok)}


# --------------------------------------------------------------------------- core loop


def _train(
    stage: Stage,
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    checkpoint: str | Path | None,
    callback: Callback | None,
) -> TrainResult:
    x = _check_inputs(model, x)
    cfg = config
    device = resolve_device(cfg.device)
    model.to(device)
    model.freeze_backbone(stage == "cluster")
    model.zero_grad(set_to_none=True)  # no stale gradients from an earlier stage
    if stage == "joint" and cfg.cluster_head_init == "kmeans":
        raise ConfigError(
            "cluster_head_init kmeans clusters the stage-1 features, which the joint stage does "
            "not have; use default or zeros with joint"
        )
    if stage == "cluster":
        init = _generator(cfg.seed, 3, torch.device("cpu"))
        # k-means of the stage-1 features, before the feature head is re-initialised
        start = (
            kmeans_labels_of_features(model, x, cfg.seed)
            if cfg.cluster_head_init == "kmeans"
            else None
        )
        if cfg.reset_feature_head:  # stage 2 re-initialises the projection (the code does so)
            model.reset_feature_head(init)
        model.reset_cluster_head(init)
        if start is not None:
            fit_cluster_head(model, start, cfg.seed)
    if stage in ("joint", "cluster") and cfg.cluster_head_init == "zeros":
        model.zero_cluster_head()

    g_aug = _generator(cfg.seed, 1, device)
    g_gumbel = _generator(cfg.seed, 2, device)
    optimisers = _optimisers(model, stage, cfg)
    schedulers = [
        build_scheduler(o, cfg.schedule, cfg.steps, cfg.warmup_steps, cfg.final_lr_factor)
        for o in optimisers
    ]
    monitor = CollapseMonitor(
        cfg.collapse_patience, cfg.min_effective_rank, cfg.max_cluster_fraction, stage=stage
    )
    result = TrainResult(stage=stage, steps=0)
    start_step, elapsed, finished = 0, 0.0, False
    # past `steps`, train on while D > d_tolerance (stages with a cluster head; max_steps set)
    checking = stage != "tcr" and cfg.max_steps is not None
    last_step = int(cfg.max_steps) if checking else cfg.steps  # type: ignore[arg-type]

    state = load_checkpoint(checkpoint) if checkpoint is not None else None
    if state is not None:
        if state.get("stage") != stage or state.get("config") != cfg.fingerprint():
            raise ConfigError(
                f"checkpoint {checkpoint} was written by stage {state.get('stage')!r} with other "
                "settings; delete it to start afresh or pass the settings it was written with"
            )
        model.load_state_dict(state["model"])
        for opt, s in zip(optimisers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sch, s in zip(schedulers, state["schedulers"], strict=True):
            sch.load_state_dict(s)
        g_aug.set_state(state["generators"]["aug"])
        g_gumbel.set_state(state["generators"]["gumbel"])
        monitor.load_state_dict(state["monitor"])
        result.history = list(state["history"])
        result.checks = list(state.get("checks", []))
        start_step = result.resumed_at = int(state["step"])
        elapsed = float(state.get("seconds", 0.0))
        finished = bool(state.get("finished", start_step >= last_step))

    def save(step: int, done: bool = False) -> None:
        save_checkpoint(
            checkpoint,
            {
                "stage": stage,
                "config": cfg.fingerprint(),
                "step": step,
                "model": model.state_dict(),
                "optimizers": [o.state_dict() for o in optimisers],
                "schedulers": [s.state_dict() for s in schedulers],
                "generators": {
                    "aug": g_aug.get_state(),
                    "gumbel": g_gumbel.get_state(),
                },
                "monitor": monitor.state_dict(),
                "history": result.history,
                "checks": result.checks,
                "finished": done,
                "seconds": elapsed + time.perf_counter() - t0,
            },
        )

    t0 = time.perf_counter()
    batches = _EpochBatches(x.shape[0], cfg.batch_size, cfg.seed)
    trainable = [p for o in optimisers for g in o.param_groups for p in g["params"]]
    model.train()
    step_done = start_step
    for step in range(start_step + 1, last_step + 1):
        if finished:
            break
        idx = batches(step)
        xb = (x if idx is None else x[idx]).to(device, non_blocking=True)
        views = torch.cat([augmenter(xb, generator=g_aug), augmenter(xb, generator=g_aug)])
        z, logits = model(views)
        check_finite(step, None, torch.cat([z, logits], dim=1), stage=stage)
        z1, z2 = z.chunk(2)
        if stage == "tcr":
            loss, stats = total_coding_rate_loss(z1, z2, cfg.eps, cfg.lam, mode=cfg.tcr_mode)
            pi_bar = None
            z_check = z1
        else:
            pi = gumbel_softmax_memberships(
                logits, cfg.tau, hard=cfg.hard_memberships, generator=g_gumbel
            )
            pi1, pi2 = pi.chunk(2)
            loss, stats = nmce_loss(z1, z2, pi1, pi2, cfg.eps, cfg.lam)
            pi_bar = 0.5 * (pi1 + pi2)
            z_check = torch.nn.functional.normalize(0.5 * (z1 + z2), dim=1)
        check_finite(step, loss, z, stats, stage=stage)
        for opt in optimisers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        for opt in optimisers:
            opt.step()
        lr = float(schedulers[0].get_last_lr()[0])
        for sch in schedulers:
            sch.step()
        monitor.update(step, z_check, pi_bar)
        check = None
        if checking and step >= cfg.steps:
            if (step - cfg.steps) % cfg.check_every == 0 or step == last_step:
                check = _constraint_check(model, x, augmenter, cfg, step)
                result.checks.append(check)
                finished = check["satisfied"] or step == last_step
        if step % cfg.log_every == 0 or step == cfg.steps or finished:
            rec = _record(step, stats, lr, effective_rank(z_check))
            if check is not None:
                rec["D"] = check["D"]
            result.history.append(rec)
            if callback is not None:
                callback(rec)
        step_done = step
        if finished:
            break
        if checkpoint is not None and cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save(step)
    else:
        finished = True
    if checkpoint is not None and step_done > start_step:
        save(step_done, done=finished)
    result.steps = step_done
    result.seconds = elapsed + time.perf_counter() - t0
    model.eval()
    return result


# --------------------------------------------------------------------------- public stages


def train_tcr(
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Stage 1: Total Coding Rate ``-R(Z, eps) + lam D`` on two views (NMCE Eq. 5).

    Trains backbone, pre-feature and feature head (the cluster head is unused).
    """
    return _train("tcr", model, x, augmenter, config, checkpoint, callback)


def train_cluster(
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Stage 2: frozen backbone/pre-feature, fresh feature and cluster heads, NMCE (Eq. 4).

    The feature head is re-initialised (``config.reset_feature_head``, as the authors' code)
    and the cluster head re-drawn, both from ``config.seed``; the cluster head has its own
    optimiser (``cluster_lr``, ``cluster_weight_decay``). Memberships are Gumbel-softmax
    samples at temperature ``tau``. The backbone stays frozen when this returns.
    """
    return _train("cluster", model, x, augmenter, config, checkpoint, callback)


def train_finetune(
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """Stage 3: every parameter trained on the NMCE objective (Eq. 4); unfreezes the backbone.

    The authors' CIFAR settings use ``lam = 0`` in stages 2-3 (Table B.1).
    """
    return _train("finetune", model, x, augmenter, config, checkpoint, callback)


def train_joint(
    model: NMCENet,
    x: Tensor,
    augmenter: Augmenter,
    config: TrainConfig,
    *,
    checkpoint: str | Path | None = None,
    callback: Callback | None = None,
) -> TrainResult:
    """The full NMCE objective (Eq. 4) from the start, all parameters (double spiral, Sec. 4.1)."""
    return _train("joint", model, x, augmenter, config, checkpoint, callback)


# --------------------------------------------------------------------------- inference


@torch.no_grad()
def embed_and_predict(model: NMCENet, x: Tensor, batch: int = 1024) -> tuple[Tensor, Tensor]:
    """Features ``z`` (unit norm) and cluster index (argmax of the cluster head's logits, int64)
    of each row of ``x``, both on the CPU, from one eval-mode pass, ``batch`` rows at a time."""
    if batch < 1:
        raise ConfigError(f"batch must be >= 1, got {batch}")
    x = _check_inputs(model, x, min_samples=0)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    zs, labels = [], []
    try:
        for i in range(0, len(x), batch):
            z, logits = model(x[i : i + batch].to(device))
            zs.append(z.cpu())
            labels.append(logits.argmax(dim=1).cpu())
    finally:
        model.train(was_training)
    if not zs:
        return torch.empty(0), torch.empty(0, dtype=torch.int64)
    return torch.cat(zs), torch.cat(labels)


def embed(model: NMCENet, x: Tensor, batch: int = 1024) -> Tensor:
    """Features ``z`` (unit norm, on the CPU) of ``x`` in eval mode, ``batch`` rows at a time."""
    return embed_and_predict(model, x, batch)[0]


def predict_clusters(model: NMCENet, x: Tensor, batch: int = 1024) -> Tensor:
    """Cluster index (argmax of the cluster head's logits, int64 on the CPU) of each row."""
    return embed_and_predict(model, x, batch)[1]
