"""The IDX format of MNIST and Fashion-MNIST (gzipped or plain), read with numpy.

Layout: two zero bytes, a type code, the number of dimensions ``k``; then ``k`` big-endian
uint32 sizes; then the values, big-endian, row-major. Every deviation is a :class:`DataError`
naming the file.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CODES = {np.dtype(v).newbyteorder("="): k for k, v in TYPES.items()}


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip (recognised by its magic bytes)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip file ({e}); fetch it again") from e


def parse_idx(data: bytes, origin: str) -> np.ndarray:
    """Parse IDX ``data`` into a native-endian array; ``origin`` names the file in errors."""
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DataError(
            f"{origin}: not an IDX file (first bytes {data[:4].hex() or 'none'}, expected 0000 "
            "followed by a type code and the number of dimensions)"
        )
    code, ndim = data[2], data[3]
    if code not in TYPES:
        raise DataError(
            f"{origin}: unknown IDX type code 0x{code:02x} (known: "
            + ", ".join(f"0x{c:02x}" for c in TYPES)
            + ")"
        )
    if ndim == 0:
        raise DataError(f"{origin}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{origin}: truncated IDX header ({len(data)} bytes, need {header})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(TYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got != expected:
        raise DataError(
            f"{origin}: IDX header declares shape {shape} ({expected} bytes of data) but the file "
            f"holds {got}; the file is {'truncated' if got < expected else 'longer than declared'}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzipped or not."""
    return parse_idx(read_bytes(path), str(path))


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise ``array`` (a dtype IDX knows) as IDX."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in CODES:
        raise DataError(f"IDX cannot store dtype {array.dtype}")
    code = CODES[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=TYPES[code]).tobytes()


def write_idx(path: str | Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write ``array`` as IDX (gzipped with ``compress``); used by tests and tools."""
    path = Path(path)
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path
