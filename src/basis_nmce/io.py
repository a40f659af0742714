"""Atomic writes, checkpoints and safe model loading: the one place files are read.

Every output is written to a temporary file in the destination folder and renamed, so a
failed or killed stage never leaves a half-written file. Models are state dicts plus JSON
metadata, loaded with ``weights_only=True``: a model file never executes code.

Every reader here (:func:`load_npz`, :func:`read_json`, :func:`load_model`,
:func:`load_checkpoint`) turns a missing, empty, truncated or foreign file into a
:class:`~basis_nmce.errors.DataError` that names the file, says what was expected and what was
found, and how to fix it; callers add what the file is and which stage writes it (``what``,
``hint``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError

PathLike = str | os.PathLike[str]


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.",
        suffix=suffix if suffix is not None else path.suffix + ".tmp",
        dir=path.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():  # mkstemp creates 0600; outputs are shared like any file
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_json(path: PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: PathLike, *, what: str = "a JSON file", hint: str = "") -> Any:
    """Parse the JSON file ``path``; a missing or unreadable one raises :class:`DataError`."""
    path = Path(path)
    _check_exists(path, what, hint)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(
            _message(path, f"is not valid JSON ({e}), found {sniff(path)}", what, hint)
        ) from e


def save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` through a temporary file (the ``.npz`` suffix is kept so numpy adds none)."""
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, **arrays)


class ArrayFile(dict):
    """The arrays of one ``.npz`` file (name -> array); looking up an array the file lacks
    raises :class:`DataError` naming the file, the array and what the file holds."""

    def __init__(
        self, arrays: Mapping[str, np.ndarray], path: PathLike, what: str = "", hint: str = ""
    ) -> None:
        super().__init__(arrays)
        self.path, self.what, self.hint = Path(path), what, hint

    def __missing__(self, key: str) -> np.ndarray:
        raise DataError(_missing_arrays(self.path, [key], list(self), self.what, self.hint))

    def require_finite(self, *keys: str) -> ArrayFile:
        """Raise :class:`DataError` naming the file, the array and the first row when one of
        ``keys`` holds NaN or infinite values; return ``self``."""
        for key in keys:
            values = self[key]
            if not np.issubdtype(values.dtype, np.inexact):
                continue
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                problem = (
                    f"array {key!r} contains {int(bad.sum())} NaN or infinite value(s) (first "
                    f"in row {row})"
                )
                fix = self.hint or "clean the data it was computed from and compute it again"
                raise DataError(_message(self.path, problem, self.what, fix))
        return self


def load_npz(
    path: PathLike,
    keys: Iterable[str] = (),
    *,
    what: str = "",
    hint: str = "",
    shown: PathLike | None = None,
) -> ArrayFile:
    """Load every array of an ``.npz`` without unpickling objects.

    ``keys``: arrays that must be present. ``what`` (e.g. "features.npz from the features
    stage") and ``hint`` (the fix) go into the message of any :class:`DataError`, which names
    the file as ``shown`` when the user knows it by another name than ``path``.
    """
    name = Path(shown if shown is not None else path)
    with open_npz(path, keys, what=what, hint=hint, shown=shown) as z:
        arrays = {}
        for k in z.files:
            try:
                arrays[k] = z[k]
            except ValueError as e:
                raise DataError(
                    _message(
                        name,
                        f"array {k!r} is an object array (strings or Python objects), not loaded "
                        "because unpickling can run code; save numeric arrays",
                        what,
                        hint,
                    )
                ) from e
            except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
                raise DataError(
                    _message(name, f"array {k!r} is damaged ({e})", what, hint or _REWRITE)
                ) from e
    return ArrayFile(arrays, name, what, hint)


@contextlib.contextmanager
def open_npz(
    path: PathLike,
    keys: Iterable[str] = (),
    *,
    what: str = "",
    hint: str = "",
    shown: PathLike | None = None,
) -> Iterator[np.lib.npyio.NpzFile]:
    """Open an ``.npz`` lazily (no array read yet) after checking that it is one, readable,
    and holds ``keys``; every failure is a :class:`DataError` naming the file (``shown``, when
    the user knows it by another name than ``path``)."""
    path = Path(path)
    name = Path(shown) if shown is not None else path
    what = what or "an .npz archive of numeric arrays (numpy.savez)"
    _check_exists(path, what, hint, name)
    if not zipfile.is_zipfile(path) or not _npz_members(path):
        raise DataError(_message(name, f"is not an .npz archive: found {sniff(path)}", what, hint))
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise DataError(
            _message(name, f"is a damaged .npz archive ({e})", what, hint or _REWRITE)
        ) from e
    with z:
        missing = [k for k in keys if k not in z.files]
        if missing:
            raise DataError(_missing_arrays(name, missing, list(z.files), what, hint))
        yield z


def read_csv(path: PathLike, *, what: str = "a CSV table", hint: str = "") -> Any:
    """A CSV file as a pandas DataFrame; a missing, empty or unparsable one raises
    :class:`DataError` naming it."""
    import pandas as pd

    path = Path(path)
    _check_exists(path, what, hint)
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        problem = f"is not a readable CSV table ({' '.join(str(e).split())}), found {sniff(path)}"
        raise DataError(_message(path, problem, what, hint or _REWRITE)) from e


def load_npy(
    path: PathLike, *, mmap_mode: str | None = "r", what: str = "", hint: str = ""
) -> np.ndarray:
    """One ``.npy`` array (memory-mapped by default), never unpickled; failures name the file."""
    path = Path(path)
    what = what or "a numeric .npy array (numpy.save)"
    _check_exists(path, what, hint)
    try:
        arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise DataError(
            _message(path, f"is not a readable .npy array ({e}): found {sniff(path)}", what, hint)
        ) from e
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise DataError(_message(path, f"is not a single array: found {sniff(path)}", what, hint))
    return arr


def _npz_members(path: Path) -> bool:
    """Whether every member of the zip archive ``path`` is an array (``name.npy``)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return all(n.endswith(".npy") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


_REWRITE = "write it again with the command that made it"


def _message(path: Path, problem: str, what: str, hint: str) -> str:
    """``<path>: <problem>; expected <what>. <hint>`` (the one shape of every file error)."""
    text = f"{path}: {problem}"
    if what:
        text += f"; expected {what}"
    return text + (f". Fix: {hint}" if hint else "")


def _check_exists(path: Path, what: str, hint: str, shown: Path | None = None) -> None:
    name = shown or path
    if not path.exists():
        raise DataError(_message(name, "file not found", what, hint or "check the path"))
    if path.is_dir():
        raise DataError(_message(name, "is a folder, not a file", what, hint or "check the path"))
    if path.stat().st_size == 0:
        raise DataError(
            _message(
                name,
                "is empty (0 bytes): an interrupted copy or write",
                what,
                hint or _REWRITE,
            )
        )


# Files this project writes, recognised by the arrays they hold (for "found ..." messages).
KNOWN_NPZ = (
    (("x_train", "y_train", "x_test", "y_test"), "a prepared data set (the prepare stage's .npz)"),
    (("anchor_index", "reference_index", "anchor_embedding"), "a BASiS reference (reference.npz)"),
    (
        ("train", "test", "eigenvalues"),
        "an analytic embedding (the analytic stage's embedding.npz)",
    ),
    (("train", "test", "clusters_train"), "an embedding (a method's embedding.npz)"),
    (("train", "test"), "features or an embedding (train, test)"),
    (("clusters_test",), "predictions (the evaluate stage's predictions.npz)"),
    (("raw", "aligned", "reference"), "BASiS anchor traces (anchors.npz)"),
    (("grid_x", "grid_y", "values"), "a BASiS value grid (grid.npz)"),
)


def _missing_arrays(path: Path, missing: list[str], found: list[str], what: str, hint: str) -> str:
    names = ", ".join(map(repr, missing))
    held = ", ".join(sorted(found)) or "no arrays"
    kind = next((desc for keys, desc in KNOWN_NPZ if set(keys) <= set(found)), None)
    problem = f"has no array {names}; it holds {held}" + (f", i.e. {kind}" if kind else "")
    return _message(path, problem, what, hint or "check that the path names the right file")


def sniff(path: PathLike) -> str:
    """What the file at ``path`` looks like, from its first bytes (for error messages)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        return "an empty file"
    if head.startswith(b"PK"):
        if not zipfile.is_zipfile(path):
            return "a truncated or damaged zip archive (the end of the file is missing)"
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
        if any(n.endswith("/data.pkl") for n in names):
            return "a torch file (torch.save)"
        if names and all(n.endswith(".npy") for n in names):
            return "an .npz archive"
        return "a zip archive"
    if head.startswith(b"\x93NUMPY"):
        return "a single .npy array (numpy.save), not an archive"
    if head[:1] == b"\x80":
        return "a Python pickle"
    if head.lstrip()[:1] in (b"{", b"["):
        return "JSON or other text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "binary data of an unknown format"
    return "text"


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def save_model(path: PathLike, state_dict: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Save a state dict to ``path`` and its metadata to ``path`` with suffix ``.json``."""
    import torch

    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(dict(state_dict), tmp)
    write_json(path.with_suffix(".json"), dict(meta))


MODEL_WHAT = "a state dict written by save_model (BASiS.save, a stage's model.pt)"
MODEL_HINT = (
    "write it again with the stage or the save() that made it (model.pt and model.json "
    "belong together)"
)


def load_model(
    path: PathLike, map_location: str = "cpu", *, hint: str = ""
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(state_dict, meta)`` saved by :func:`save_model`; never unpickles code."""
    import torch

    path = Path(path)
    hint = hint or MODEL_HINT
    state = torch_load(path, map_location, what=MODEL_WHAT, hint=hint)
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise DataError(
            _message(path, f"holds a {type(state).__name__}, not a state dict", MODEL_WHAT, hint)
        )
    side = path.with_suffix(".json")
    meta = read_json(side, what=f"the metadata written with {path.name}", hint=hint)
    if not isinstance(meta, dict):
        raise DataError(
            _message(side, f"holds a JSON {type(meta).__name__}, not an object", "", hint)
        )
    return state, meta


def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> None:
    """Atomically save a training checkpoint (tensors, numbers, strings, nested dicts)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: PathLike, map_location: str = "cpu") -> dict[str, Any] | None:
    """Return the checkpoint at ``path`` or None when there is none."""
    path = Path(path)
    if not path.exists():
        return None
    hint = f"delete {path} to start the training afresh"
    state = torch_load(path, map_location, what="a training checkpoint", hint=hint)
    if not isinstance(state, dict):
        raise DataError(
            _message(path, f"holds a {type(state).__name__}", "a training checkpoint", hint)
        )
    return state


def torch_load(path: PathLike, map_location: str = "cpu", *, what: str, hint: str) -> Any:
    """``torch.load(..., weights_only=True)`` whose failures name the file and the fix."""
    import torch

    path = Path(path)
    _check_exists(path, what, hint)
    try:
        with warnings.catch_warnings():  # torch's note on the pickle protocol of foreign files
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            found = f"not a torch file ({e}), found {sniff(path)}"
        else:
            culprit = re.search(r"GLOBAL ([\w.]+)", str(e))
            found = (
                "holds pickled Python objects, not only tensors"
                + (f" (it references {culprit.group(1)})" if culprit else "")
                + "; it is never unpickled, as that could run code"
            )
        raise DataError(_message(path, found, what, hint)) from e
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as e:
        raise DataError(
            _message(path, f"is not a readable torch file: found {sniff(path)}", what, hint)
        ) from e
