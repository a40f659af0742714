"""The in-memory data set, its validation, and label / feature normalisation.

Conventions (checked by :func:`validate_dataset`):

* ``x``: float32 vectors ``(n, d)``, or uint8 images ``(n, H, W)`` grey / ``(n, H, W, C)`` channels
  last. Other numeric dtypes are accepted by the validator; the loaders convert to these two.
* ``y``: int64 ``(n,)``, classes ``0..C-1``, ``-1`` where a point has no label (all ``-1`` when the
  source has none; then ``meta["n_classes"]`` is None).
* ``meta``: at least ``name``, ``source``, ``n_classes``, ``image_shape``, ``split``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

REQUIRED_META = ("name", "source", "n_classes", "image_shape", "split")
SPLITS = ("official", "holdout")
UNLABELLED = -1


@dataclass
class Dataset:
    """Train and test arrays plus metadata (see the module docstring for the conventions)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int | None:
        n = self.meta.get("n_classes")
        return None if n is None else int(n)

    @property
    def is_image(self) -> bool:
        """True when the rows are stored as images (3-D grey or 4-D channels-last arrays)."""
        return self.x_train.ndim >= 3

    @property
    def name(self) -> str:
        return str(self.meta.get("name", ""))


def _first_bad(mask: np.ndarray) -> str:
    idx = np.argwhere(mask)[0]
    return f"row {int(idx[0])}" + (f", column {int(idx[1])}" if len(idx) == 2 else "")


def check_features(x: Any, key: str, origin: str, allow_empty: bool = False) -> np.ndarray:
    """Check one feature array: numeric, 2-D vectors or 3/4-D images, finite, non-empty."""
    if not isinstance(x, np.ndarray):
        raise DataError(f"{origin}: {key} is a {type(x).__name__}, not a numpy array")
    if x.dtype.kind not in "iuf":
        what = "strings" if x.dtype.kind in "USO" else f"dtype {x.dtype}"
        raise DataError(
            f"{origin}: {key} holds {what}; features must be numbers (integers or floats): "
            "convert or drop the non-numeric columns"
        )
    if x.ndim not in (2, 3, 4):
        raise DataError(
            f"{origin}: {key} has {x.ndim} dimension(s) {tuple(x.shape)}; expected 2-D vectors "
            "(n, d), 3-D grey images (n, H, W) or 4-D images (n, H, W, C): "
            + (
                "reshape a single vector per row with x.reshape(-1, 1)"
                if x.ndim == 1
                else "reshape it"
            )
        )
    if x.shape[0] == 0 and not allow_empty:
        raise DataError(f"{origin}: {key} is empty (0 rows); it needs at least one point")
    if any(s == 0 for s in x.shape[1:]):
        raise DataError(f"{origin}: {key} has shape {tuple(x.shape)}: a point has no features")
    if x.dtype.kind == "f":
        nan = np.isnan(x)
        if nan.any():
            flat = nan.reshape(len(x), -1)
            raise DataError(
                f"{origin}: {key} contains {int(nan.sum())} NaN value(s) "
                f"(first at {_first_bad(flat)}); "
                "remove or impute them"
            )
        inf = np.isinf(x)
        if inf.any():
            flat = inf.reshape(len(x), -1)
            raise DataError(
                f"{origin}: {key} contains {int(inf.sum())} infinite value(s) (first at "
                f"{_first_bad(flat)}); remove or clip them"
            )
    return x


def normalise_features(
    x: np.ndarray, key: str, origin: str, allow_empty: bool = False
) -> np.ndarray:
    """Validate ``x`` and convert it: uint8 images stay uint8, everything else becomes float32."""
    check_features(x, key, origin, allow_empty=allow_empty)
    if x.dtype == np.uint8 and x.ndim >= 3:
        return np.ascontiguousarray(x)
    if x.dtype.kind == "f" and x.size and np.abs(x).max() > np.finfo(np.float32).max:
        raise DataError(
            f"{origin}: {key} has values beyond the float32 range (|x| > 3.4e38); rescale them"
        )
    return np.ascontiguousarray(x, dtype=np.float32)


def as_label_vector(y: Any, key: str, origin: str) -> np.ndarray:
    """Return ``y`` as an int64 vector; whole-number floats are converted, anything else refused."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{origin}: {key} has shape {tuple(y.shape)}; labels must be a vector (n,) with one "
            "integer per point"
        )
    kind = y.dtype.kind
    if kind in "USO":
        raise DataError(
            f"{origin}: {key} holds strings/objects ({y.dtype}); labels must be integers: "
            "encode class names as integers, e.g. with numpy.unique(names, return_inverse=True)"
        )
    if kind == "b":
        return y.astype(np.int64)
    if kind == "f":
        bad = ~np.isfinite(y)
        if bad.any():
            raise DataError(
                f"{origin}: {key} contains NaN or inf (first at row {int(np.argmax(bad))}); "
                "every label must be an integer"
            )
        frac = y != np.round(y)
        if frac.any():
            i = int(np.argmax(frac))
            raise DataError(
                f"{origin}: {key} holds non-integer labels (row {i}: {y[i]!r}); labels must be "
                "whole numbers (class ids), not scores or probabilities"
            )
        if len(y) and np.abs(y).max() > 2**62:
            raise DataError(f"{origin}: {key} has labels too large for int64")
        return y.astype(np.int64)
    if kind in "iu":
        if kind == "u" and y.dtype.itemsize == 8 and len(y) and y.max() > np.iinfo(np.int64).max:
            raise DataError(f"{origin}: {key} has labels too large for int64")
        return y.astype(np.int64)
    raise DataError(f"{origin}: {key} has dtype {y.dtype}; labels must be integers")


def encode_labels(
    y_train: np.ndarray | None,
    y_test: np.ndarray | None,
    n_train: int,
    n_test: int,
    unlabelled: int | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int] | None]:
    """Map arbitrary integer labels to ``0..C-1`` consistently over train and test.

    ``None`` for a split means "no labels" (all -1). Values equal to ``unlabelled`` become -1.
    Returns the two int64 vectors and the sorted original values (index = new label), or None
    when no point is labelled.
    """
    parts = [
        np.full(n, UNLABELLED, np.int64) if y is None else np.asarray(y, np.int64)
        for y, n in ((y_train, n_train), (y_test, n_test))
    ]
    masks = [
        np.zeros(len(p), bool)
        if y is None
        else (p != unlabelled if unlabelled is not None else np.ones(len(p), bool))
        for p, y in zip(parts, (y_train, y_test), strict=True)
    ]
    values = np.unique(np.concatenate([p[m] for p, m in zip(parts, masks, strict=True)]))
    out = []
    for p, m in zip(parts, masks, strict=True):
        q = np.full(len(p), UNLABELLED, np.int64)
        q[m] = np.searchsorted(values, p[m])
        out.append(q)
    return out[0], out[1], ([int(v) for v in values] if len(values) else None)


def _check_labels(y: Any, key: str, n: int, n_classes: int | None, origin: str) -> None:
    if not isinstance(y, np.ndarray) or y.ndim != 1 or y.dtype.kind not in "iu":
        got = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, np.ndarray) else type(y).__name__
        raise DataError(f"{origin}: {key} must be an integer vector (n,), got {got}")
    if len(y) != n:
        raise DataError(
            f"{origin}: {key} has {len(y)} labels but x{key[1:]} has {n} rows; "
            "give exactly one label per point"
        )
    if n_classes is None:
        if (y != UNLABELLED).any():
            raise DataError(
                f"{origin}: {key} holds labels but meta n_classes is None; set n_classes or use -1"
            )
        return
    bad = (y < UNLABELLED) | (y >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{origin}: {key}[{i}] = {int(y[i])} is outside 0..{n_classes - 1} (-1 = unlabelled); "
            "remap the labels to 0..C-1"
        )


def validate_dataset(ds: Dataset, origin: str, *, require_test: bool = True) -> None:
    """Stop with a :class:`DataError` naming ``origin`` and the array when ``ds`` breaks the
    conventions of this module. ``require_test=False`` admits an empty test split (before the
    hold-out split is drawn)."""
    missing = [k for k in REQUIRED_META if k not in ds.meta]
    if missing:
        raise DataError(f"{origin}: meta lacks {', '.join(missing)}")
    if ds.meta["split"] not in SPLITS:
        raise DataError(
            f"{origin}: meta split {ds.meta['split']!r} is not one of {', '.join(SPLITS)}"
        )
    n_classes = ds.meta["n_classes"]
    if n_classes is not None and (not isinstance(n_classes, int | np.integer) or n_classes < 1):
        raise DataError(
            f"{origin}: meta n_classes must be a positive integer or None, got {n_classes!r}"
        )
    check_features(ds.x_train, "x_train", origin)
    check_features(ds.x_test, "x_test", origin, allow_empty=not require_test)
    if ds.x_train.shape[1:] != ds.x_test.shape[1:]:
        raise DataError(
            f"{origin}: x_train rows have shape {tuple(ds.x_train.shape[1:])} but x_test rows "
            f"{tuple(ds.x_test.shape[1:])}; train and test need the same features"
        )
    _check_labels(ds.y_train, "y_train", len(ds.x_train), n_classes, origin)
    _check_labels(ds.y_test, "y_test", len(ds.x_test), n_classes, origin)
