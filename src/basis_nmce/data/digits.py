"""scikit-learn's 8x8 digits (``load_digits``, shipped with scikit-learn: no download).

Kept as float32 vectors ``(n, 64)`` with the original grey levels 0..16, not as uint8 images:
the values are not on the 0..255 scale that the uint8 image convention (and the ``unit``
feature scaling, which divides uint8 by 255) assumes. ``meta["image_shape"]`` is ``[8, 8]``:
each row is a row-major 8x8 image, for code that wants to reshape it. No official test split.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .dataset import Dataset
from .spec import OptionTable, integer, resolve_options

OPTIONS: OptionTable = {"n_class": (10, integer(1, 10))}


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_options(name, spec, OPTIONS)


def load(name: str, spec: Mapping[str, Any], seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    opts = options(name, spec)
    bunch = load_digits(n_class=opts["n_class"])
    x = np.ascontiguousarray(bunch.data, dtype=np.float32)
    y = np.asarray(bunch.target, dtype=np.int64)
    meta = {
        "name": name,
        "source": "digits",
        "n_classes": opts["n_class"],
        "image_shape": [8, 8],
        "split": "holdout",
        "options": opts,
        "class_names": [str(i) for i in range(opts["n_class"])],
    }
    return Dataset(x, y, x[:0], y[:0], meta)
