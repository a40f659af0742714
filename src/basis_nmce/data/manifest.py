"""``data/raw/<name>/manifest.json``: what ``fetch`` put in the raw folder, with checksums.

``fetch`` writes the manifest last and atomically, so its presence means the fetch finished.
``load_raw`` reads files only through the manifest and re-checks their sha256, so a file
changed or truncated after the fetch is caught before it is parsed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ChecksumError, DataError
from ..io import atomic_path, read_json, sha256_file, write_json

MANIFEST = "manifest.json"
FORMAT = 1


def md5_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def copy_file(src: Path, dst: Path) -> Path:
    """Copy ``src`` onto ``dst`` through a temporary file (never a half-written ``dst``)."""
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst


def file_entry(path: Path, raw_dir: Path, **extra: Any) -> tuple[str, dict[str, Any]]:
    """``(path relative to raw_dir, {sha256, bytes, **extra})`` for the manifest's ``files``."""
    rel = path.resolve().relative_to(raw_dir.resolve()).as_posix()
    return rel, {"sha256": sha256_file(path), "bytes": path.stat().st_size, **extra}


def write_manifest(raw_dir: str | Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    out = {"format": FORMAT, "files": {}, **manifest}
    write_json(Path(raw_dir) / MANIFEST, out)
    return out


def fetch_hint(name: str, raw_dir: Path) -> str:
    return (
        f"run `basis-nmce fetch --dataset {name} --out {raw_dir}` (or `snakemake ... fetch`) first"
    )


def read_manifest(name: str, source: str, raw_dir: str | Path) -> dict[str, Any]:
    """The manifest of ``raw_dir``; stops when there is none or it is for another source."""
    raw_dir = Path(raw_dir)
    path = raw_dir / MANIFEST
    if not path.is_file():
        raise DataError(
            f"{path}: no manifest, the raw files of {name!r} were never fetched; "
            f"{fetch_hint(name, raw_dir)} first"
        )
    manifest = read_json(
        path, what="the manifest written by fetch", hint=f"{fetch_hint(name, raw_dir)} again"
    )
    if not isinstance(manifest, dict):
        raise DataError(
            f"{path}: not a fetch manifest (a JSON object); {fetch_hint(name, raw_dir)}"
        )
    if manifest.get("source") != source:
        raise DataError(
            f"{path}: fetched for source {manifest.get('source')!r}, but datasets.{name}.source is "
            f"{source!r}; {fetch_hint(name, raw_dir)} again"
        )
    return manifest


def manifest_file(
    name: str, raw_dir: str | Path, manifest: Mapping[str, Any], candidates: Iterable[str]
) -> Path:
    """The first manifest file whose base name is one of ``candidates``, its sha256 re-checked."""
    raw_dir = Path(raw_dir)
    files = manifest.get("files", {})
    wanted = list(candidates)
    for cand in wanted:
        for rel, entry in files.items():
            if Path(rel).name == cand:
                path = raw_dir / rel
                if not path.is_file():
                    raise DataError(
                        f"{path}: listed in {raw_dir / MANIFEST} but missing; "
                        f"{fetch_hint(name, raw_dir)} again"
                    )
                digest = sha256_file(path)
                if digest != entry.get("sha256"):
                    raise ChecksumError(
                        f"{path}: sha256 {digest} differs from {entry.get('sha256')} "
                        "recorded at fetch time (the file changed since); "
                        f"{fetch_hint(name, raw_dir)} again"
                    )
                return path
    raise DataError(
        f"{raw_dir / MANIFEST}: lists none of {', '.join(wanted)}; {fetch_hint(name, raw_dir)} again"
    )
