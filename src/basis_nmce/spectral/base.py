"""The learnt baselines' training: one Adam loop on a loss, for SpectralNet, SpecNet2 and
Diffusion Net (BASiS Table 1).

:class:`NeuralSpectralEstimator` adds to :class:`~basis_nmce.spectral.estimator.SpectralEstimator`
(graph settings, transform, predict, save/load, shared with BASiS) what the three baselines
share and BASiS does not: seeded batch sampling and the Adam loop with checkpoint/resume.

A subclass declares its ``__init__`` with explicit keyword parameters (scikit-learn's
``get_params`` reads the signature) and implements three hooks: :meth:`_loss` (one training
step's loss), :meth:`_finish` (what is computed once after training, e.g. SpecNet2's rotation)
and :meth:`_head` (the fixed post-processing of the network's output at inference).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from basis_nmce.spectral import batch_limits
from basis_nmce.spectral.anchors import rows
from basis_nmce.spectral.estimator import (
    SpectralEstimator,
    check_array,
    progress_bar,
    write_history,
)

from ..errors import ConfigError, DataError, SettingWarning
from ..io import load_checkpoint, save_checkpoint
from ..models import resolve_device

log = logging.getLogger(__name__)

#: parameters that do not change a fit's result (a checkpoint may be resumed with others)
NON_RESULT_PARAMS = ("verbose", "device", "n_threads", "checkpoint_every")


class NeuralSpectralEstimator(SpectralEstimator):
    """Base of the learnt spectral embeddings (scikit-learn API; see the module docstring).

    Expected attributes (constructor parameters of every subclass): ``n_components``,
    ``n_neighbors``, ``sigma_neighbor``, ``laplacian``, ``batch_size``, ``n_iter``, ``lr``,
    ``hidden``, ``random_state``, ``device``, ``sigma_mode``, ``sigma_value``, ``symmetrize``,
    ``kernel``, ``drop_first``, ``n_clusters``, ``batch_graph``, ``graph_size``,
    ``checkpoint_every``, ``n_threads``, ``verbose``.
    """

    #: columns of the per-step training log (``history_``, ``log_csv``)
    LOG_FIELDS: ClassVar[tuple[str, ...]] = ("step", "loss", "lr", "seconds")

    def _check_params(self, n: int) -> int:
        """The batch size actually used; refuses what the data cannot honour."""
        batch_limits.check_components(self.n_components, self.drop_first)
        m = int(self.batch_size)
        if m > n:
            warnings.warn(
                f"batch_size {m} exceeds the {n} training points: every batch is the whole "
                f"training set; set batch_size <= {n} to choose",
                SettingWarning,
                stacklevel=3,
            )
            m = n
        k_b = self.batch_graph_kwargs(n)["n_neighbors"]
        if m <= k_b or m < self._out_dim() + 1:
            raise ConfigError(
                f"batch_size {m} must exceed the batch graph's {k_b} neighbours and "
                f"n_components ({self._out_dim()} network outputs); raise batch_size"
            )
        if int(self.n_iter) < 0:
            raise ConfigError(f"n_iter {self.n_iter}: must be >= 0")
        return m

    def _sample(self, n: int, m: int, step: int, stream: int) -> np.ndarray:
        """``m`` distinct training rows for ``step``, from seed, step and ``stream`` alone (so a
        resumed run draws the batches an uninterrupted one would)."""
        rng = np.random.default_rng([self._seed(), int(step), int(stream)])
        return np.sort(rng.choice(n, size=m, replace=False))

    def _rows(self, x, index: np.ndarray) -> torch.Tensor:
        return rows(x, index, self.device_)

    def _fingerprint(self, x) -> str:
        """What a checkpoint must match to be resumed: settings and data."""
        params = {k: v for k, v in self.get_params().items() if k not in NON_RESULT_PARAMS}
        h = hashlib.sha256(type(self).__name__.encode())
        h.update(json.dumps(params, sort_keys=True, default=str).encode())
        h.update(repr((tuple(x.shape), str(x.dtype))).encode())
        h.update(np.ascontiguousarray(np.asarray(x[:64], dtype=np.float32)).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------- subclass hooks
    def _prepare(self, x, m: int) -> None:
        """Before the first step (also on resume): e.g. Diffusion Net's fixed targets."""

    def _loss(self, x, m: int, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One training step's loss (with gradient) and extra log values."""
        raise NotImplementedError

    def _finish(self, x, m: int) -> None:
        """After the last step: what inference needs besides the network."""

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        X,
        y=None,
        *,
        checkpoint: str | Path | None = None,
        log_csv: str | Path | None = None,
    ):
        """Train on ``X`` (n, d); ``y`` is ignored (label-free).

        ``checkpoint``: a file written every ``checkpoint_every`` steps and, when it exists
        and was written by the same settings on the same data, resumed from (batches depend
        on seed and step only, so a resumed run equals an uninterrupted one). ``log_csv``:
        the per-step training log.
        """
        x = check_array(X, "X")
        n = len(x)
        m = self._check_params(n)
        self.device_ = resolve_device(self.device)
        self.n_features_in_ = x.shape[1]
        self.batch_graph_ = self.batch_graph_kwargs(n)
        self.graph_size_ = int(self.graph_size or n)  # the target graph's number of points
        with self._threads():
            torch.manual_seed(self._seed())
            self.model_ = self._build_network()
            opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
            fingerprint = self._fingerprint(x)
            start, history = self._resume(checkpoint, fingerprint, opt)
            self.resumed_from_ = start
            self._prepare(x, m)
            self.model_.train()
            t0 = time.perf_counter()
            progress = progress_bar(type(self).__name__, int(self.n_iter), start, self.verbose)
            for step in range(start, int(self.n_iter)):
                loss, extra = self._loss(x, m, step)
                if not torch.isfinite(loss):
                    raise DataError(
                        f"{type(self).__name__}: the loss became {float(loss)} at step {step + 1}; "
                        "lower lr or check the features for duplicates and extreme values"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                row = {"step": step + 1, "loss": float(loss.detach()), "lr": float(self.lr)}
                row.update(extra)
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                progress.update(1)
                last = step + 1 == int(self.n_iter)
                if checkpoint and ((step + 1) % int(self.checkpoint_every) == 0 or last):
                    self._save_checkpoint(checkpoint, step + 1, opt, history, fingerprint)
            progress.close()
            self.history_ = history
            self.n_iter_ = len(history)
            self.model_.eval()
            with torch.no_grad():
                self._finish(x, m)
            if log_csv:
                write_history(log_csv, history, self.LOG_FIELDS)
            self._fit_kmeans(x)
        return self

    def _resume(
        self, checkpoint: str | Path | None, fingerprint: str, opt: torch.optim.Optimizer
    ) -> tuple[int, list[dict[str, float]]]:
        ckpt = load_checkpoint(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.get("fingerprint") != fingerprint:
            log.warning("%s was written by other settings or data; starting afresh", checkpoint)
            ckpt = None
        if ckpt is None:
            return 0, []
        try:
            self.model_.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            self._set_extra_state(dict(ckpt.get("extra", {})))
            start, history = int(ckpt["step"]), [dict(h) for h in ckpt["history"]]
        except (KeyError, RuntimeError, ValueError) as e:
            raise DataError(
                f"{checkpoint}: not a {type(self).__name__} checkpoint ({e}); delete it to start "
                "the training afresh"
            ) from e
        log.info("resuming from %s at step %d", checkpoint, start)
        return start, history

    def _save_checkpoint(self, path, step: int, opt, history, fingerprint: str) -> None:
        save_checkpoint(
            path,
            {
                "model": self.model_.state_dict(),
                "optimizer": opt.state_dict(),
                "extra": self._extra_state(),
                "step": step,
                "history": history,
                "fingerprint": fingerprint,
            },
        )
