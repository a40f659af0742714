"""Kind ``raw``: flattened inputs, scaled, optionally projected by PCA fitted on the train split."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from ..errors import ConfigError


def raw_features(
    x_train: np.ndarray,
    x_test: np.ndarray,
    *,
    scale: str = "standard",
    pca: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Flatten, scale (``unit``: uint8 images / 255; ``standard``: train mean/std; ``none``)
    and optionally reduce to ``pca`` dimensions. Statistics come from the train split only."""
    xtr = x_train.reshape(len(x_train), -1)
    xte = x_test.reshape(len(x_test), -1)
    if scale == "unit":
        denom = 255.0 if x_train.dtype == np.uint8 else max(float(np.abs(xtr).max()), 1e-12)
        xtr = xtr.astype(np.float32) / denom
        xte = xte.astype(np.float32) / denom
    elif scale == "standard":
        xtr = xtr.astype(np.float64)
        mean = xtr.mean(axis=0)
        std = xtr.std(axis=0)
        std[std < 1e-12] = 1.0
        xtr = (xtr - mean) / std
        xte = (xte.astype(np.float64) - mean) / std
    elif scale != "none":
        raise ConfigError(f"features.raw.scale: {scale!r} is not one of none, unit, standard")
    if pca is not None:
        max_dim = min(xtr.shape)
        if pca > max_dim:
            raise ConfigError(
                f"features.raw.pca: {pca} exceeds min(n_train, dim) = {max_dim}; lower it or use null"
            )
        model = PCA(n_components=pca, random_state=seed, svd_solver="auto")
        xtr = model.fit_transform(xtr)
        xte = model.transform(xte)
    return np.ascontiguousarray(xtr, dtype=np.float32), np.ascontiguousarray(xte, dtype=np.float32)
