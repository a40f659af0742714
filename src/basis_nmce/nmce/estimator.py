"""``NMCE``: the scikit-learn style estimator of Neural Manifold Clustering and Embedding.

One object runs the method end to end on a user's array or images (NMCE Sec. 3-4):

* ``fit(X)`` trains the three stages (stage 1 TCR, Eq. 5; stage 2 the cluster head on the
  frozen backbone, Eq. 4; stage 3 every parameter, Eq. 4), or with ``joint=True`` the full
  objective from a fresh network (the double spiral, Sec. 4.1). ``fit(X, stages=("cluster",))``
  continues a fitted (or loaded) model with the named stages: the pipeline runs one stage per
  job this way.
* ``predict(X)``: the cluster head's argmax; ``transform(X)``: the unit-norm subspace features
  ``z``; ``fit_predict(X)``.
* ``D_``: the constraint functional of NMCE Sec. 3 for the fitted model's hard assignments on
  the training data (the fraction of (point, augmented copy) pairs in different clusters), the
  label-free test of success. ``restarts`` and each stage's ``max_steps`` spend a stated budget
  on driving it to 0 (``budget_`` and ``outcome_`` record what was spent and reached).
* ``save(path)`` / ``NMCE.load(path)``: a state dict (``model.pt``) and JSON beside it
  (``model.json``): parameters, network, fitted attributes; loaded with ``weights_only=True``,
  never unpickling code. The file is also a pipeline model (``nmce.load_network`` reads it).

Inputs: 2-D arrays ``(n, d)`` for the MLP (standardised with the training mean and standard
deviation when ``scale="standard"``, so the augmentation noise is in units of the data's
spread); images ``(n, H, W)``, ``(n, H, W, C)`` (numpy, channels last) or ``(n, C, H, W)``
(torch tensors, or numpy with 1, 3 or 4 channels first), ``uint8`` scaled to [0, 1], for the
convolutional networks. ``network="auto"`` picks ``mlp`` for vectors and ``cnn_small`` for
images.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from torch import Tensor

from basis_nmce.errors import ConfigError, DataError
from basis_nmce.io import load_model, save_model
from basis_nmce.models import resolve_device
from basis_nmce.nmce.augment import make_augmenter
from basis_nmce.nmce.constraint import assignment_violation
from basis_nmce.nmce.networks import NETWORKS, NMCENet, build_network
from basis_nmce.nmce.restarts import kept_restart, train_restarts
from basis_nmce.nmce.train import (
    TrainConfig,
    TrainResult,
    embed_and_predict,
    train_cluster,
    train_finetune,
    train_joint,
    train_tcr,
)

__all__ = ["NMCE", "STAGES", "STAGE_DEFAULTS"]

log = logging.getLogger(__name__)

#: the stages ``fit`` can run; ``joint`` trains with the ``finetune`` settings
STAGES = ("tcr", "cluster", "finetune", "joint")
#: one stage's settings (the config's ``nmce.<stage>`` keys); ``lambda`` None: ``lam``
STAGE_DEFAULTS: dict[str, Any] = {
    "steps": 500,
    "max_steps": None,
    "optimizer": "adam",
    "lr": 1e-3,
    "weight_decay": 1e-6,
    "momentum": 0.9,
    "betas": (0.9, 0.999),
    "base_batch_size": None,
    "schedule": "constant",
    "warmup_steps": 0,
    "final_lr_factor": 0.0,
    "lambda": None,
    "cluster_lr": None,
    "cluster_weight_decay": None,
    "grad_clip": None,
    "trust_coefficient": 0.02,
    "lars_clip": True,
}
_DEFAULT_STEPS = {"tcr": 1000, "cluster": 300, "finetune": 200}
_STAGE_FNS = {
    "tcr": train_tcr,
    "cluster": train_cluster,
    "finetune": train_finetune,
    "joint": train_joint,
}
_SCALES = ("standard", None)


def _network_from_state(
    spec: Mapping[str, Any], state: Mapping[str, Tensor], seed: int | None = None
) -> NMCENet:
    """A network rebuilt from its spec and state dict (restarts of a stage that continues a
    trained model: picklable, unlike a bound method)."""
    net = _build(spec)
    net.load_state_dict(dict(state))
    return net


def _build(spec: Mapping[str, Any], seed: int | None = None) -> NMCENet:
    return build_network(
        spec["name"],
        tuple(spec["in_shape"]),
        int(spec["feature_dim"]),
        int(spec["n_clusters"]),
        seed=seed,
        **dict(spec.get("opts") or {}),
    )


def _fresh_network(spec: Mapping[str, Any], seed: int) -> NMCENet:
    return _build(spec, seed)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class NMCE(TransformerMixin, ClusterMixin, BaseEstimator):
    """Neural Manifold Clustering and Embedding (Li et al. 2022) with scikit-learn's API.

    Parameters follow the pipeline's ``nmce`` config section (every key documented in
    ``workflow/schemas/config.schema.yaml``); ``tcr``, ``cluster`` and ``finetune`` are dicts of
    one stage's settings over :data:`STAGE_DEFAULTS` (steps 1000 / 300 / 200 by default;
    ``joint`` uses ``finetune``'s). ``eps`` is the paper's epsilon (Eq. 2; the authors' code's
    ``--eps`` is its square), ``lam`` the invariance weight lambda, ``tau`` the Gumbel-softmax
    temperature.

    The defaults are our recipe for vector data (README, "NMCE on the 2-D toys"): ``lam``
    1000 makes stage 1 put each manifold in its own subspace, ``reset_feature_head=False``
    keeps those features for stage 2 (the authors' code re-initialises them), and ``eps`` 0.5
    keeps the cluster rate from saturating (with the toys' 0.1, d / eps^2 = 3200 at d_z 32, the
    rate only counts dimensions and stage 2 stays in a mixed partition). Images need their
    preset's settings (``configs/fmnist-quick.yaml``: lam 150, reset on, k-means start).

    Ours, not the paper's: ``restarts`` (independent runs of the stage that starts the cluster
    head, seeds ``random_state + k``, kept by the smallest ``D``, stopping at the first with
    ``D <= d_tolerance``; run in ``n_jobs`` processes, None: one per torch thread - spawned,
    so a script that sets it must guard its code with ``if __name__ == "__main__"``), a
    stage's ``max_steps`` (train on past ``steps`` while ``D > d_tolerance``, checking every
    ``check_every`` steps), ``cluster_head_init`` ``"zeros"`` or ``"kmeans"`` (stage 2's head
    fitted to k-means of the stage-1 features; not with ``joint``) and ``scale``.
    """

    def __init__(
        self,
        n_clusters: int = 2,
        feature_dim: int = 32,
        network: str = "auto",
        random_state: int | None = None,
        device: str = "auto",
        *,
        network_options: Mapping[str, Any] | None = None,
        augmentation: str = "noise",
        augmentation_options: Mapping[str, Any] | None = None,
        eps: float = 0.5,
        lam: float = 1000.0,
        tau: float = 1.0,
        batch_size: int = 512,
        joint: bool = False,
        tcr: Mapping[str, Any] | None = None,
        cluster: Mapping[str, Any] | None = None,
        finetune: Mapping[str, Any] | None = None,
        restarts: int = 3,
        n_jobs: int | None = 1,
        check_every: int = 500,
        d_tolerance: float = 1e-4,
        tcr_mode: str = "mean_of_views",
        cluster_head_init: str = "default",
        reset_feature_head: bool = False,
        scale: str | None = "standard",
        collapse_patience: int | None = 200,
        log_every: int = 10,
        checkpoint_every: int = 0,
        embed_batch: int = 1024,
    ) -> None:
        self.n_clusters = n_clusters
        self.feature_dim = feature_dim
        self.network = network
        self.random_state = random_state
        self.device = device
        self.network_options = network_options
        self.augmentation = augmentation
        self.augmentation_options = augmentation_options
        self.eps = eps
        self.lam = lam
        self.tau = tau
        self.batch_size = batch_size
        self.joint = joint
        self.tcr = tcr
        self.cluster = cluster
        self.finetune = finetune
        self.restarts = restarts
        self.n_jobs = n_jobs
        self.check_every = check_every
        self.d_tolerance = d_tolerance
        self.tcr_mode = tcr_mode
        self.cluster_head_init = cluster_head_init
        self.reset_feature_head = reset_feature_head
        self.scale = scale
        self.collapse_patience = collapse_patience
        self.log_every = log_every
        self.checkpoint_every = checkpoint_every
        self.embed_batch = embed_batch

    # ----------------------------------------------------------------- settings
    @classmethod
    def from_config(
        cls, nmce: Mapping[str, Any], n_clusters: int, seed: int, device: str = "auto"
    ) -> NMCE:
        """The estimator a validated config's ``nmce`` section describes (the pipeline's
        stages). ``scale`` is None: the ``features`` stage has already scaled the vectors."""
        aug = nmce.get("augmentation") or {}
        return cls(
            n_clusters=int(n_clusters),
            feature_dim=int(nmce["feature_dim"]),
            network=nmce["network"],
            random_state=int(seed),
            device=device,
            network_options=dict(nmce.get("network_options") or {}),
            augmentation=aug.get("kind", "noise"),
            augmentation_options=dict(aug.get("options") or {}),
            eps=float(nmce["eps"]),
            lam=float(nmce["lambda"]),
            tau=float(nmce["tau"]),
            batch_size=int(nmce["batch_size"]),
            joint=bool(nmce.get("joint", False)),
            # a stage's params hold only the sections it reads (stages.params)
            tcr=dict(nmce.get("tcr") or {}),
            cluster=dict(nmce.get("cluster") or {}),
            finetune=dict(nmce.get("finetune") or {}),
            restarts=int(nmce.get("restarts", 1)),
            n_jobs=nmce.get("restart_workers"),
            check_every=int(nmce.get("check_every", 500)),
            d_tolerance=float(nmce.get("d_tolerance", 0.0)),
            tcr_mode=nmce.get("tcr_mode", "mean_of_views"),
            cluster_head_init=nmce.get("cluster_head_init", "default"),
            reset_feature_head=bool(nmce.get("reset_feature_head", True)),
            scale=None,
            collapse_patience=nmce.get("collapse_patience", 200),
            log_every=int(nmce.get("log_every", 10)),
            checkpoint_every=int(nmce.get("checkpoint_every", 0)),
            embed_batch=int(nmce.get("embed_batch", 1024)),
        )

    def stage_settings(self, stage: str) -> dict[str, Any]:
        """One stage's settings: :data:`STAGE_DEFAULTS` under the ``tcr`` / ``cluster`` /
        ``finetune`` dict (``joint``: ``finetune``'s)."""
        if stage not in STAGES:
            raise ConfigError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
        key = "finetune" if stage == "joint" else stage
        given = dict(getattr(self, key) or {})
        unknown = sorted(set(given) - set(STAGE_DEFAULTS))
        if unknown:
            raise ConfigError(
                f"{key}: unknown setting(s) {unknown}; allowed: {sorted(STAGE_DEFAULTS)}"
            )
        return {**STAGE_DEFAULTS, "steps": _DEFAULT_STEPS.get(key, 500), **given}

    def train_config(self, stage: str, seed: int | None = None) -> TrainConfig:
        """The library's :class:`~basis_nmce.nmce.train.TrainConfig` of ``stage``."""
        st = self.stage_settings(stage)
        steps = int(st["steps"])
        return TrainConfig(
            steps=max(1, steps),
            batch_size=int(self.batch_size),
            lr=float(st["lr"]),
            weight_decay=float(st["weight_decay"]),
            optimizer=st["optimizer"],
            momentum=float(st["momentum"]),
            betas=(float(st["betas"][0]), float(st["betas"][1])),
            trust_coefficient=float(st["trust_coefficient"]),
            lars_clip=bool(st["lars_clip"]),
            base_batch_size=st["base_batch_size"],
            schedule=st["schedule"],
            warmup_steps=int(st["warmup_steps"]),
            final_lr_factor=float(st["final_lr_factor"]),
            eps=float(self.eps),
            lam=float(self.lam if st["lambda"] is None else st["lambda"]),
            tau=float(self.tau),
            tcr_mode=self.tcr_mode,
            cluster_lr=st["cluster_lr"],
            cluster_weight_decay=st["cluster_weight_decay"],
            reset_feature_head=bool(self.reset_feature_head),
            cluster_head_init=self.cluster_head_init,
            grad_clip=st["grad_clip"],
            seed=self._seed() if seed is None else int(seed),
            device=str(resolve_device(self.device)),
            log_every=int(self.log_every),
            checkpoint_every=int(self.checkpoint_every),
            collapse_patience=self.collapse_patience,
            max_steps=None if st["max_steps"] is None else int(st["max_steps"]),
            check_every=int(self.check_every),
            d_tolerance=float(self.d_tolerance),
        )

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _augmenter(self):
        try:
            return make_augmenter(self.augmentation, **dict(self.augmentation_options or {}))
        except (TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"augmentation {self.augmentation!r}: {e}") from e

    def _check_params(self) -> None:
        if int(self.n_clusters) < 2:
            raise ConfigError(f"n_clusters must be >= 2, got {self.n_clusters}")
        if int(self.feature_dim) < 1:
            raise ConfigError(f"feature_dim must be >= 1, got {self.feature_dim}")
        if self.network != "auto" and self.network not in NETWORKS:
            raise ConfigError(
                f"network {self.network!r}: choose 'auto' or one of {', '.join(NETWORKS)}"
            )
        if self.scale not in _SCALES:
            raise ConfigError(f"scale {self.scale!r}: choose 'standard' or None")
        if int(self.restarts) < 1:
            raise ConfigError(f"restarts must be >= 1, got {self.restarts}")

    # ------------------------------------------------------------------- inputs
    def _inputs(self, X: Any, fitting: bool = False) -> Tensor:
        """``X`` as the network's float32 tensor: vectors (scaled) or images (N, C, H, W)."""
        is_tensor = isinstance(X, Tensor)
        if is_tensor:
            arr = X.detach().cpu()
        else:
            try:
                arr = np.asarray(X)
            except (TypeError, ValueError) as e:
                raise DataError(f"X must be numeric (n, ...) data ({e})") from e
            if arr.dtype == object or not (
                np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
            ):
                raise DataError(f"X must hold real numbers; got dtype {arr.dtype}")
        if arr.ndim not in (2, 3, 4):
            raise DataError(
                f"X must be 2-D vectors (n_samples, n_features) or images (n, H, W), "
                f"(n, H, W, C) or (n, C, H, W); got shape {tuple(arr.shape)}"
                + (": reshape(1, -1) makes one sample a row" if arr.ndim == 1 else "")
            )
        if arr.shape[0] < (2 if fitting else 1):
            raise DataError(f"X holds {arr.shape[0]} samples; need at least 2 to fit, 1 after")
        if arr.ndim == 2:
            t = torch.as_tensor(np.asarray(arr, dtype=np.float32) if not is_tensor else arr)
            t = t.to(torch.float32)
        else:
            t = _images(arr, is_tensor)
        if fitting and hasattr(self, "scale_"):
            del self.scale_  # a fresh fit forgets an earlier fit's scaling
        if fitting and self.scale == "standard" and t.dim() == 2:
            mean = t.double().mean(0)
            std = t.double().std(0, unbiased=False)
            self.scale_ = (mean.numpy(), np.where(std.numpy() > 0, std.numpy(), 1.0))
        scale = getattr(self, "scale_", None)
        if scale is not None and t.dim() == 2:
            mean, std = (torch.as_tensor(a, dtype=torch.float64) for a in scale)
            if t.shape[1] == len(mean):
                t = ((t.double() - mean) / std).to(torch.float32)
        return t

    def _spec(self, x: Tensor) -> dict[str, Any]:
        name = self.network
        if name == "auto":
            name = "mlp" if x.dim() == 2 else "cnn_small"
        if name == "mlp" and x.dim() != 2:
            raise ConfigError(
                f"network 'mlp' takes vectors (n, d), but X holds images {tuple(x.shape)}; "
                "use network='cnn_small' (or another image network), or flatten X"
            )
        if name != "mlp" and x.dim() != 4:
            raise ConfigError(
                f"network {name!r} takes images, but X holds vectors {tuple(x.shape)}; "
                "use network='mlp'"
            )
        return {
            "name": name,
            "in_shape": [int(s) for s in x.shape[1:]],
            "feature_dim": int(self.feature_dim),
            "n_clusters": int(self.n_clusters),
            "opts": dict(self.network_options or {}),
        }

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        X: Any,
        y: Any = None,
        *,
        stages: Sequence[str] | None = None,
        checkpoint: str | Path | None = None,
    ) -> NMCE:
        """Train on ``X``; ``y`` is ignored (NMCE never reads labels).

        ``stages``: default ``("joint",)`` with ``joint``, else ``("tcr", "cluster",
        "finetune")``. A sequence starting with ``tcr`` or ``joint`` starts from a fresh network
        (seeded by ``random_state``); one starting with ``cluster`` or ``finetune`` continues the
        fitted (or loaded) network. A stage of 0 steps is skipped (``finetune: {steps: 0}``
        keeps stage 2's model). ``checkpoint``: a file each stage writes every
        ``checkpoint_every`` steps and resumes from when it exists (written by the same
        settings); with several stages (or restarts) each gets its own file beside it.
        """
        self._check_params()
        stages = tuple(stages) if stages is not None else self._default_stages()
        for stage in stages:
            if stage not in STAGES:
                raise ConfigError(f"stage {stage!r}: choose one of {', '.join(STAGES)}")
        if not stages:
            raise ConfigError("stages is empty: name at least one of " + ", ".join(STAGES))
        fresh = stages[0] in ("tcr", "joint")
        if not fresh and not hasattr(self, "network_"):
            raise ConfigError(
                f"stage {stages[0]!r} continues a trained network: fit with stages=('tcr',) "
                "first, or NMCE.load a stage-1 model"
            )
        x = self._inputs(X, fitting=fresh)
        if fresh:
            self.spec_ = self._spec(x)
            self.network_ = _fresh_network(self.spec_, self._seed())
            self.history_: dict[str, list[dict[str, Any]]] = {}
            self.stages_: list[str] = []
            self.seconds_: dict[str, float] = {}
            self.resumed_from_: dict[str, int] = {}
            self.steps_: dict[str, int] = {}
            self.restarts_: list[dict[str, Any]] = []
            self.kept_seed_ = self._seed()
            self.D_, self.clusters_used_ = math.nan, 0
        else:
            self._check_continues(x)
        self.device_ = resolve_device(self.device)
        self.network_.to(self.device_)
        augmenter = self._augmenter()
        for stage in stages:
            path = None
            if checkpoint is not None:
                path = Path(checkpoint)
                if len(stages) > 1:
                    path = path.with_name(f"{path.stem}.{stage}{path.suffix}")
            self._fit_stage(stage, x, augmenter, path)
        if self.stages_ and self.stages_[-1] != "tcr":
            self.D_, self.clusters_used_ = assignment_violation(
                self.network_, x, augmenter, seed=self.kept_seed_
            )
        self.network_.eval()
        self.n_features_in_ = int(np.prod(x.shape[1:]))
        return self

    def _default_stages(self) -> tuple[str, ...]:
        return ("joint",) if self.joint else ("tcr", "cluster", "finetune")

    def _check_continues(self, x: Tensor) -> None:
        spec = self.spec_
        if [int(s) for s in x.shape[1:]] != list(spec["in_shape"]):
            raise DataError(
                f"X has samples of shape {tuple(x.shape[1:])}, but the network was built for "
                f"{tuple(spec['in_shape'])}; pass the data it was trained on"
            )
        for key in ("feature_dim", "n_clusters"):
            if int(getattr(self, key)) != int(spec[key]):
                raise ConfigError(
                    f"{key} {getattr(self, key)} differs from the trained network's "
                    f"{spec[key]}; set {key}={spec[key]} or fit from stage tcr"
                )

    def _fit_stage(self, stage: str, x: Tensor, augmenter, checkpoint: Path | None) -> None:
        steps = int(self.stage_settings(stage)["steps"])
        if steps < 1:
            if stage in ("tcr", "joint"):
                raise ConfigError(f"{stage}: steps must be >= 1 (it starts the network)")
            log.info("%s: 0 steps, the model is kept as it is", stage)
            self.history_[stage], self.steps_[stage] = [], 0
            self.seconds_[stage], self.resumed_from_[stage] = 0.0, 0
            self.stages_.append(stage)
            return
        cfg = self.train_config(stage)
        fn = _STAGE_FNS[stage]
        restarts = int(self.restarts) if stage in ("cluster", "joint") else 1
        t0 = time.perf_counter()
        if restarts == 1:
            res = fn(self.network_, x, augmenter, cfg, checkpoint=checkpoint)
            self.kept_seed_ = cfg.seed
            if res.checks:
                last = res.checks[-1]
                self.restarts_ = [self._attempt(0, cfg.seed, res, last["D"], last["clusters_used"])]
        else:
            if stage == "joint":
                make = functools.partial(_fresh_network, self.spec_)
            else:
                state = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
                make = functools.partial(_network_from_state, self.spec_, state)
            workers = self.n_jobs or min(restarts, torch.get_num_threads())
            model, runs = train_restarts(
                fn,
                make,
                x,
                augmenter,
                cfg,
                restarts=restarts,
                workers=max(1, min(int(workers), restarts)),
                checkpoint=checkpoint,
            )
            best = kept_restart(runs)
            res = best.result
            self.network_ = model.to(self.device_)
            self.kept_seed_ = best.seed
            self.restarts_ = [
                {
                    **self._attempt(r.index, r.seed, r.result, r.violation, r.clusters_used),
                    **({"error": r.error} if r.error else {}),
                }
                for r in runs
            ]
        self.history_[stage] = list(res.history)
        self.steps_[stage] = int(res.steps)
        self.seconds_[stage] = float(res.seconds)
        self.resumed_from_[stage] = int(res.resumed_at)
        self.stages_.append(stage)
        log.info("%s: %d steps in %.1fs", stage, res.steps, time.perf_counter() - t0)

    @staticmethod
    def _attempt(index: int, seed: int, res: TrainResult, d: float, used: int) -> dict[str, Any]:
        return {
            "index": int(index),
            "seed": int(seed),
            "violation": float(d),
            "clusters_used": int(used),
            "steps": int(res.steps),
            "final_loss": res.last.get("loss"),
            "seconds": float(res.seconds),
            "checks": [dict(c) for c in res.checks],
        }

    # --------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this NMCE instance is not fitted yet; call fit(X) first")

    def _embed(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        x = self._inputs(X)
        spec_shape = [int(s) for s in self.spec_["in_shape"]]
        if [int(s) for s in x.shape[1:]] != spec_shape:
            raise DataError(
                f"X has samples of shape {tuple(x.shape[1:])}, but this model was fitted on "
                f"{tuple(spec_shape)}; pass data with the fitted shape"
            )
        z, labels = embed_and_predict(self.network_, x, int(self.embed_batch))
        return z.numpy(), labels.numpy()

    def transform(self, X: Any) -> np.ndarray:
        """The unit-norm subspace features ``z`` of ``X`` (feature head, NMCE Sec. 4)."""
        return self._embed(X)[0]

    def predict(self, X: Any) -> np.ndarray:
        """Cluster index of each sample: the argmax of the cluster head's logits."""
        self._check_fitted()
        if self.stages_ == ["tcr"]:
            raise ConfigError(
                "only stage 1 (TCR) was fitted, which trains no cluster head; fit the cluster "
                "stage (fit(X, stages=('cluster',))) or cluster transform(X) yourself"
            )
        return self._embed(X)[1]

    def fit_predict(self, X: Any, y: Any = None, **kwargs: Any) -> np.ndarray:
        """``fit(X)``, then the cluster head's assignments of ``X``."""
        return self.fit(X, y, **kwargs).predict(X)

    def violation(self, X: Any, views: int = 4, seed: int = 0) -> tuple[float, int]:
        """``(D, clusters used)`` of the fitted model's hard assignments on ``X`` (NMCE Sec. 3;
        :func:`~basis_nmce.nmce.constraint.assignment_violation`)."""
        self._check_fitted()
        return tuple(  # type: ignore[return-value]
            assignment_violation(
                self.network_, self._inputs(X), self._augmenter(), views=views, seed=seed
            )
        )

    # ----------------------------------------------------------- budget record
    @property
    def budget_(self) -> dict[str, Any]:
        """What ``fit`` was allowed to spend on reaching ``D = 0`` (restarts, steps)."""
        self._check_fitted()
        last = next((s for s in reversed(self.stages_) if s != "tcr"), None)
        st = self.stage_settings(last) if last else {}
        return {
            "stage": last,
            "restarts": int(self.restarts) if last in ("cluster", "joint") else 1,
            "steps": st.get("steps"),
            "max_steps": st.get("max_steps"),
            "check_every": int(self.check_every),
            "d_tolerance": float(self.d_tolerance),
        }

    @property
    def outcome_(self) -> dict[str, Any]:
        """What ``fit`` reached: ``D_``, clusters used, whether the constraint holds, the kept
        seed, the attempts made and the steps and seconds of training spent on them."""
        self._check_fitted()
        satisfied = bool(
            self.D_ <= float(self.d_tolerance) and self.clusters_used_ == int(self.n_clusters)
        )
        return {
            "D": None if math.isnan(self.D_) else float(self.D_),
            "clusters_used": int(self.clusters_used_),
            "satisfied": satisfied,
            "kept_seed": int(self.kept_seed_),
            "attempts": max(1, len(self.restarts_)),
            "steps": dict(self.steps_),
            "seconds": {k: round(v, 3) for k, v in self.seconds_.items()},
        }

    # ----------------------------------------------------------------- persist
    def save(self, path: str | Path, extra: Mapping[str, Any] | None = None) -> None:
        """The network's state dict in ``path`` and, beside it as JSON, the parameters, the
        network spec (so :func:`basis_nmce.nmce.load_network` reads it too) and the fitted
        attributes; ``extra``: more JSON keys (the pipeline's method and stage)."""
        self._check_fitted()
        scale = getattr(self, "scale_", None)
        meta = {
            **dict(extra or {}),
            "class": "NMCE",
            "params": _jsonable(self.get_params()),
            "network": _jsonable(self.spec_),
            "stages": list(self.stages_),
            "history": _jsonable(self.history_),
            "steps_done": dict(self.steps_),
            "seconds": dict(self.seconds_),
            "resumed_from": dict(self.resumed_from_),
            "restarts": _jsonable(self.restarts_),
            "kept_seed": int(self.kept_seed_),
            "D": None if math.isnan(self.D_) else float(self.D_),
            "clusters_used": int(self.clusters_used_),
            "scale": None if scale is None else [np.asarray(a).tolist() for a in scale],
        }
        state = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
        save_model(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> NMCE:
        """A model saved by :meth:`save` (or a pipeline stage's ``model.pt``), read with
        ``weights_only=True``: never unpickles code. Restores the parameters, the network and
        the fitted attributes (``D_``, ``history_``, ``stages_``, ``restarts_``, ...)."""
        hint = "save the estimator again with NMCE.save (model.pt and model.json together)"
        state, meta = load_model(path, hint=hint)
        if meta.get("class") not in (None, "NMCE") or "network" not in meta:
            raise DataError(
                f"{path}: not an NMCE model (class {meta.get('class')!r}, "
                f"{'no' if 'network' not in meta else 'a'} network spec in "
                f"{Path(path).with_suffix('.json').name}); load it with the code that saved it"
            )
        spec = dict(meta["network"])
        params = dict(meta.get("params") or {})
        if not params:  # a network saved by save_network: the spec's settings
            params = {
                "n_clusters": spec["n_clusters"],
                "feature_dim": spec["feature_dim"],
                "network": spec["name"],
                "network_options": spec.get("opts") or {},
                "scale": None,
            }
        params["device"] = device
        try:
            est = cls(**params)
            net = _build(spec)
            net.load_state_dict(state)
        except (TypeError, ValueError, RuntimeError, KeyError) as e:
            raise DataError(f"{path}: does not match the settings in its JSON ({e}); {hint}") from e
        est.spec_ = spec
        est.device_ = resolve_device(device)
        est.network_ = net.to(est.device_).eval()
        stage = meta.get("stage")
        est.stages_ = list(meta.get("stages") or ([stage] if stage else []))
        est.history_ = {k: [dict(r) for r in v] for k, v in (meta.get("history") or {}).items()}
        est.steps_ = dict(meta.get("steps_done") or {})
        est.seconds_ = dict(meta.get("seconds") or {})
        est.resumed_from_ = dict(meta.get("resumed_from") or {})
        est.restarts_ = [dict(r) for r in meta.get("restarts") or []]
        est.kept_seed_ = int(meta.get("kept_seed", est._seed()))
        d = meta.get("D")
        est.D_ = math.nan if d is None else float(d)
        est.clusters_used_ = int(meta.get("clusters_used", 0))
        if meta.get("scale") is not None:
            est.scale_ = tuple(np.asarray(a, dtype=np.float64) for a in meta["scale"])
        est.n_features_in_ = int(np.prod(spec["in_shape"]))
        return est


def _images(arr: Any, is_tensor: bool) -> Tensor:
    """Images as float32 ``(N, C, H, W)``; ``uint8`` scaled to [0, 1]."""
    t = arr if is_tensor else torch.from_numpy(np.ascontiguousarray(arr))
    uint8 = t.dtype == torch.uint8
    if t.dim() == 3:
        t = t.unsqueeze(1)
    elif not is_tensor:
        channels_first = t.shape[1] in (1, 3, 4) and t.shape[-1] not in (1, 3, 4)
        if not channels_first:
            t = t.permute(0, 3, 1, 2)
    t = t.to(torch.float32)
    return t / 255.0 if uint8 else t
