"""Atomic writes, checkpoints and safe model loading.

Every output is written to a temporary file in the destination folder and renamed, so a
failed or killed stage never leaves a half-written file. Models are state dicts plus JSON
metadata, loaded with ``weights_only=True``: a model file never executes code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


def read_json(path: PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_npz(path: PathLike, **arrays: np.ndarray) -> None:
    """``np.savez`` through a temporary file (the ``.npz`` suffix is kept so numpy adds none)."""
    with atomic_path(path, suffix=".tmp.npz") as tmp:
        np.savez(tmp, **arrays)


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` without unpickling objects."""
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


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


def load_model(path: PathLike, map_location: str = "cpu") -> tuple[dict[str, Any], dict[str, Any]]:
    """Load ``(state_dict, meta)`` saved by :func:`save_model`; never unpickles code."""
    import torch

    path = Path(path)
    state = torch.load(path, map_location=map_location, weights_only=True)
    meta = read_json(path.with_suffix(".json"))
    return state, meta


def save_checkpoint(path: PathLike, state: Mapping[str, Any]) -> None:
    """Atomically save a training checkpoint (tensors, numbers, strings, nested dicts)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(dict(state), tmp)


def load_checkpoint(path: PathLike, map_location: str = "cpu") -> dict[str, Any] | None:
    """Return the checkpoint at ``path`` or None when there is none."""
    import torch

    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=True)
