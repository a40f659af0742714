"""BASiS under feature change (paper Sec. 4.3, Algorithm 2; experiments Sec. 5.4, Figs. 6-8).

Two networks are trained together from the raw inputs: a feature network ``f`` (the Siamese
net of :mod:`basis_nmce.features.siamese`, contrastive loss Eq. 21) and a BASiS spectral network
``g`` on its output (MSE on aligned exact eigenvectors, Eq. 15). Every feature iteration takes
one contrastive step; every ``spectral_every``-th (paper: 10) also does, on the *current*
features:

1. Algorithm 2, lines 3-6: embed the reference set ``V^ref`` exactly, ``phi^{update}``; fit the
   affine map ``T_G`` (Eq. 13, the same RANSAC fit as Algorithm 1) from the anchors' new
   coordinates ``phi^{a,update}`` to the previous ones ``phi^{a,prev}``, and carry the reference
   over: ``phi^{ref} <- T_G [phi^{update}; 1]`` (Eq. 14). Its anchors are the next
   ``phi^{a,prev}``.
2. Algorithm 1, lines 5-10: draw a batch (anchors + ``m - l`` fresh points), embed it exactly
   on the current features, align it to the carried reference on the anchors, and take one MSE
   step of ``g`` (features detached: the spectral loss does not train ``f``).

``use_tg=False`` is the ablation: ``T_G`` is the identity, so the reference is the plain exact
embedding of ``V^ref`` on the current features (its basis free to rotate, flip and rescale from
one spectral step to the next) and every batch is aligned to that: Algorithm 1 on drifting
features.

Logged per spectral step (``history_``): the feature and spectral losses, the ``T_G`` fit
(RMS residual, condition number of its design, inlier ratio; for the identity, the anchors'
RMS drift), the batch alignment, and every ``eval_every`` spectral steps, on the evaluation
split: the k-means NMI of ``g(f(x))`` beside the NMI of the exact embedding of ``f(x)`` (Fig. 6)
and the squared Grassmann distance d_G between the two. ``snapshots_`` keeps, at the feature
iterations in ``snapshots`` (Fig. 8: 10, 100, 500, 1500), the reference embedding before and
after ``T_G`` and the network's output on the evaluation split.

Ours where the paper is silent: the batch graph is ``graph`` meant over ``graph_size`` points
(default: the evaluation split's size) scaled to the batch (``batch_graph='derived'``, as BASiS
here; ``same_k`` is the paper's literal); the exact embedding the curves compare against is the
evaluation split's own graph; anchors are chosen once, on the initial features (strategy
``labels``: 25 per class as the paper, ``kmeans``, ``random``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from torch import Tensor

from basis_nmce.errors import BasisNmceError, ConfigError, DataError
from basis_nmce.evaluation.metrics import grassmann_distance, kmeans_labels, nmi
from basis_nmce.features.siamese import (
    PairSampler,
    build_siamese,
    contrastive_loss,
    knn_positives,
)
from basis_nmce.graph.batch import batch_graph as derive_batch_graph
from basis_nmce.graph.laplacian import batch_spectral_embedding, spectral_embedding
from basis_nmce.io import atomic_path, load_checkpoint, load_model, save_checkpoint, save_model
from basis_nmce.models import MLP, resolve_device
from basis_nmce.spectral import batch_limits
from basis_nmce.spectral.align import AlignmentResult, anchor_scale, apply_affine, ransac_affine
from basis_nmce.spectral.anchors import ANCHOR_STRATEGIES, build_reference
from basis_nmce.spectral.basis import AlignmentGuard

log = logging.getLogger(__name__)

LOG_FIELDS = (
    "iteration",
    "spectral_step",
    "feature_loss",
    "spectral_loss",
    "tg_residual",
    "tg_condition",
    "tg_inlier_ratio",
    "batch_residual",
    "batch_condition",
    "nmi_network",
    "nmi_exact",
    "grassmann",
    "seconds",
)
PAPER_SNAPSHOTS = (10, 100, 500, 1500)  # Fig. 8's rows


class BASiSJoint(TransformerMixin, ClusterMixin, BaseEstimator):
    """Algorithm 2: a Siamese feature network and a BASiS spectral network trained together.

    Defaults are the paper's Sec. 5.4 where it has one: 1500 feature iterations, a spectral
    step every 10th, 16-d features, K = 9 (the first non-trivial eigenvectors of L_N), Adam 1e-3
    (features, Table 3) and 1e-4 (spectral, Sec. 5.2), batch 512, 25 anchors per class, RANSAC
    100 x 20. ``fit(X, y, X_eval=..., y_eval=...)``: ``X`` float32 images ``(n, C, H, W)`` in
    [0, 1] or vectors ``(n, d)``; ``y`` the labels the contrastive pairs (``pairing='labels'``)
    and the ``labels`` anchors use; the evaluation split gives the logged curves.
    """

    def __init__(
        self,
        n_components: int = 9,
        n_iter: int = 1500,
        spectral_every: int = 10,
        use_tg: bool = True,
        *,
        feature_dim: int = 16,
        feature_network: str = "auto",
        feature_hidden: tuple[int, ...] = (256, 256),
        feature_lr: float = 1e-3,
        batch_pairs: int = 128,
        margin: float = 1.0,
        pairing: str = "labels",
        knn_positives: int = 10,
        n_neighbors: int = 50,
        sigma_neighbor: int = 7,
        sigma_mode: str = "local",
        sigma_value: float | None = None,
        symmetrize: str | None = None,
        kernel: str = "paper",
        laplacian: str = "sym",
        drop_first: bool = True,
        diffusion_time: int | None = None,
        batch_size: int = 512,
        n_anchors: int | None = None,
        anchors_per_cluster: int = 25,
        anchor_strategy: str = "labels",
        n_clusters: int | None = None,
        batch_graph: str = "derived",
        graph_size: int | None = None,
        lr: float = 1e-4,
        hidden: tuple[int, ...] = (256, 512, 512, 256),
        ransac_hypotheses: int = 100,
        ransac_sample: int = 20,
        ransac_tolerance: float = 0.3,
        ransac_tolerance_mode: str = "relative",
        ransac_min_inliers: int | None = None,
        eval_every: int = 10,
        snapshots: tuple[int, ...] = PAPER_SNAPSHOTS,
        checkpoint_every: int = 100,
        random_state: int | None = None,
        device: str = "auto",
        verbose: bool = False,
    ) -> None:
        self.n_components = n_components
        self.n_iter = n_iter
        self.spectral_every = spectral_every
        self.use_tg = use_tg
        self.feature_dim = feature_dim
        self.feature_network = feature_network
        self.feature_hidden = feature_hidden
        self.feature_lr = feature_lr
        self.batch_pairs = batch_pairs
        self.margin = margin
        self.pairing = pairing
        self.knn_positives = knn_positives
        self.n_neighbors = n_neighbors
        self.sigma_neighbor = sigma_neighbor
        self.sigma_mode = sigma_mode
        self.sigma_value = sigma_value
        self.symmetrize = symmetrize
        self.kernel = kernel
        self.laplacian = laplacian
        self.drop_first = drop_first
        self.diffusion_time = diffusion_time
        self.batch_size = batch_size
        self.n_anchors = n_anchors
        self.anchors_per_cluster = anchors_per_cluster
        self.anchor_strategy = anchor_strategy
        self.n_clusters = n_clusters
        self.batch_graph = batch_graph
        self.graph_size = graph_size
        self.lr = lr
        self.hidden = hidden
        self.ransac_hypotheses = ransac_hypotheses
        self.ransac_sample = ransac_sample
        self.ransac_tolerance = ransac_tolerance
        self.ransac_tolerance_mode = ransac_tolerance_mode
        self.ransac_min_inliers = ransac_min_inliers
        self.eval_every = eval_every
        self.snapshots = snapshots
        self.checkpoint_every = checkpoint_every
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # ----------------------------------------------------------------- settings
    @property
    def graph_kwargs(self) -> dict[str, Any]:
        """The graph the user means (over ``graph_size`` points), as the ``graph`` config."""
        return {
            "n_neighbors": self.n_neighbors,
            "sigma_mode": self.sigma_mode,
            "sigma_neighbor": self.sigma_neighbor,
            "sigma_value": self.sigma_value,
            "symmetrize": self.symmetrize,
            "kernel": self.kernel,
            "laplacian": self.laplacian,
            "drop_first": self.drop_first,
            "diffusion_time": self.diffusion_time,
        }

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _n_clusters(self) -> int:
        return int(self.n_clusters or self.n_components + int(bool(self.drop_first)))

    def _check_params(self) -> None:
        for name in ("n_iter", "spectral_every", "eval_every", "checkpoint_every", "batch_pairs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ConfigError(f"joint.{name}: must be a positive integer, got {v!r}")
        if self.spectral_every > self.n_iter:
            raise ConfigError(
                f"joint.spectral_every {self.spectral_every} exceeds joint.n_iter {self.n_iter}: "
                "no spectral step would run; lower spectral_every or raise n_iter"
            )
        if self.anchor_strategy not in ANCHOR_STRATEGIES:
            raise ConfigError(
                f"joint.anchor_strategy {self.anchor_strategy!r}: choose one of "
                f"{', '.join(ANCHOR_STRATEGIES)}"
            )
        batch_limits.check_components(self.n_components, self.drop_first)

    # --------------------------------------------------------------- networks
    def _build(self, in_shape: tuple[int, ...]) -> None:
        self.in_shape_ = tuple(int(s) for s in in_shape)
        self.feature_model_ = build_siamese(
            self.feature_network, self.in_shape_, int(self.feature_dim), tuple(self.feature_hidden)
        ).to(self.device_)
        self.model_ = MLP(int(self.feature_dim), self.n_components, tuple(self.hidden)).to(
            self.device_
        )

    @torch.no_grad()
    def _features(self, x: Tensor, batch: int = 2048) -> Tensor:
        """``f(x)`` without gradient, in eval mode (the Siamese nets have no batch norm)."""
        out = [
            self.feature_model_(x[s : s + batch].to(self.device_)) for s in range(0, len(x), batch)
        ]
        return torch.cat(out).float()

    def _ransac(self, src: Tensor, dst: Tensor, gen_seed: int):
        return ransac_affine(
            src.double().cpu(),
            dst.double().cpu(),
            n_hypotheses=self.ransac_hypotheses,
            sample_size=self.ransac_sample,
            tolerance=self.ransac_tolerance,
            relative=self.ransac_tolerance_mode == "relative",
            min_inliers=self.ransac_min_inliers,
            trivial_first=not self.drop_first,
            generator=torch.Generator().manual_seed(gen_seed),
        )

    # ------------------------------------------------------- Algorithm 2 parts
    def _transport(self, x: Tensor, spectral_step: int) -> dict[str, Any]:
        """Algorithm 2 lines 3-6: re-embed ``V^ref`` on the current features and carry the
        reference over (:func:`carry_reference`)."""
        z = self._features(x[torch.as_tensor(self.reference_index_)])
        phi, _ = batch_spectral_embedding(
            z, self.n_components, **self.batch_graph_, dtype=torch.float64
        )
        phi = phi.cpu()
        aligned, fit = carry_reference(
            phi,
            torch.as_tensor(self.anchor_prev_, dtype=torch.float64),
            use_tg=self.use_tg,
            fit=lambda src, dst: self._ransac(src, dst, _stream(self._seed(), spectral_step, 1)),
        )
        self.anchor_prev_ = aligned[: len(self.anchor_index_)].numpy().copy()
        return {"before": phi.numpy(), "after": aligned.numpy(), **fit}

    def _batch(self, x: Tensor, spectral_step: int) -> tuple[Tensor, Tensor, dict[str, float]]:
        """Algorithm 1 lines 5-9 on the current features: ``(features, aligned targets, fit)``,
        redrawing batches whose alignment the guard rejects."""
        anchors = self.anchor_index_
        l, m = len(anchors), self.batch_size_
        dst = torch.as_tensor(self.anchor_prev_, dtype=torch.float64)
        pool = np.setdiff1d(np.arange(len(x)), anchors)
        for attempt in range(50):
            rng = np.random.default_rng([self._seed(), spectral_step, attempt, 2])
            index = np.concatenate([anchors, rng.choice(pool, size=m - l, replace=False)])
            z = self._features(x[torch.as_tensor(index)])
            phi, _ = batch_spectral_embedding(
                z, self.n_components, **self.batch_graph_, dtype=torch.float64
            )
            res = self._ransac(phi[:l], dst, _stream(self._seed(), spectral_step, 3 + attempt))
            if self._guard.accept(res.residual, res.condition_number):
                target = apply_affine(res.transform.double().to(phi.device), phi)
                fit = {
                    "batch_residual": res.residual / max(anchor_scale(dst), 1e-12),
                    "batch_condition": res.condition_number,
                }
                return z, target.float().to(self.device_), fit
        raise BasisNmceError(
            f"spectral step {spectral_step}: 50 batches in a row gave ill-conditioned anchor "
            "alignments; raise joint n_anchors or the anchors' spread (anchor_strategy)"
        )

    @torch.no_grad()
    def _evaluate(self, x_eval: Tensor, y_eval: np.ndarray | None) -> dict[str, Any]:
        """NMI of the network's and of the exact embedding of the current features, and d_G."""
        z = self._features(x_eval)
        net = self.model_(z).cpu().numpy().astype(np.float64)
        exact = spectral_embedding(
            z.cpu().numpy(), self.n_components, seed=self._seed(), **self.eval_graph_
        ).embedding.astype(np.float64)
        out = {"grassmann": grassmann_distance(net, exact), "network": net, "exact": exact}
        if y_eval is not None and (y_eval >= 0).any():
            k = self._n_clusters()
            out["nmi_network"] = nmi(y_eval, kmeans_labels(self._cluster_part(net), k, seed=0))
            out["nmi_exact"] = nmi(y_eval, kmeans_labels(self._cluster_part(exact), k, seed=0))
        return out

    def _cluster_part(self, emb: np.ndarray) -> np.ndarray:
        """The columns k-means sees: all but a kept trivial eigenvector (column 0)."""
        return emb if self.drop_first or emb.shape[1] < 2 else emb[:, 1:]

    # -------------------------------------------------------------------- fit
    def fit(
        self,
        X,
        y=None,
        *,
        X_eval=None,
        y_eval=None,
        checkpoint: str | Path | None = None,
        log_csv: str | Path | None = None,
    ):
        """Train both networks (module docstring). ``X_eval`` / ``y_eval``: the split the
        curves are measured on (default: ``X``, ``y``). ``checkpoint``: written every
        ``checkpoint_every`` feature iterations and resumed from when it was written with the
        same settings on the same data."""
        self._check_params()
        x = _as_inputs(X, "X")
        ytr = None if y is None else np.asarray(y)
        if ytr is not None and len(ytr) != len(x):
            raise DataError(f"y has {len(ytr)} labels for {len(x)} rows of X")
        x_eval = x if X_eval is None else _as_inputs(X_eval, "X_eval")
        if tuple(x_eval.shape[1:]) != tuple(x.shape[1:]):
            raise DataError(
                f"X_eval rows have shape {tuple(x_eval.shape[1:])}, X rows {tuple(x.shape[1:])}"
            )
        yev = ytr if X_eval is None else (None if y_eval is None else np.asarray(y_eval))
        n = len(x)
        self.device_ = resolve_device(self.device)
        torch.manual_seed(self._seed())
        self._build(tuple(x.shape[1:]))
        m, n_anchors = batch_limits.plan_batch(
            self.batch_size,
            n,
            self.n_components,
            derive_batch_graph(
                self.graph_kwargs,
                min(self.batch_size, n),
                int(self.graph_size or len(x_eval)),
                self.batch_graph,
            )["n_neighbors"],
            self.n_anchors,
            int(self.anchors_per_cluster),
            self._n_clusters(),
            warn_cap=False,
        )
        self.batch_size_ = m
        self.batch_graph_ = derive_batch_graph(
            self.graph_kwargs, m, int(self.graph_size or len(x_eval)), self.batch_graph
        )
        self.eval_graph_ = derive_batch_graph(
            self.graph_kwargs,
            len(x_eval),
            int(self.graph_size or len(x_eval)),
            self.batch_graph,
        )
        neighbours = knn_positives(x, int(self.knn_positives)) if self.pairing == "knn" else None
        sampler = PairSampler(self.pairing, n, labels=ytr, neighbours=neighbours, seed=self._seed())
        ref = build_reference(
            self._features(x),
            self.n_components,
            batch_size=m,
            n_anchors=n_anchors,
            strategy=self.anchor_strategy,
            n_clusters=self._n_clusters(),
            labels=ytr,
            graph=self.batch_graph_,
            seed=self._seed(),
        )
        self.anchor_index_ = ref.anchor_index
        self.reference_index_ = ref.reference_index
        self.anchor_prev_ = ref.anchor_embedding.astype(np.float64)
        self._guard = AlignmentGuard()
        f_opt = torch.optim.Adam(self.feature_model_.parameters(), lr=self.feature_lr)
        g_opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        history: list[dict[str, float]] = []
        snaps: dict[str, np.ndarray] = {}
        start = 0
        fingerprint = self._fingerprint(x, ref.reference_index)
        ckpt = load_checkpoint(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
            log.warning("%s was written by other settings or data; starting afresh", checkpoint)
            ckpt = None
        if ckpt is not None:
            self.feature_model_.load_state_dict(ckpt["feature_model"])
            self.model_.load_state_dict(ckpt["model"])
            f_opt.load_state_dict(ckpt["feature_optimizer"])
            g_opt.load_state_dict(ckpt["optimizer"])
            start, history = int(ckpt["iteration"]), [dict(h) for h in ckpt["history"]]
            self.anchor_prev_ = np.asarray(ckpt["anchor_prev"], dtype=np.float64).copy()
            snaps = {k: np.asarray(v) for k, v in ckpt["snapshots"].items()}
            self._guard.restore(ckpt["guard"])
            torch.set_rng_state(ckpt["torch_rng"])
            log.info("resuming from %s at iteration %d", checkpoint, start)
        self.resumed_from_ = start
        wanted = sorted({min(max(int(s), 1), self.n_iter) for s in self.snapshots})
        t0 = time.perf_counter()
        feature_losses: list[float] = []
        for it in range(start, self.n_iter):
            # the feature network: one contrastive step (Eq. 21)
            self.feature_model_.train()
            i, j, same = sampler(it, int(self.batch_pairs))
            both = torch.cat([x[torch.from_numpy(i)], x[torch.from_numpy(j)]]).to(self.device_)
            z = self.feature_model_(both)
            f_loss = contrastive_loss(
                z[: len(i)], z[len(i) :], torch.from_numpy(same).to(self.device_), self.margin
            )
            if not torch.isfinite(f_loss):
                raise DataError(f"the feature loss became {float(f_loss)} at iteration {it + 1}")
            f_opt.zero_grad(set_to_none=True)
            f_loss.backward()
            f_opt.step()
            self.feature_model_.eval()
            feature_losses.append(float(f_loss.detach()))
            if (it + 1) % self.spectral_every:
                continue
            # the spectral network: Algorithm 2, then one aligned BASiS step (Algorithm 1)
            step = (it + 1) // self.spectral_every
            moved = self._transport(x, step)
            zb, target, batch_fit = self._batch(x, step)
            g_loss = torch.mean(torch.sum((self.model_(zb) - target) ** 2, dim=1))  # Eq. 15
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            row: dict[str, float] = {
                "iteration": it + 1,
                "spectral_step": step,
                "feature_loss": float(np.mean(feature_losses)),
                "spectral_loss": float(g_loss.detach()),
                "tg_residual": moved["tg_residual"],
                "tg_condition": moved["tg_condition"],
                "tg_inlier_ratio": moved["tg_inlier_ratio"],
                **batch_fit,
                "nmi_network": math.nan,
                "nmi_exact": math.nan,
                "grassmann": math.nan,
            }
            feature_losses = []
            last = it + 1 + self.spectral_every > self.n_iter
            # Fig. 8's moments: the first spectral step at or after each wanted iteration
            snap = [
                s
                for s in wanted
                if it + 1 - self.spectral_every < s <= it + 1 or (last and s > it + 1)
            ]
            if step % self.eval_every == 0 or last or snap:
                ev = self._evaluate(x_eval, yev)
                row["grassmann"] = ev["grassmann"]
                row["nmi_network"] = ev.get("nmi_network", math.nan)
                row["nmi_exact"] = ev.get("nmi_exact", math.nan)
                for s in snap:
                    snaps[f"before_{s}"] = moved["before"].astype(np.float32)
                    snaps[f"after_{s}"] = moved["after"].astype(np.float32)
                    snaps[f"network_{s}"] = ev["network"].astype(np.float32)
                    snaps[f"exact_{s}"] = ev["exact"].astype(np.float32)
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            if self.verbose and step % 10 == 0:
                log.info(
                    "iteration %d: feature loss %.4g, spectral loss %.4g, NMI net %.3f exact %.3f",
                    it + 1,
                    row["feature_loss"],
                    row["spectral_loss"],
                    row["nmi_network"],
                    row["nmi_exact"],
                )
            if checkpoint and ((it + 1) % self.checkpoint_every == 0 or it + 1 == self.n_iter):
                save_checkpoint(
                    checkpoint,
                    {
                        "feature_model": self.feature_model_.state_dict(),
                        "model": self.model_.state_dict(),
                        "feature_optimizer": f_opt.state_dict(),
                        "optimizer": g_opt.state_dict(),
                        "iteration": it + 1,
                        "history": history,
                        "anchor_prev": torch.from_numpy(self.anchor_prev_.copy()),
                        "snapshots": {k: torch.from_numpy(v) for k, v in snaps.items()},
                        "guard": self._guard.state(),
                        "fingerprint": fingerprint,
                        "torch_rng": torch.get_rng_state(),
                    },
                )
        self.history_ = history
        self.snapshots_ = snaps
        self.snapshot_iterations_ = [s for s in wanted if f"after_{s}" in snaps]
        self.n_iter_ = self.n_iter
        self.feature_model_.eval()
        self.model_.eval()
        if log_csv:
            write_history(log_csv, history)
        from sklearn.cluster import KMeans

        emb = self._cluster_part(self.transform(x))
        km = KMeans(self._n_clusters(), n_init=10, random_state=self._seed()).fit(emb)
        self.cluster_centers_ = km.cluster_centers_.astype(np.float64)
        return self

    def _fingerprint(self, x: Tensor, reference_index: np.ndarray) -> str:
        params = {k: v for k, v in self.get_params().items() if k not in ("verbose", "device")}
        h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(repr(tuple(x.shape)).encode())
        h.update(x[:32].contiguous().cpu().numpy().tobytes())
        h.update(np.ascontiguousarray(reference_index).tobytes())
        return h.hexdigest()

    # -------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this BASiSJoint instance is not fitted yet; call fit(X) first")

    def features(self, X) -> np.ndarray:
        """The feature network's output ``f(X)``."""
        self._check_fitted()
        return self._features(self._inputs(X)).cpu().numpy()

    def transform(self, X) -> np.ndarray:
        """The spectral network's output ``g(f(X))``."""
        self._check_fitted()
        with torch.no_grad():
            return self.model_(self._features(self._inputs(X))).cpu().numpy()

    def _inputs(self, X) -> Tensor:
        x = _as_inputs(X, "X")
        if tuple(x.shape[1:]) != self.in_shape_:
            raise DataError(
                f"X rows have shape {tuple(x.shape[1:])}, but this model was fitted on "
                f"{self.in_shape_}; pass inputs of the fitted shape"
            )
        return x

    def predict(self, X) -> np.ndarray:
        """Cluster labels: the nearest k-means centre (fitted on the training output)."""
        emb = self._cluster_part(self.transform(X).astype(np.float64))
        c = self.cluster_centers_
        d2 = (emb**2).sum(1)[:, None] - 2 * emb @ c.T + (c**2).sum(1)[None, :]
        return np.argmin(d2, axis=1)

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        return self.fit(X, y, **kwargs).predict(X)

    # ---------------------------------------------------------------- persist
    def save(self, path: str | Path) -> None:
        """Both networks' state dicts in ``path`` (``feature.*``, ``spectral.*``), settings and
        k-means centres in ``path``.json; :meth:`load` reads them without unpickling."""
        self._check_fitted()
        params = self.get_params()
        for key in ("feature_hidden", "hidden", "snapshots"):
            params[key] = list(params[key])
        state = {f"feature.{k}": v for k, v in self.feature_model_.state_dict().items()}
        state.update({f"spectral.{k}": v for k, v in self.model_.state_dict().items()})
        meta = {
            "class": "BASiSJoint",
            "params": params,
            "in_shape": list(self.in_shape_),
            "cluster_centers": self.cluster_centers_.tolist(),
            "n_iter": getattr(self, "n_iter_", None),
            "resumed_from": getattr(self, "resumed_from_", None),
        }
        save_model(path, state, meta)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> BASiSJoint:
        """A model saved by :meth:`save` (``weights_only``: no code runs)."""
        hint = "save the estimator again with BASiSJoint.save (model.pt and model.json together)"
        state, meta = load_model(path, hint=hint)
        if meta.get("class") != "BASiSJoint":
            raise DataError(
                f"{path}: not a BASiSJoint model (class {meta.get('class')!r}); load it with the "
                "code that saved it"
            )
        params = dict(meta["params"])
        for key in ("feature_hidden", "hidden", "snapshots"):
            params[key] = tuple(params[key])
        params["device"] = device
        est = cls(**params)
        est.device_ = resolve_device(device)
        est._build(tuple(meta["in_shape"]))
        try:
            est.feature_model_.load_state_dict(
                {k[8:]: v for k, v in state.items() if k.startswith("feature.")}
            )
            est.model_.load_state_dict(
                {k[9:]: v for k, v in state.items() if k.startswith("spectral.")}
            )
        except RuntimeError as e:
            raise DataError(f"{path}: does not match the settings in its JSON ({e}); {hint}") from e
        est.feature_model_.eval()
        est.model_.eval()
        est.cluster_centers_ = np.asarray(meta["cluster_centers"], dtype=np.float64)
        est.n_iter_ = meta.get("n_iter")
        est.resumed_from_ = meta.get("resumed_from")
        return est


def carry_reference(
    phi_update: Tensor,
    anchor_prev: Tensor,
    *,
    use_tg: bool = True,
    fit: Callable[[Tensor, Tensor], AlignmentResult] | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Algorithm 2 lines 4-6: ``T_G`` from the anchors' updated embedding to their previous
    one, applied to the whole updated embedding (Eq. 14).

    ``phi_update`` ``(m, K)``: the reference set embedded on the updated features, anchors in
    its first ``l = len(anchor_prev)`` rows; ``anchor_prev`` ``(l, K)``: the anchors' previous
    (carried) coordinates. ``fit``: the robust affine fit ``(src, dst) -> AlignmentResult``
    (default :func:`~basis_nmce.spectral.align.ransac_affine` with its defaults). Returns the
    aligned embedding (float64) and the fit: ``tg_residual`` (RMS anchor error after ``T_G``,
    relative to the anchors' spread), ``tg_condition``, ``tg_inlier_ratio``. ``use_tg=False``:
    ``T_G`` is the identity and ``tg_residual`` the anchors' relative drift."""
    l = len(anchor_prev)
    phi = phi_update.to(torch.float64)
    prev = anchor_prev.to(torch.float64)
    if phi.ndim != 2 or phi.shape[0] < l or phi.shape[1] != prev.shape[1]:
        raise DataError(
            f"phi_update {tuple(phi.shape)} must hold the {l} anchors of anchor_prev "
            f"{tuple(prev.shape)} in its first rows, with as many columns"
        )
    scale = max(anchor_scale(prev), 1e-12)
    if not use_tg:
        drift = float((phi[:l] - prev).square().sum(1).mean().sqrt())
        return phi, {
            "tg_residual": drift / scale,
            "tg_condition": math.nan,
            "tg_inlier_ratio": math.nan,
        }
    res = (fit or ransac_affine)(phi[:l], prev)
    aligned = apply_affine(res.transform.to(torch.float64), phi)
    return aligned, {
        "tg_residual": res.residual / scale,
        "tg_condition": res.condition_number,
        "tg_inlier_ratio": res.inlier_ratio,
    }


def _stream(seed: int, step: int, which: int) -> int:
    """A generator seed for one RANSAC fit, from the run's seed, the step and the fit."""
    return int(np.random.default_rng([seed, step, which, 0x7C]).integers(2**62))


def _as_inputs(X, name: str) -> Tensor:
    """``X`` as a finite float32 CPU tensor of vectors ``(n, d)`` or images ``(n, C, H, W)``."""
    x = X.detach().cpu() if isinstance(X, Tensor) else torch.as_tensor(np.asarray(X))
    if x.ndim not in (2, 4) or len(x) == 0:
        raise DataError(
            f"{name} must be vectors (n, d) or images (n, C, H, W); got shape {tuple(x.shape)}"
        )
    x = x.to(torch.float32)
    if not torch.isfinite(x).all():
        raise DataError(f"{name} contains NaN or infinite values; remove or impute them first")
    return x.contiguous()


def meeting_iteration(history: list[dict[str, float]], tol: float = 0.02) -> int | None:
    """The first logged iteration from which the network's NMI stays within ``tol`` of the
    exact embedding's at every later evaluation (Fig. 6's "around iteration 800"); None when
    the last evaluation is still further apart."""
    rows = [
        h
        for h in history
        if math.isfinite(h.get("nmi_network", math.nan))
        and math.isfinite(h.get("nmi_exact", math.nan))
    ]
    met = None
    for h in rows:
        close = abs(h["nmi_network"] - h["nmi_exact"]) <= tol
        if close and met is None:
            met = int(h["iteration"])
        elif not close:
            met = None
    return met


def write_history(path: str | Path, history: list[dict[str, float]]) -> None:
    """The per-spectral-step log as CSV (the report's Fig. 6, `dvc plots`)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        w.writeheader()
        for row in history:
            w.writerow({k: row.get(k, math.nan) for k in LOG_FIELDS})
