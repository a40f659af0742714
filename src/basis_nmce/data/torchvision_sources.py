"""The torchvision image sets: MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100, SVHN, STL-10.

``fetch`` gets the files either from the network with torchvision's own dataset classes
(``download=True``, root = the raw folder) or, when the spec names a ``mirror`` folder, by
copying them from it (loose files, or the official archive from which the needed members are
extracted). Every file is verified against the MD5 that torchvision publishes for it (tables
below, copied from torchvision 0.29.1's ``torchvision/datasets/{mnist,cifar,svhn,stl10}.py``;
a test checks that they still agree) before the manifest is written.

``load`` parses the verified files with numpy / scipy only (no torch import): IDX for the two
MNISTs, the pickled batches of CIFAR (unpickled with an allow-list, and only after the checksum
check), ``.mat`` for SVHN, raw bytes for STL-10. Images come out uint8, channels last.
"""

from __future__ import annotations

import pickle
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChecksumError, DataError
from ..io import atomic_path
from . import idx
from .dataset import Dataset
from .manifest import (
    copy_file,
    file_entry,
    manifest_file,
    md5_bytes,
    md5_file,
    read_manifest,
    write_manifest,
)
from .spec import OptionTable, choice, key, mirror_dir, resolve_options

TORCHVISION_SOURCES = ("mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10")

_IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

# Published MD5s of the gzipped IDX files (torchvision MNIST.resources / FashionMNIST.resources).
IDX_GZ_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# MD5s of the *decompressed* IDX files. The gzip MD5 above only matches the publisher's own
# archives: a mirror that ships the files uncompressed, or re-compressed them (Debian's
# dataset-fashion-mnist package does: its .gz files have other MD5s, e.g. cf8536b0... for
# train-images), still holds the very same bytes once decompressed. These are the widely
# published MD5s of the uncompressed release files (e.g. 47040016 bytes for MNIST train
# images); the Debian Fashion-MNIST files decompress to exactly these.
IDX_CONTENT_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
        "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
        "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
        "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Published MD5s of the files the loaders read (torchvision's train_list / test_list / meta /
# split_list). STL-10's unlabelled split (2.4 GB) is not used.
FILE_MD5: dict[str, dict[str, str]] = {
    "cifar10": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
        "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
    },
    "cifar100": {
        "train": "16019d7e3df5f24257cddd939b257f8d",
        "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
        "meta": "7973b15100ade9c7d40fb424638fde48",
    },
    "svhn": {
        "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
        "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    },
    "stl10": {
        "train_X.bin": "918c2871b30a85fa023e0c44e0bee87f",
        "train_y.bin": "5a34089d4802c674881badbb80307741",
        "test_X.bin": "7f263ba9f9e0b06b93213547f721ac82",
        "test_y.bin": "36f9794fa4beb8a2c72628de14fa638e",
    },
}

# The official archives (file name, published MD5), accepted in a mirror instead of loose files.
ARCHIVES: dict[str, tuple[str, str]] = {
    "cifar10": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
    "stl10": ("stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb"),
}

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
    "svhn": [str(i) for i in range(10)],
    "stl10": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
}

OPTIONS: dict[str, OptionTable] = {
    s: ({"labels": ("coarse", choice("coarse", "fine"))} if s == "cifar100" else {})
    for s in TORCHVISION_SOURCES
}


def needed_files(source: str) -> tuple[str, ...]:
    """Logical names of the files ``load`` reads (IDX names without ``.gz``)."""
    if source in IDX_GZ_MD5:
        return _IDX_NAMES
    return tuple(FILE_MD5[source])


def _candidates(source: str, logical: str) -> tuple[str, ...]:
    return (f"{logical}.gz", logical) if source in IDX_GZ_MD5 else (logical,)


def verify(source: str, logical: str, path: Path) -> tuple[str, str]:
    """Check ``path`` (the file ``logical`` of ``source``) against the published checksums.

    Returns ``(md5 of the file, how it was verified)``; raises :class:`ChecksumError`."""
    digest = md5_file(path)
    if source in IDX_GZ_MD5:
        if digest == IDX_GZ_MD5[source].get(logical):
            return digest, "md5 of the gzip file = torchvision's published md5"
        try:
            content_md5 = md5_bytes(idx.read_bytes(path))
        except DataError as e:  # a gzip that no longer inflates: as much a mismatch as any
            raise ChecksumError(
                f"{path}: checksum mismatch for {source} {logical}: md5 {digest}, expected "
                f"{IDX_GZ_MD5[source].get(logical)}, and it does not decompress ({e})"
            ) from e
        if content_md5 == IDX_CONTENT_MD5[source].get(logical):
            return digest, "md5 of the decompressed content = published md5 of the plain file"
        raise ChecksumError(
            f"{path}: checksum mismatch for {source} {logical}: md5 {digest} "
            f"(decompressed content {content_md5}); "
            f"expected gzip md5 {IDX_GZ_MD5[source].get(logical)} or content md5 "
            f"{IDX_CONTENT_MD5[source].get(logical)}. The file is corrupt or not the official "
            "release: fetch it again, or fix the mirror"
        )
    expected = FILE_MD5[source].get(logical)
    if digest != expected:
        raise ChecksumError(
            f"{path}: checksum mismatch for {source} {logical}: md5 {digest}, expected {expected}. "
            "The file is corrupt or not the official release: fetch it again, or fix the mirror"
        )
    return digest, "md5 = torchvision's published md5"


def _find_all(folder: Path, names: tuple[str, ...]) -> list[Path]:
    """Files under ``folder`` (recursively) named one of ``names``: by name order, then path."""
    return [p for name in names for p in sorted(folder.rglob(name)) if p.is_file()]


def _extract_member(archive: Path, logical: str, dst: Path) -> bool:
    """Copy the archive member whose base name is ``logical`` to ``dst``; False if absent."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            if member.isfile() and Path(member.name).name == logical:
                src = tar.extractfile(member)
                if src is None:
                    return False
                with atomic_path(dst) as tmp, open(tmp, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                return True
    return False


Verified = dict[str, tuple[Path, str, str]]  # logical name -> (path, md5, how it was verified)


def _copy_verified(
    source: str, logical: str, hits: list[Path], raw_dir: Path
) -> tuple[Path, str, str]:
    """Copy the first of ``hits`` that verifies into ``raw_dir``; the copy is what is checked."""
    first_error: ChecksumError | None = None
    for src in hits:
        dst = copy_file(src, raw_dir / src.name)
        try:
            return (dst, *verify(source, logical, dst))
        except ChecksumError as e:
            dst.unlink(missing_ok=True)
            first_error = first_error or ChecksumError(f"{e} (copied from {src})")
    assert first_error is not None
    raise first_error


def _archive(name: str, source: str, mirror: Path) -> Path | None:
    if source not in ARCHIVES:
        return None
    arch_name, arch_md5 = ARCHIVES[source]
    hits = _find_all(mirror, (arch_name,))
    if not hits:
        return None
    digest = md5_file(hits[0])
    if digest != arch_md5:
        raise ChecksumError(
            f"{hits[0]}: md5 {digest} differs from the published {arch_md5}; the archive is "
            f"corrupt or not the official release: replace it in {key(name, 'mirror')}"
        )
    return hits[0]


def _from_mirror(name: str, source: str, mirror: Path, raw_dir: Path) -> Verified:
    """Copy (or extract from the official archive) every needed file, verified, into ``raw_dir``."""
    found: Verified = {}
    archive: Path | None = None
    archive_checked = False
    for logical in needed_files(source):
        cands = _candidates(source, logical)
        hits = _find_all(mirror, cands)
        if hits:
            found[logical] = _copy_verified(source, logical, hits, raw_dir)
            continue
        if not archive_checked:
            archive, archive_checked = _archive(name, source, mirror), True
        dst = raw_dir / logical
        if archive is None or not _extract_member(archive, logical, dst):
            also = f" nor the archive {ARCHIVES[source][0]}" if source in ARCHIVES else ""
            raise DataError(
                f"{key(name, 'mirror')}: {mirror} holds no {' / '.join(cands)}{also}; put the "
                f"{source} files there, or remove `mirror` to download them"
            )
        try:
            found[logical] = (dst, *verify(source, logical, dst))
        except ChecksumError as e:
            dst.unlink(missing_ok=True)
            raise ChecksumError(f"{e} (extracted from {archive})") from None
    return found


def _download(source: str, raw_dir: Path) -> None:
    """Download with torchvision's dataset classes (the network is only touched here)."""
    import torchvision.datasets as tvd

    root = str(raw_dir)
    if source in ("mnist", "fashion_mnist"):
        cls = tvd.MNIST if source == "mnist" else tvd.FashionMNIST
        cls(root, train=True, download=True)
        cls(root, train=False, download=True)
    elif source in ("cifar10", "cifar100"):
        cls = tvd.CIFAR10 if source == "cifar10" else tvd.CIFAR100
        cls(root, train=True, download=True)
    elif source == "svhn":
        tvd.SVHN(root, split="train", download=True)
        tvd.SVHN(root, split="test", download=True)
    elif source == "stl10":
        tvd.STL10(root, split="train", download=True)
    else:  # pragma: no cover - guarded by the registry
        raise DataError(f"no torchvision download for source {source!r}")


def _from_download(source: str, raw_dir: Path) -> Verified:
    _download(source, raw_dir)
    found: Verified = {}
    for logical in needed_files(source):
        hits = _find_all(raw_dir, _candidates(source, logical))
        if not hits:
            raise DataError(f"{raw_dir}: torchvision's download left no {logical}; fetch again")
        found[logical] = (hits[0], *verify(source, logical, hits[0]))
    return found


def options(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return resolve_options(name, spec, OPTIONS[spec["source"]])


def fetch(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> dict[str, Any]:
    source = spec["source"]
    opts = options(name, spec)
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    mirror = mirror_dir(name, spec)
    found = (
        _from_mirror(name, source, mirror, raw_dir) if mirror else _from_download(source, raw_dir)
    )
    files = {}
    for logical, (path, digest, how) in found.items():
        rel, entry = file_entry(path, raw_dir, md5=digest, verified=how, role=logical)
        files[rel] = entry
    return write_manifest(
        raw_dir,
        {
            "name": name,
            "source": source,
            "generated": False,
            "origin": f"mirror {mirror}" if mirror else "network (torchvision download)",
            "options": opts,
            "files": files,
        },
    )


# ---------------------------------------------------------------- parsing


def _idx_pair(images: Path, labels: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    x = idx.read_idx(images)
    y = idx.read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{images}: expected uint8 images (n, H, W), got {x.dtype} {x.shape}")
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataError(f"{labels}: expected uint8 labels (n,), got {y.dtype} {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{images} has {len(x)} images but {labels} has {len(y)} labels")
    if len(y) and y.max() >= n_classes:
        raise DataError(f"{labels}: label {int(y.max())} outside 0..{n_classes - 1}")
    return x, y.astype(np.int64)


_PICKLE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 encode bytes with it
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and numpy arrays; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR batch: a dict (keys as str) of arrays and lists."""
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{path}: not a CIFAR batch ({e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: not a CIFAR batch (a {type(obj).__name__}, not a dict)")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    entry = read_pickle(path)
    for k in ("data", label_key):
        if k not in entry:
            raise DataError(f"{path}: CIFAR batch lacks {k!r} (keys: {', '.join(map(str, entry))})")
    data = np.asarray(entry["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: data has shape {data.shape}, expected (n, 3072)")
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} {label_key}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _names(path: Path, key_: str) -> list[str] | None:
    names = read_pickle(path).get(key_)
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names] if names else None


def _svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except (ValueError, OSError, TypeError) as e:
        raise DataError(f"{path}: not a readable .mat file ({e})") from e
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: SVHN .mat file lacks X or y")
    x, y = mat["X"], np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(f"{path}: X has shape {x.shape}, expected (32, 32, 3, {len(y)})")
    y[y == 10] = 0  # SVHN stores the digit 0 as class 10
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2), dtype=np.uint8), y


def _stl10(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(images, dtype=np.uint8)
    size = 3 * 96 * 96
    if raw.size % size:
        raise DataError(f"{images}: {raw.size} bytes is not a whole number of 96x96x3 images")
    # Each image is stored channel by channel, column-major: (C, W, H) -> (H, W, C).
    x = np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1))
    y = np.fromfile(labels, dtype=np.uint8).astype(np.int64) - 1  # 1..10 on disk
    if len(y) != len(x) or (len(y) and (y.min() < 0 or y.max() > 9)):
        raise DataError(f"{labels}: {len(y)} labels (range 1..10 expected) for {len(x)} images")
    return x, y


def load(name: str, spec: Mapping[str, Any], raw_dir: str | Path) -> Dataset:
    source = spec["source"]
    opts = options(name, spec)
    raw_dir = Path(raw_dir)
    manifest = read_manifest(name, source, raw_dir)

    def f(logical: str) -> Path:
        return manifest_file(name, raw_dir, manifest, _candidates(source, logical))

    names = CLASS_NAMES.get(source)
    n_classes = 10
    if source in ("mnist", "fashion_mnist"):
        xtr, ytr = _idx_pair(f("train-images-idx3-ubyte"), f("train-labels-idx1-ubyte"), 10)
        xte, yte = _idx_pair(f("t10k-images-idx3-ubyte"), f("t10k-labels-idx1-ubyte"), 10)
    elif source == "cifar10":
        parts = [_cifar_batch(f(f"data_batch_{i}"), "labels") for i in range(1, 6)]
        xtr, ytr = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        xte, yte = _cifar_batch(f("test_batch"), "labels")
    elif source == "cifar100":
        label_key = f"{opts['labels']}_labels"
        xtr, ytr = _cifar_batch(f("train"), label_key)
        xte, yte = _cifar_batch(f("test"), label_key)
        n_classes = 20 if opts["labels"] == "coarse" else 100
        names = _names(f("meta"), f"{opts['labels']}_label_names")
    elif source == "svhn":
        xtr, ytr = _svhn(f("train_32x32.mat"))
        xte, yte = _svhn(f("test_32x32.mat"))
    else:
        xtr, ytr = _stl10(f("train_X.bin"), f("train_y.bin"))
        xte, yte = _stl10(f("test_X.bin"), f("test_y.bin"))
    for y, which in ((ytr, "train"), (yte, "test")):
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise DataError(f"{raw_dir}: {source} {which} labels outside 0..{n_classes - 1}")
    meta = {
        "name": name,
        "source": source,
        "n_classes": n_classes,
        "image_shape": list(xtr.shape[1:]),
        "split": "official",
        "options": opts,
        "class_names": names,
    }
    return Dataset(xtr, ytr, xte, yte, meta)
