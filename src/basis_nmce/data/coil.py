"""COIL-20 and COIL-100 (Columbia object image libraries): 72 views per object, 5 degrees apart.

Archives: ``coil-20-proc.zip`` (20 objects, 1440 grey 128x128 PNGs) and ``coil-100.zip``
(100 objects, 7200 RGB 128x128 PNGs), from Columbia CAVE. Images are named
``obj{N}__{view}.png``; the label is ``N - 1``. The zip may hold other files (COIL-100 ships a
conversion script): only names of that form are read.

Checksums: CAVE publishes none for these archives, and we found none elsewhere that we could
trust. ``KNOWN_SHA256`` is therefore empty: when it holds an entry the archive is verified
against it, otherwise its sha256 is computed and recorded in the manifest (``verified``
says which), so every later step is pinned to the archive fetched. The image count
(``N_IMAGES``) is always checked.

Options (NMCE Sec. 4.1: "gray-scaled and down-sampled by 2x"): ``grayscale`` (COIL-100 only;
the mean of the RGB channels, as NMCE's ``convert_imgs.py`` does) and ``downsample`` (an integer
factor, block averages). Defaults follow the paper: grey, 64x64. No official test split.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChecksumError, DataError
from ..io import sha256_file
from .dataset import Dataset
from .manifest import copy_file, file_entry, manifest_file, read_manifest, write_manifest
from .spec import OptionTable, boolean, integer, key, mirror_dir, resolve_options

BASE_URL = "https://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100"
ARCHIVE = {"coil20": "coil-20-proc.zip", "coil100": "coil-100.zip"}
URL = {
    "coil20": f"{BASE_URL}/coil-20/coil-20-proc.zip",
    "coil100": f"{BASE_URL}/coil-100/coil-100.zip",
}
N_OBJECTS = {"coil20": 20, "coil100": 100}
N_IMAGES = {"coil20": 1440, "coil100": 7200}
KNOWN_SHA256: dict[str, str] = {}  # archive name -> sha256, when a trusted value is known

NAME = re.compile(r"(?:^|/)obj(\d+)__(\d+)\.png$")

OPTIONS: dict[str, OptionTable] = {
    "coil20": {"downsample": (2, integer(1, 128))},
    "coil100": {"downsample": (2, integer(1, 128)), "grayscale": (True, boolean)},
}


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_options(name, spec, OPTIONS[spec["source"]])


def verify_archive(path: Path) -> tuple[str, str]:
    """``(sha256, how verified)``; a :class:`ChecksumError` when a known checksum differs."""
    digest = sha256_file(path)
    expected = KNOWN_SHA256.get(path.name)
    if expected is None:
        return digest, "no published checksum: sha256 computed and recorded"
    if digest != expected:
        raise ChecksumError(
            f"{path}: sha256 {digest} differs from the known {expected}; the archive is corrupt "
            "or not the official one: fetch it again"
        )
    return digest, "sha256 = known checksum"


def fetch(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> dict[str, Any]:
    source = spec["source"]
    opts = options(name, spec)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    archive = ARCHIVE[source]
    mirror = mirror_dir(name, spec)
    if mirror is not None:
        hits = sorted(p for p in mirror.rglob(archive) if p.is_file())
        if not hits:
            raise DataError(
                f"{key(name, 'mirror')}: {mirror} holds no {archive}; put the archive there "
                f"(from {URL[source]}), or remove `mirror` to download it"
            )
        path = copy_file(hits[0], raw_dir / archive)
        origin = f"mirror {mirror}"
    else:
        from torchvision.datasets.utils import download_url

        download_url(URL[source], str(raw_dir), filename=archive)
        path = raw_dir / archive
        origin = f"network ({URL[source]})"
    try:
        _, how = verify_archive(path)
        count_images(path, source)  # a damaged or wrong archive fails here, not at prepare
    except DataError:
        path.unlink(missing_ok=True)
        raise
    rel, entry = file_entry(path, raw_dir, verified=how, role="archive")
    return write_manifest(
        raw_dir,
        {
            "name": name,
            "source": source,
            "generated": False,
            "origin": origin,
            "options": opts,
            "files": {rel: entry},
        },
    )


def _downsample(img: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return img
    h, w = (img.shape[0] // factor) * factor, (img.shape[1] // factor) * factor
    img = img[:h, :w].astype(np.float32)
    blocks = img.reshape(h // factor, factor, w // factor, factor, *img.shape[2:])
    return blocks.mean(axis=(1, 3))


def _open(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path}: not a readable zip archive ({e}); fetch it again") from e


def _check_count(path: Path, source: str, n: int) -> None:
    if n != N_IMAGES[source]:
        raise DataError(
            f"{path}: {n} obj<N>__<view>.png images, the {source} archive has {N_IMAGES[source]}; "
            "fetch it again (or fix the mirror's copy)"
        )


def count_images(path: Path, source: str) -> int:
    """Check the archive opens and holds the expected number of images (no decoding)."""
    with _open(path) as zf:
        n = sum(1 for i in zf.infolist() if NAME.search(i.filename) and not i.is_dir())
    _check_count(path, source, n)
    return n


def read_images(path: Path, source: str, opts: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Parse the archive: ``(uint8 images (n, H, W) or (n, H, W, 3), int64 labels)``."""
    from PIL import Image, UnidentifiedImageError

    grey = opts.get("grayscale", True)
    entries = []
    with _open(path) as zf:
        for info in zf.infolist():
            m = NAME.search(info.filename)
            if m and not info.is_dir():
                entries.append((int(m.group(1)), int(m.group(2)), info))
        _check_count(path, source, len(entries))
        entries.sort(key=lambda e: (e[0], e[1]))
        images, labels = [], []
        for obj, _, info in entries:
            if not 1 <= obj <= N_OBJECTS[source]:
                raise DataError(
                    f"{path}: {info.filename}: object {obj} outside 1..{N_OBJECTS[source]}"
                )
            try:
                with Image.open(io.BytesIO(zf.read(info))) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.float32)
            except (UnidentifiedImageError, OSError, zipfile.BadZipFile) as e:
                raise DataError(f"{path}: {info.filename} is not a readable PNG ({e})") from e
            if grey:
                arr = arr.mean(axis=2)
            images.append(
                np.clip(np.rint(_downsample(arr, opts["downsample"])), 0, 255).astype(np.uint8)
            )
            labels.append(obj - 1)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise DataError(f"{path}: images of different sizes {sorted(shapes)}")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> Dataset:
    source = spec["source"]
    opts = options(name, spec)
    manifest = read_manifest(name, source, raw_dir)
    path = manifest_file(name, raw_dir, manifest, (ARCHIVE[source],))
    x, y = read_images(path, source, opts)
    meta = {
        "name": name,
        "source": source,
        "n_classes": N_OBJECTS[source],
        "image_shape": list(x.shape[1:]),
        "split": "holdout",
        "options": opts,
        "class_names": [f"obj{i}" for i in range(1, N_OBJECTS[source] + 1)],
    }
    return Dataset(x, y, x[:0], y[:0], meta)
