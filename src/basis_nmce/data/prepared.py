"""The prepared on-disk format: ``data/prepared/<name>.npz`` plus a JSON sidecar.

The npz holds exactly ``x_train``, ``y_train``, ``x_test``, ``y_test`` (no pickled objects).
The sidecar (same path, suffix ``.json``) holds ``meta``, the arrays' ``shapes`` and ``dtypes``,
``classes`` (the sorted label values present, -1 excluded) and ``checksum.sha256`` of the npz,
which :func:`load_prepared` checks. Both files are written atomically, the npz first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChecksumError, DataError
from ..io import load_npz, read_json, save_npz, sha256_file, write_json
from .dataset import Dataset, validate_dataset

KEYS = ("x_train", "y_train", "x_test", "y_test")
FORMAT = "basis_nmce.prepared/1"


def sidecar_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".json")


def _classes(ds: Dataset) -> list[int]:
    y = np.concatenate([ds.y_train, ds.y_test])
    return [int(v) for v in np.unique(y[y >= 0])]


def save_prepared(path: str | Path, ds: Dataset) -> None:
    """Validate ``ds`` and write ``path`` (npz) and its sidecar, atomically."""
    path = Path(path)
    validate_dataset(ds, f"prepared data set {ds.meta.get('name', path.stem)!r}")
    arrays = {k: getattr(ds, k) for k in KEYS}
    save_npz(path, **arrays)
    sidecar: dict[str, Any] = {
        "format": FORMAT,
        "meta": ds.meta,
        "shapes": {k: list(v.shape) for k, v in arrays.items()},
        "dtypes": {k: str(v.dtype) for k, v in arrays.items()},
        "classes": _classes(ds),
        "checksum": {"sha256": sha256_file(path)},
    }
    write_json(sidecar_path(path), sidecar)


def _hint(path: Path) -> str:
    name = path.stem
    return (
        f"run `basis-nmce prepare --dataset {name} --raw data/raw/{name} --out {path}` "
        "(or the pipeline's prepare stage)"
    )


def load_prepared(path: str | Path) -> Dataset:
    """Read a prepared data set, check its checksum and contents, and return it."""
    path = Path(path)
    side = sidecar_path(path)
    if not path.is_file():
        raise DataError(f"{path}: prepared data set not found; {_hint(path)}")
    if not side.is_file():
        raise DataError(f"{side}: the sidecar of {path} is missing; {_hint(path)}")
    info = read_json(side, what=f"the JSON sidecar of {path.name}", hint=_hint(path))
    if not isinstance(info, dict) or "meta" not in info or "checksum" not in info:
        raise DataError(
            f"{side}: not a prepared-data sidecar (needs meta and checksum); {_hint(path)}"
        )
    digest = sha256_file(path)
    expected = info["checksum"].get("sha256")
    if digest != expected:
        raise ChecksumError(
            f"{path}: sha256 {digest} differs from {expected} in {side.name}: the file changed "
            f"after it was prepared; {_hint(path)} again"
        )
    arrays = load_npz(path, what="a prepared data set", hint=_hint(path))
    keys = set(arrays)
    if keys != set(KEYS):
        extra, missing = sorted(keys - set(KEYS)), sorted(set(KEYS) - keys)
        raise DataError(
            f"{path}: arrays must be exactly {', '.join(KEYS)} (extra: {extra or 'none'}, "
            f"missing: {missing or 'none'}); {_hint(path)}"
        )
    for k in KEYS:
        shape, dtype = info.get("shapes", {}).get(k), info.get("dtypes", {}).get(k)
        if (shape is not None and list(arrays[k].shape) != shape) or (
            dtype is not None and str(arrays[k].dtype) != dtype
        ):
            raise DataError(
                f"{path}: {k} is {arrays[k].dtype} {arrays[k].shape}, "
                f"{side.name} says {dtype} {shape}"
            )
    ds = Dataset(*(arrays[k] for k in KEYS), meta=dict(info["meta"]))
    validate_dataset(ds, str(path))
    return ds
