"""Reading a data set's config entry: options with defaults and types, split keys, seeded streams.

A spec is the ``datasets.<name>`` entry of the config: ``{source, path?, labels_path?, mirror?,
options: {}, test_fraction, max_train, max_test}``. Every error names the config key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

DEFAULT_TEST_FRACTION = 1.0 / 6.0

# Independent random streams drawn from the one config seed: changing how many numbers one
# step draws never changes another step's numbers.
STREAMS = {"generate": 0, "split": 1, "subsample_train": 2, "subsample_test": 3}


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """The generator of ``stream`` (a key of :data:`STREAMS`) for ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise DataError(f"seed: {seed!r} must be a non-negative integer")
    return np.random.default_rng([int(seed), STREAMS[stream]])


def key(name: str, *parts: str) -> str:
    return ".".join(("datasets", name, *parts))


# Option checkers: each returns the (possibly converted) value or raises with the key named.
Checker = Callable[[Any, str], Any]


def _check_range(v: Any, where: str, minimum: Any, maximum: Any) -> None:
    if minimum is not None and v < minimum:
        raise DataError(f"{where}: {v} must be at least {minimum}")
    if maximum is not None and v > maximum:
        raise DataError(f"{where}: {v} must be at most {maximum}")


def integer(minimum: int | None = None, maximum: int | None = None) -> Checker:
    def check(v: Any, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise DataError(f"{where}: {v!r} must be an integer")
        _check_range(v, where, minimum, maximum)
        return int(v)

    return check


def number(minimum: float | None = None, maximum: float | None = None) -> Checker:
    def check(v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not np.isfinite(v):
            raise DataError(f"{where}: {v!r} must be a finite number")
        _check_range(v, where, minimum, maximum)
        return float(v)

    return check


def boolean(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise DataError(f"{where}: {v!r} must be true or false")
    return v


def choice(*allowed: str) -> Checker:
    def check(v: Any, where: str) -> str:
        if v not in allowed:
            raise DataError(f"{where}: {v!r} is not one of {', '.join(allowed)}")
        return v

    return check


def optional(inner: Checker) -> Checker:
    def check(v: Any, where: str) -> Any:
        return None if v is None else inner(v, where)

    return check


def int_list(min_len: int = 1, minimum: int = 1) -> Checker:
    def check(v: Any, where: str) -> list[int]:
        if not isinstance(v, list | tuple) or len(v) < min_len:
            raise DataError(f"{where}: {v!r} must be a list of at least {min_len} integers")
        return [integer(minimum)(x, f"{where}[{i}]") for i, x in enumerate(v)]

    return check


def text(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v:
        raise DataError(f"{where}: {v!r} must be a non-empty string")
    return v


OptionTable = Mapping[str, tuple[Any, Checker]]


def resolve_options(name: str, spec: Mapping[str, Any], table: OptionTable) -> dict[str, Any]:
    """Check ``spec["options"]`` against ``table`` (key -> (default, checker)); fill defaults."""
    options = spec.get("options") or {}
    if not isinstance(options, Mapping):
        raise DataError(f"{key(name, 'options')}: must be a mapping of option names to values")
    source = spec.get("source")
    for k in options:
        if k not in table:
            allowed = ", ".join(sorted(table)) or "none"
            raise DataError(
                f"{key(name, 'options', str(k))}: unknown option for source {source!r}; "
                f"allowed options: {allowed}"
            )
    out = {}
    for k, (default, check) in table.items():
        v = options.get(k, default)
        out[k] = check(v, key(name, "options", k)) if k in options else v
    return out


def test_fraction(name: str, spec: Mapping[str, Any]) -> float:
    v = spec.get("test_fraction", DEFAULT_TEST_FRACTION)
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < v < 1.0:
        raise DataError(
            f"{key(name, 'test_fraction')}: {v!r} must be a number strictly between 0 and 1"
        )
    return float(v)


def max_count(name: str, spec: Mapping[str, Any], which: str) -> int | None:
    v = spec.get(which)
    if v is None:
        return None
    return integer(minimum=1)(v, key(name, which))


def spec_path(name: str, spec: Mapping[str, Any], field: str, required: bool = True) -> Path | None:
    """``spec[field]`` as a path that exists; a clear error names the key when it does not."""
    v = spec.get(field)
    if v is None:
        if required:
            raise DataError(
                f"{key(name, field)}: source {spec.get('source')!r} needs a file; "
                f"set {field}: path/to/file"
            )
        return None
    p = Path(v).expanduser()
    if not p.is_file():
        raise DataError(
            f"{key(name, field)}: file {str(v)!r} not found (looked in {Path.cwd()}); "
            "create it or fix the path (relative paths are relative to the project folder)"
        )
    return p


def mirror_dir(name: str, spec: Mapping[str, Any]) -> Path | None:
    v = spec.get("mirror")
    if v is None:
        return None
    p = Path(v).expanduser()
    if not p.is_dir():
        raise DataError(
            f"{key(name, 'mirror')}: folder {str(v)!r} not found; point it at the folder holding "
            "the source's files, or remove the key to download them"
        )
    return p
