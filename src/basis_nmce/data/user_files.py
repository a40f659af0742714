"""The user's own data: ``npz``, ``npy`` (+ optional labels file) and ``csv``.

* ``npz``: arrays ``x_train`` and optionally ``y_train``, ``x_test``, ``y_test``. Any other key
  is an error (a typo such as ``xtest`` would otherwise silently drop the test split). Loaded
  with ``allow_pickle=False``: object arrays are refused.
* ``npy``: ``path`` holds the features; ``labels_path`` optionally the labels (``.npy``, or
  text with one integer per line).
* ``csv``: numeric columns, header optional (detected: a first row with a non-number is a
  header). A column named ``label`` or ``y`` (any case; or the one ``options.label_column``
  names) holds the labels.

Labels may be any integers (or whole-number floats); they are mapped to 0..C-1 over train and
test together, the original values kept in ``meta["label_values"]``. ``options.unlabelled``
names a value meaning "no label" (becomes -1). Without a test split, the hold-out is drawn later.

``fetch`` copies the files into the raw folder (so the raw folder alone reproduces the
prepared data) and records their sha256; ``load_raw`` reads the copies, or the original
paths when nothing was fetched (library use).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..io import load_npz
from .dataset import Dataset, as_label_vector, encode_labels, normalise_features, validate_dataset
from .manifest import MANIFEST, copy_file, file_entry, manifest_file, read_manifest, write_manifest
from .spec import OptionTable, integer, key, optional, resolve_options, spec_path, text

USER_SOURCES = ("npz", "npy", "csv")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
LABEL_COLUMNS = ("label", "y")

OPTIONS: dict[str, OptionTable] = {
    "npz": {"unlabelled": (None, optional(integer()))},
    "npy": {"unlabelled": (None, optional(integer()))},
    "csv": {
        "unlabelled": (None, optional(integer())),
        "delimiter": (",", text),
        "label_column": (None, optional(text)),
    },
}
FIELDS = {"npz": ("path",), "npy": ("path", "labels_path"), "csv": ("path",)}


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    source = spec["source"]
    if spec.get("labels_path") is not None and "labels_path" not in FIELDS[source]:
        raise DataError(
            f"{key(name, 'labels_path')}: only source npy takes a separate labels file; for "
            f"{source} put the labels in the file itself (see the docs) and remove labels_path"
        )
    return resolve_options(name, spec, OPTIONS[source])


def fetch(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> dict[str, Any]:
    """Copy the user's file(s) into ``raw_dir`` and record their checksums."""
    source = spec["source"]
    opts = options(name, spec)
    raw_dir = Path(raw_dir)
    files: dict[str, Any] = {}
    for field in FIELDS[source]:
        src = spec_path(name, spec, field, required=field == "path")
        if src is None:
            continue
        dst = raw_dir / src.name
        if any(Path(rel).name == src.name for rel in files):
            dst = raw_dir / f"{field}_{src.name}"
        copy_file(src, dst)
        rel, entry = file_entry(dst, raw_dir, role=field, origin=str(spec[field]))
        files[rel] = entry
    return write_manifest(
        raw_dir,
        {
            "name": name,
            "source": source,
            "generated": False,
            "origin": "user",
            "options": opts,
            "files": files,
        },
    )


def _inputs(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> dict[str, tuple[Path, str]]:
    """field -> (file to read, name to show): the fetched copies, else the original paths."""
    source = spec["source"]
    raw_dir = Path(raw_dir)
    if not (raw_dir / MANIFEST).is_file():
        out = {}
        for field in FIELDS[source]:
            p = spec_path(name, spec, field, required=field == "path")
            if p is not None:
                out[field] = (p, str(spec[field]))
        return out
    manifest = read_manifest(name, source, raw_dir)
    entries = {e.get("role", "path"): (rel, e) for rel, e in manifest.get("files", {}).items()}
    for field in FIELDS[source]:
        configured, fetched = spec.get(field), entries.get(field, (None, {}))[1].get("origin")
        if (None if configured is None else str(configured)) != fetched:
            raise DataError(
                f"{key(name, field)} is {configured!r} but {raw_dir} holds a copy of {fetched!r}; "
                f"run `basis-nmce fetch --dataset {name} --out {raw_dir}` again"
            )
    out = {}
    for field, (rel, entry) in entries.items():
        path = manifest_file(name, raw_dir, {"files": {rel: entry}}, (Path(rel).name,))
        out[field] = (path, entry.get("origin", rel))
    if "path" not in out:
        raise DataError(f"{raw_dir / MANIFEST}: lists no data file; fetch {name!r} again")
    return out


_NPZ_HINT = "save the arrays with numpy.savez(path, x_train=...); a single array is source npy"


def _load_npz(path: Path, shown: str) -> dict[str, np.ndarray]:
    what = "an .npz archive saved with numpy.savez(path, x_train=..., y_train=...)"
    arrays = load_npz(path, what=what, hint=_NPZ_HINT, shown=shown)
    keys = list(arrays)
    unknown = [k for k in keys if k not in NPZ_KEYS]
    if unknown:
        raise DataError(
            f"{shown}: unknown array(s) {', '.join(map(repr, unknown))}; an npz data file "
            f"holds only {', '.join(NPZ_KEYS)} (x_train required): rename or drop the others"
        )
    if "x_train" not in arrays:
        raise DataError(f"{shown}: no array 'x_train' (found: {', '.join(keys) or 'none'}); add it")
    if "y_test" in arrays and "x_test" not in arrays:
        raise DataError(f"{shown}: has y_test but no x_test; add x_test or drop y_test")
    return arrays


def _load_npy(path: Path, shown: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(
            f"{shown}: not a numeric .npy array ({e}); save numbers with numpy.save"
        ) from e
    except (OSError, EOFError) as e:
        raise DataError(f"{shown}: not a readable .npy file ({e})") from e
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{shown}: holds several arrays (an .npz?); use source npz for it")
    return arr


def _load_labels_file(path: Path, shown: str) -> np.ndarray:
    if path.suffix == ".npy":
        return _load_npy(path, shown)
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=1, delimiter=None)
    except ValueError as e:
        raise DataError(
            f"{shown}: labels must be one integer per line; found something else ({e})"
        ) from e


def _csv_has_header(path: Path, delimiter: str) -> bool:
    with open(path, newline="", encoding="utf-8-sig") as f:
        first = next(csv.reader(f, delimiter=delimiter), None)
    if not first:
        return False
    for cell in first:
        try:
            float(cell)
        except ValueError:
            return True
    return False


def _load_csv(
    path: Path, shown: str, opts: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray | None]:
    import pandas as pd

    delim = opts["delimiter"]
    if path.stat().st_size == 0:
        raise DataError(f"{shown}: the file is empty; it needs one row per point")
    header = _csv_has_header(path, delim)
    try:
        df = pd.read_csv(
            path,
            sep=delim,
            header=0 if header else None,
            skipinitialspace=True,
            encoding="utf-8-sig",
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{shown}: not a readable CSV file ({e})") from e
    if len(df) == 0:
        raise DataError(f"{shown}: no data rows; it needs one row per point")
    line0 = 2 if header else 1
    columns = [str(c).strip() for c in df.columns]
    label_col = None
    if opts["label_column"] is not None:
        if opts["label_column"] not in columns:
            raise DataError(
                f"{shown}: no column {opts['label_column']!r} (options.label_column); columns: "
                + ", ".join(columns)
            )
        label_col = opts["label_column"]
    elif header:
        found = [c for c in columns if c.lower() in LABEL_COLUMNS]
        if len(found) > 1:
            raise DataError(
                f"{shown}: several label columns {found}; keep one or set options.label_column"
            )
        label_col = found[0] if found else None
    df.columns = columns
    y = None
    if label_col is not None:
        y = df[label_col].to_numpy()
        df = df.drop(columns=[label_col])
        if y.dtype.kind == "O":
            raise DataError(
                f"{shown}: column {label_col!r} holds non-integer labels (e.g. {y[0]!r} on line "
                f"{line0}); labels must be integers"
            )
        if y.dtype.kind == "f" and np.isnan(y).any():
            i = int(np.argmax(np.isnan(y)))
            raise DataError(
                f"{shown}: column {label_col!r} is empty on line {line0 + i}; "
                "give every row a label"
            )
    if df.shape[1] == 0:
        raise DataError(f"{shown}: no feature columns besides the labels")
    for c in df.columns:
        col = df[c]
        if col.dtype.kind not in "iuf":
            values = pd.to_numeric(col, errors="coerce")
            bad = values.isna() & col.notna()
            i = int(np.argmax(bad.to_numpy())) if bad.any() else 0
            raise DataError(
                f"{shown}: column {c!r} is not numeric (line {line0 + i}: {col.iloc[i]!r}); "
                "features must be numbers"
            )
        if col.isna().any():
            i = int(np.argmax(col.isna().to_numpy()))
            raise DataError(
                f"{shown}: column {c!r} has an empty or NaN cell on line {line0 + i}; "
                "fill or drop that row"
            )
    return df.to_numpy(dtype=np.float64), y


def load(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> Dataset:
    source = spec["source"]
    opts = options(name, spec)
    files = _inputs(name, spec, raw_dir)
    path, shown = files["path"]
    ytr = yte = None
    xte = None
    if source == "npz":
        arrays = _load_npz(path, shown)
        xtr, ytr, xte, yte = (arrays.get(k) for k in NPZ_KEYS)
    elif source == "npy":
        xtr = _load_npy(path, shown)
        if "labels_path" in files:
            lpath, lshown = files["labels_path"]
            ytr = as_label_vector(_load_labels_file(lpath, lshown), "y_train", lshown)
            n_x = len(xtr) if xtr.ndim else 0
            if np.ndim(ytr) >= 1 and len(ytr) != n_x:
                raise DataError(
                    f"{lshown} has {len(ytr)} labels but {shown} has {n_x} rows; "
                    "give one label per row"
                )
    else:
        xtr, ytr = _load_csv(path, shown, opts)
    has_test = xte is not None
    xtr = normalise_features(xtr, "x_train", shown)
    xte = normalise_features(xte, "x_test", shown) if has_test else xtr[:0]
    labels = {}
    for k, y in (("y_train", ytr), ("y_test", yte)):
        labels[k] = None if y is None else as_label_vector(y, k, shown)
    ytr_e, yte_e, values = encode_labels(
        labels["y_train"], labels["y_test"], len(xtr), len(xte), unlabelled=opts["unlabelled"]
    )
    meta = {
        "name": name,
        "source": source,
        "n_classes": None if values is None else len(values),
        "image_shape": list(xtr.shape[1:]) if xtr.ndim >= 3 else None,
        "split": "official" if has_test else "holdout",
        "options": opts,
        "label_values": values,
        "files": {field: shown_ for field, (_, shown_) in files.items()},
    }
    ds = Dataset(xtr, ytr_e, xte, yte_e, meta)
    validate_dataset(ds, shown, require_test=False)
    return ds
