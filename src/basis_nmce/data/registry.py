"""The source registry and the stage functions ``fetch`` (network or mirror) and ``prepare``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from . import coil, digits, rotating, torchvision_sources, toys, user_files
from .dataset import Dataset, validate_dataset
from .manifest import write_manifest
from .spec import key, max_count, test_fraction
from .splits import holdout_indices, subsample_indices

GENERATED = (*toys.TOYS, "digits", rotating.SOURCE)
SOURCES: tuple[str, ...] = (
    *toys.TOYS,
    "digits",
    rotating.SOURCE,
    *torchvision_sources.TORCHVISION_SOURCES,
    "coil20",
    "coil100",
    *user_files.USER_SOURCES,
)


def source_of(name: str, spec: Mapping[str, Any]) -> str:
    """``spec["source"]``, checked against :data:`SOURCES`."""
    if not isinstance(spec, Mapping):
        raise DataError(f"{key(name)}: must be a mapping with at least `source`")
    source = spec.get("source")
    if source is None:
        raise DataError(f"{key(name, 'source')}: missing; one of {', '.join(SOURCES)}")
    if source not in SOURCES:
        raise DataError(
            f"{key(name, 'source')}: unknown source {source!r}; sources: {', '.join(SOURCES)}"
        )
    return source


def _options(name: str, spec: Mapping[str, Any], source: str) -> dict[str, Any]:
    if source in toys.TOYS:
        return toys.options(name, spec)
    if source == rotating.SOURCE:
        return rotating.options(name, spec)
    return digits.options(name, spec)


def fetch(name: str, spec: Mapping[str, Any], raw_dir: str | Path, seed: int = 0) -> dict[str, Any]:
    """Put the raw files of data set ``name`` in ``raw_dir`` and write ``raw_dir/manifest.json``.

    The only function that may use the network (torchvision downloads, COIL archives); with
    ``spec["mirror"]`` the files are copied from that folder instead. Files are verified against
    the published checksums. Generated sources (toys, digits) record only their options.
    Returns the manifest."""
    source = source_of(name, spec)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    test_fraction(name, spec)
    max_count(name, spec, "max_train")
    max_count(name, spec, "max_test")
    if source in GENERATED:
        return write_manifest(
            raw_dir,
            {
                "name": name,
                "source": source,
                "generated": True,
                "seed": seed,
                "options": _options(name, spec, source),
            },
        )
    if source in torchvision_sources.TORCHVISION_SOURCES:
        return torchvision_sources.fetch(name, spec, raw_dir)
    if source in coil.ARCHIVE:
        return coil.fetch(name, spec, raw_dir)
    return user_files.fetch(name, spec, raw_dir)


def load_raw(name: str, spec: Mapping[str, Any], raw_dir: str | Path, seed: int = 0) -> Dataset:
    """Parse the fetched files (or generate the toy) without any network access.

    Sources without an official test split come back with an empty test split (meta split
    ``holdout``); :func:`prepare` draws it."""
    source = source_of(name, spec)
    if source in toys.TOYS:
        ds = toys.load(name, spec, seed)
    elif source == "digits":
        ds = digits.load(name, spec, seed)
    elif source == rotating.SOURCE:
        ds = rotating.load(name, spec, seed)
    elif source in torchvision_sources.TORCHVISION_SOURCES:
        ds = torchvision_sources.load(name, spec, raw_dir)
    elif source in coil.ARCHIVE:
        ds = coil.load(name, spec, raw_dir)
    else:
        ds = user_files.load(name, spec, raw_dir)
    validate_dataset(ds, f"{key(name)} ({source})", require_test=False)
    return ds


def _take(ds: Dataset, which: str, idx: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    x, y = getattr(ds, f"x_{which}"), getattr(ds, f"y_{which}")
    return (x, y) if idx is None else (x[idx], y[idx])


def prepare(name: str, spec: Mapping[str, Any], raw_dir: str | Path, seed: int = 0) -> Dataset:
    """``load_raw``, then the seeded hold-out split (``test_fraction``, default 1/6) when the
    source has no official test split, then seeded subsampling to ``max_train`` / ``max_test``,
    then validation. The same seed gives the same split and subsample."""
    frac = test_fraction(name, spec)
    max_train, max_test = max_count(name, spec, "max_train"), max_count(name, spec, "max_test")
    ds = load_raw(name, spec, raw_dir, seed=seed)
    meta = dict(ds.meta)
    if meta["split"] == "holdout":
        tr, te = holdout_indices(len(ds.x_train), frac, seed)
        ds = Dataset(ds.x_train[tr], ds.y_train[tr], ds.x_train[te], ds.y_train[te], meta)
        meta["test_fraction"] = frac
    n_avail = {"train": len(ds.x_train), "test": len(ds.x_test)}
    xtr, ytr = _take(
        ds, "train", subsample_indices(n_avail["train"], max_train, seed, "subsample_train")
    )
    xte, yte = _take(
        ds, "test", subsample_indices(n_avail["test"], max_test, seed, "subsample_test")
    )
    meta.update(
        seed=seed,
        n_train=len(xtr),
        n_test=len(xte),
        n_train_available=n_avail["train"],
        n_test_available=n_avail["test"],
        max_train=max_train,
        max_test=max_test,
    )
    out = Dataset(np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte, meta)
    validate_dataset(out, f"{key(name)} ({meta['source']}) after the split")
    return out
