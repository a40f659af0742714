"""What each stage's input files must be, checked before the stage starts.

The command line calls :func:`check_inputs` first, so a missing, empty, damaged or wrong input
stops with one message naming the option and the file, what it must hold, what it holds, and
the command that writes it. The checks read through the loaders of :mod:`basis_nmce.io` (an
``.npz`` is opened lazily: its arrays are not read twice).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..io import load_model, load_npz, open_npz, read_json


@dataclass(frozen=True)
class InputFile:
    """One kind of input: what it is, the arrays it must hold, and how to get a right one."""

    what: str
    fix: str
    arrays: tuple[str, ...] = ()
    kind: str = "npz"  # npz | model | json
    finite: tuple[str, ...] = ()  # arrays read and checked for NaN / inf


FEATURES = InputFile(
    "features.npz from the features stage (arrays train, test)",
    "pass the file that `basis-nmce features` writes",
    ("train", "test"),
    finite=("train", "test"),
)
PREPARED = InputFile(
    "a prepared data set (x_train, y_train, x_test, y_test, with its .json beside it)",
    "pass the file that `basis-nmce prepare` writes, with its .json",
    ("x_train", "y_train", "x_test", "y_test"),
)
REFERENCE = InputFile(
    "reference.npz from the basis_reference stage",
    "pass the file that `basis-nmce basis_reference` writes",
    ("anchor_index", "reference_index", "anchor_embedding", "reference_embedding", "eigenvalues"),
)
ANALYTIC = InputFile(
    "the analytic stage's embedding.npz (arrays train, test)",
    "pass the file that `basis-nmce analytic` writes",
    ("train", "test"),
    finite=("train", "test"),
)
EMBEDDING = InputFile(
    "a method's embedding.npz (arrays train, test)",
    "pass the embedding.npz that the method's stage writes",
    ("train", "test"),
    finite=("train", "test"),
)
TCR_MODEL = InputFile(
    "the nmce_tcr stage's model.pt",
    "pass the model.pt that `basis-nmce nmce_tcr` writes (model.json beside it)",
    kind="model",
)
NMCE_MODEL = InputFile(
    "the previous NMCE stage's model.pt",
    "pass the model.pt that the previous NMCE stage writes (model.json beside it)",
    kind="model",
)
METRICS = InputFile(
    "a metrics.json from the evaluate stage",
    "pass the metrics.json that `basis-nmce evaluate` writes",
    kind="json",
)
COMPARE = InputFile(
    "a compare.json from the compare stage",
    "pass the compare.json that `basis-nmce compare` writes",
    kind="json",
)

JOINT = InputFile(
    "an embedding.json from the basis_joint stage",
    "pass the embedding.json that `basis-nmce basis_joint` writes (log.csv, snapshots.npz beside)",
    kind="json",
)

_NMCE = {"features": FEATURES, "prepared": PREPARED, "model": NMCE_MODEL}
STAGE_INPUTS: dict[str, dict[str, InputFile]] = {
    "features": {"prepared": PREPARED, "model": TCR_MODEL},
    "analytic": {"features": FEATURES, "prepared": PREPARED},
    "basis_reference": {"features": FEATURES, "prepared": PREPARED},
    "basis_train": {"features": FEATURES, "reference": REFERENCE, "prepared": PREPARED},
    "basis_joint": {"prepared": PREPARED},
    "spectral_train": {"features": FEATURES, "prepared": PREPARED},
    "compare": {"features": FEATURES, "prepared": PREPARED},
    "nmce_tcr": {"features": FEATURES, "prepared": PREPARED},
    "nmce_cluster": _NMCE,
    "nmce_finetune": _NMCE,
    "evaluate": {
        "embedding": EMBEDDING,
        "reference": ANALYTIC,
        "prepared": PREPARED,
        "features": FEATURES,
    },
    "report": {"metrics": METRICS, "compare": COMPARE, "joint": JOINT},
}


def check_inputs(stage: str, values: Mapping[str, Any]) -> None:
    """Check every input file option of ``stage`` present in ``values`` (option -> path or
    list of paths); raise :class:`DataError` naming the option and file at the first bad one."""
    for option, spec in STAGE_INPUTS.get(stage, {}).items():
        given = values.get(option)
        if given is None:
            continue
        for path in given if isinstance(given, list | tuple) else [given]:
            check_file(f"--{option}", Path(path), spec)


def check_file(option: str, path: Path, spec: InputFile) -> None:
    """Raise :class:`DataError` unless ``path`` is the kind of file ``spec`` describes."""
    shown = f"{option} {path}"
    try:
        if spec.kind == "npz" and spec.finite:
            load_npz(path, spec.arrays, what=spec.what, hint=spec.fix).require_finite(*spec.finite)
        elif spec.kind == "npz":
            with open_npz(path, spec.arrays, what=spec.what, hint=spec.fix):
                pass
        elif spec.kind == "model":
            load_model(path, hint=spec.fix)
        elif spec.kind == "json" and not isinstance(
            read_json(path, what=spec.what, hint=spec.fix), dict
        ):
            raise DataError(f"{path}: holds no JSON object; expected {spec.what}")
    except DataError as e:  # name the option too: "--features x.npz: ..."
        text = str(e)
        own = text.startswith(f"{path}:")
        raise DataError(f"{shown}{text[len(str(path)) :]}" if own else f"{shown}: {text}") from e
    if spec is PREPARED and not path.with_suffix(".json").is_file():
        raise DataError(
            f"{shown}: its sidecar {path.with_suffix('.json').name} is missing; expected "
            f"{spec.what}. Fix: {spec.fix}"
        )
