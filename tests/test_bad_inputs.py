"""Every damaged input a researcher may hand the command line or the library, and the message
it gets: the file or key named, no traceback, exit status 2 (a warning and exit 0 where a
setting is capped). The README's "Errors and damaged inputs" table is generated from these
cases; ``BASIS_NMCE_WRITE_README=1 pytest tests/test_bad_inputs.py`` rewrites it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from basis_nmce import BASiS
from basis_nmce.cli import main
from basis_nmce.config import load_config
from basis_nmce.errors import BasisNmceError
from basis_nmce.io import save_model
from basis_nmce.stages.params import stage_params_json

from .helpers import ROOT, TINY_CONFIG, env, write_blobs_npz

README = ROOT / "README.md"
START, END = "<!-- bad-inputs:start -->", "<!-- bad-inputs:end -->"
P, F = "data/prepared/blobs.npz", "results/features.npz"
A, R = "results/analytic.npz", "results/reference.npz"


@dataclass
class Case:
    """One bad input: ``argv`` for the CLI, or ``code`` run with ``est`` (a fitted BASiS on
    the features, 6 columns), ``x`` (its training features), ``np`` and ``BASiS``."""

    id: str
    what: str  # the README's description of the input
    expect: tuple[str, ...]  # the file, key or option the message must name
    argv: list[str] = field(default_factory=list)
    code: str = ""
    setup: Callable[[Path], None] | None = None
    before: list[list[str]] = field(default_factory=list)  # CLI calls that must succeed first
    warns: bool = False  # a capped setting: a warning, exit 0
    accepted: bool = False  # input that used to fail and is now taken as scikit-learn would


class RunsCode:
    """Unpickling this would create ``pwned``: a model file that runs code."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _truncate(src: str, dst: str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        data = (root / src).read_bytes()
        (root / dst).write_bytes(data[: len(data) // 2])

    return make


def _model(root: Path) -> Path:
    save_model(root / "bad/model.pt", {"w": torch.ones(3)}, {"class": "X"})
    return root / "bad/model.pt"


def _write(path: str, data: bytes | str) -> Callable[[Path], None]:
    def make(root: Path) -> None:
        target = root / path
        target.write_bytes(data if isinstance(data, bytes) else data.encode())

    return make


def _nan_npz(root: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    x[4, 1] = np.nan
    np.savez(root / "bad/nan.npz", x_train=x, y_train=np.zeros(50, dtype=np.int64))


def _nan_features(root: Path) -> None:
    arrays = dict(np.load(root / F))
    arrays["train"][2, 1] = np.nan
    np.savez(root / "bad/nan_features.npz", **arrays)


def _params(stage: str) -> str:
    cfg = load_config("config.yaml")
    return stage_params_json(cfg, stage, "blobs", "raw")


STAGE = ["--dataset", "blobs", "--threads", "1"]
ANALYTIC = ["analytic", *STAGE, "--prepared", P, "--out", "results/x.npz"]
TRAIN = ["basis_train", *STAGE, "--features", F, "--prepared", P, "--out", "results/e.npz"]
REF = ["basis_reference", *STAGE, "--features", F, "--prepared", P, "--out", "results/r.npz"]
CLUSTER = ["nmce_cluster", *STAGE, "--features", F, "--prepared", P, "--out", "results/c.npz"]
EVALUATE = ["evaluate", *STAGE, "--method", "analytic", "--reference", A, "--prepared", P]
EVALUATE += ["--out", "results/m.json"]
NAN = ["--set", "datasets.blobs.path=bad/nan.npz"]

CASES = [
    Case(
        "features-missing",
        "`--features` names no file",
        ("--features bad/none.npz", "file not found", "`basis-nmce features` writes"),
        [*ANALYTIC, "--features", "bad/none.npz"],
    ),
    Case(
        "features-is-prepared",
        "the prepared data set passed as `--features`",
        ("--features data/prepared/blobs.npz", "'train'", "a prepared data set"),
        [*ANALYTIC, "--features", P],
    ),
    Case(
        "features-truncated",
        "a truncated `features.npz`",
        ("--features bad/features.npz", "truncated"),
        [*ANALYTIC, "--features", "bad/features.npz"],
        setup=_truncate(F, "bad/features.npz"),
    ),
    Case(
        "features-empty",
        "an empty `features.npz`",
        ("--features bad/empty.npz", "empty (0 bytes)"),
        [*ANALYTIC, "--features", "bad/empty.npz"],
        setup=_write("bad/empty.npz", b""),
    ),
    Case(
        "features-pickle",
        "a pickle where `features.npz` belongs",
        ("--features bad/pickle.npz", "a Python pickle"),
        [*ANALYTIC, "--features", "bad/pickle.npz"],
        setup=_write("bad/pickle.npz", pickle.dumps({"train": [1.0]})),
    ),
    Case(
        "features-nan",
        "NaN in `features.npz`",
        ("--features bad/nan_features.npz", "'train' contains 1 NaN", "row 2"),
        [*ANALYTIC, "--features", "bad/nan_features.npz"],
        setup=_nan_features,
    ),
    Case(
        "reference-is-embedding",
        "the analytic embedding passed as `--reference` of `basis_train`",
        ("--reference results/analytic.npz", "'anchor_index'", "basis_reference"),
        [*TRAIN, "--reference", A],
    ),
    Case(
        "prepared-no-sidecar",
        "a prepared `.npz` without its `.json` sidecar",
        ("--prepared bad/blobs.npz", "sidecar blobs.json is missing"),
        [*ANALYTIC, "--features", F, "--prepared", "bad/blobs.npz"],
        setup=lambda root: (root / "bad/blobs.npz").write_bytes((root / P).read_bytes()),
    ),
    Case(
        "prepared-changed",
        "a prepared `.npz` changed after `prepare` (sidecar checksum differs)",
        ("prepared/blobs.npz: sha256", "basis-nmce prepare"),
        [*ANALYTIC, "--features", F],
        setup=lambda root: (root / P).write_bytes((root / P).read_bytes() + b"\0"),
    ),
    Case(
        "model-truncated",
        "a truncated `model.pt`",
        ("--model bad/model.pt", "truncated", "state dict"),
        [*CLUSTER, "--model", "bad/model.pt"],
        setup=lambda root: _truncate("bad/model.pt", "bad/model.pt")(_model(root).parents[1]),
    ),
    Case(
        "model-empty",
        "an empty `model.pt`",
        ("--model bad/model.pt", "empty (0 bytes)"),
        [*CLUSTER, "--model", "bad/model.pt"],
        setup=lambda root: _model(root).write_bytes(b""),
    ),
    Case(
        "model-pickle",
        "a pickle that would run code, where `model.pt` belongs (it is not run)",
        ("--model bad/model.pt", "posix.system", "never unpickled"),
        [*CLUSTER, "--model", "bad/model.pt"],
        setup=lambda root: torch.save({"w": RunsCode()}, _model(root)),
    ),
    Case(
        "model-no-json",
        "`model.pt` without its `model.json`",
        ("--model bad/model.pt", "bad/model.json: file not found", "metadata"),
        [*CLUSTER, "--model", "bad/model.pt"],
        setup=lambda root: _model(root).with_suffix(".json").unlink(),
    ),
    Case(
        "checkpoint-damaged",
        "a damaged `--checkpoint`",
        ("bad/ckpt.pt", "delete bad/ckpt.pt"),
        [*TRAIN, "--reference", R, "--checkpoint", "bad/ckpt.pt"],
        setup=_write("bad/ckpt.pt", b"PK\x03\x04 cut short"),
    ),
    Case(
        "embedding-missing",
        "`evaluate --embedding` names no file",
        ("--embedding bad/none.npz", "file not found"),
        [*EVALUATE, "--embedding", "bad/none.npz"],
    ),
    Case(
        "metrics-not-json",
        "`report --metrics` file that is not JSON",
        ("--metrics bad/metrics.json", "not valid JSON", "`basis-nmce evaluate` writes"),
        ["report", "--metrics", "bad/metrics.json", "--out", "results/report"],
        setup=_write("bad/metrics.json", "nan, nan"),
    ),
    Case(
        "log-empty",
        "an empty `log.csv` beside an embedding the report draws",
        ("results/log.csv", "empty (0 bytes)", "training log"),
        ["report", "--metrics", "results/m.json", "--out", "results/report"],
        setup=_write("results/log.csv", b""),
        before=[[*EVALUATE, "--embedding", A]],
    ),
    Case(
        "params-empty",
        "`--params '{}'`",
        ("--params", "seed", "graph", "basis"),
        [*TRAIN, "--reference", R, "--params", "{}"],
    ),
    Case(
        "params-not-json",
        "`--params` that is not JSON",
        ("--params", "not valid JSON"),
        [*ANALYTIC, "--features", F, "--params", "{not json"],
    ),
    Case(
        "set-with-params",
        "`--set` together with `--params` (it would be ignored)",
        ("--set graph.n_neighbors=5", "--params"),
        [*ANALYTIC, "--features", F, "--set", "graph.n_neighbors=5", "--params", "PARAMS"],
    ),
    Case(
        "config-missing",
        "`--config` names no file",
        ("nope.yaml", "not found"),
        ["check-config", "--config", "nope.yaml"],
    ),
    Case(
        "config-yaml",
        "a config that is not YAML",
        ("bad/config.yaml", "not valid YAML"),
        ["check-config", "--config", "bad/config.yaml"],
        setup=_write("bad/config.yaml", "seed: [0\n"),
    ),
    Case(
        "config-value",
        "a config value out of its range",
        ("graph.laplacian", "normalized"),
        ["check-config", "--set", "graph.laplacian=normalized"],
    ),
    Case(
        "config-k1",
        "`graph.n_components: 1` with `drop_first: false`",
        ("datasets.blobs", "graph.n_components 1", "drop_first"),
        ["check-config", "--set", "graph.n_components=1"],
    ),
    Case(
        "unknown-dataset",
        "`--dataset` not declared in the config",
        ("--dataset 'nope'", "datasets"),
        ["fetch", "--dataset", "nope", "--out", "data/raw/nope"],
    ),
    Case(
        "nan-in-user-file",
        "NaN in a user's `.npz`",
        ("bad/nan.npz", "x_train", "NaN"),
        ["prepare", "--dataset", "blobs", "--raw", "bad/raw", "--out", "bad/p.npz", *NAN],
        setup=_nan_npz,
        before=[["fetch", "--dataset", "blobs", "--out", "bad/raw", *NAN]],
    ),
    Case(
        "k-beyond-batch",
        "`graph.n_components` 64 with `basis.batch_size` 64",
        ("graph.n_components 64", "basis.batch_size to >= 130"),
        [*REF, "--set", "graph.n_components=64", "--set", "basis.batch_size=64"],
    ),
    Case(
        "anchors-capped",
        "`basis.anchors_per_cluster` 1000 with `basis.batch_size` 64 (warning, runs)",
        ("basis.anchors_per_cluster 1000", "using 32", "basis.n_anchors"),
        [*REF, "--set", "basis.anchors_per_cluster=1000", "--set", "basis.batch_size=64"],
        warns=True,
    ),
    Case(
        "batch-beyond-data",
        "`basis.batch_size` larger than the data (warning, runs)",
        ("basis.batch_size 100000", "300 training points"),
        [*REF, "--set", "basis.batch_size=100000"],
        warns=True,
    ),
    Case(
        "transform-nan",
        "NaN passed to `transform`",
        ("X contains NaN", "row 1"),
        code="est.transform([[0.0] * 6, [np.nan] * 6])",
    ),
    Case(
        "transform-list",
        "a Python list passed to `transform` (accepted)",
        ("accepted",),
        code="assert (est.transform(x[:3].tolist()) == est.transform(x[:3])).all()",
        accepted=True,
    ),
    Case(
        "transform-features",
        "`transform` on data with other columns than fitted",
        ("X has 2 features", "fitted on 6"),
        code="est.transform(x[:, :2])",
    ),
    Case(
        "transform-1d",
        "`transform` on one 1-D sample",
        ("X must be 2-D", "shape (6,)", "reshape(1, -1)"),
        code="est.transform(x[0])",
    ),
    Case(
        "load-truncated",
        "`BASiS.load` of a truncated `model.pt`",
        ("bad/model.pt", "truncated", "BASiS.save"),
        code='BASiS.load("bad/model.pt")',
        setup=lambda root: _truncate("bad/model.pt", "bad/model.pt")(_model(root).parents[1]),
    ),
    Case(
        "fit-k1",
        "`BASiS(n_components=1)` (the trivial eigenvector alone)",
        ("n_components 1", "drop_first true"),
        code="BASiS(n_components=1, n_neighbors=10).fit(x)",
    ),
    Case(
        "fit-k-batch",
        "`BASiS(n_components=64, batch_size=64)`",
        ("n_components 64", "batch_size to >= 130"),
        code="BASiS(n_components=64, batch_size=64, n_neighbors=10).fit(x)",
    ),
]


@dataclass
class Outcome:
    code: int  # exit status (library: 2 for an exception)
    message: str  # the error or warning line(s)
    err: str  # everything on stderr


def _run_cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), warnings.catch_warnings():
        warnings.simplefilter("always")
        code = main(argv)
    return code, buf.getvalue()


def _run_code(code: str, namespace: dict) -> Outcome:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(code, dict(namespace))
        except BasisNmceError as e:
            return Outcome(2, f"{type(e).__name__}: {e}", "")
    if not caught:
        return Outcome(0, "accepted: converted to float32 as scikit-learn's check_array does", "")
    return Outcome(0, " ".join(f"warning: {w.message}" for w in caught), "")


def _message(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith("basis-nmce")]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("bad_inputs")
    write_blobs_npz(root / "blobs.npz")
    (root / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    (root / "bad").mkdir()
    results: dict[str, Outcome] = {}
    with contextlib.chdir(root):
        for argv in (
            ["fetch", "--dataset", "blobs", "--out", "data/raw/blobs"],
            ["prepare", "--dataset", "blobs", "--raw", "data/raw/blobs", "--out", P],
            ["features", "--dataset", "blobs", "--kind", "raw", "--prepared", P, "--out", F],
            [*ANALYTIC, "--features", F, "--out", A],
            [*REF, "--out", R],
        ):
            assert _run_cli(argv)[0] == 0, argv
        x = np.load(F)["train"]
        est = BASiS(n_components=3, n_neighbors=10, batch_size=128, n_iter=3, hidden=(8,))
        namespace = {"np": np, "BASiS": BASiS, "est": est.fit(x), "x": x}
        pristine = (root / P).read_bytes()
        for case in CASES:
            (root / P).write_bytes(pristine)
            if case.setup is not None:
                case.setup(root)
            for argv in case.before:
                assert _run_cli(argv)[0] == 0, argv
            if case.argv:
                argv = [_params("analytic") if a == "PARAMS" else a for a in case.argv]
                code, err = _run_cli(argv)
                results[case.id] = Outcome(code, _message(err), err)
            else:
                results[case.id] = _run_code(case.code, namespace)
        assert not (root / "pwned").exists(), "a model file ran code"
    return results


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_a_message_naming_it(outcomes, case):
    out = outcomes[case.id]
    assert out.code == (0 if case.warns or case.accepted else 2), out.err
    assert "Traceback" not in out.err
    assert out.message.count("\n") == 0 and out.message, out.err  # one line
    if case.argv:
        kind = "warning" if case.warns else "error"
        assert re.match(rf"basis-nmce( [\w-]+)?: {kind}: ", out.message), out.message
    for name in case.expect:
        assert name in out.message, (name, out.message)


def _cell(text: str) -> str:
    text = re.sub(r"[0-9a-f]{64}", "<sha256>", text)  # a digest differs from run to run
    return text.replace("|", "\\|").replace("\n", " ")


def readme_table(outcomes: dict[str, Outcome]) -> str:
    rows = ["| input | what you get |", "|---|---|"]
    for case in CASES:
        how = f"`{case.code}`" if case.code else f"`basis-nmce {case.argv[0]} ...`"
        rows.append(f"| {case.what}: {how} | {_cell(outcomes[case.id].message)} |")
    return "\n".join(rows)


def test_readme_table_lists_every_case_with_its_message(outcomes):
    text = README.read_text()
    assert START in text and END in text, f"README.md lacks the {START} ... {END} markers"
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    table = readme_table(outcomes)
    if os.environ.get("BASIS_NMCE_WRITE_README") == "1":
        README.write_text(f"{head}{START}\n{table}\n{END}{tail}")
        pytest.skip("README.md table rewritten")
    current = rest.split(END, 1)[0].strip()
    assert current == table, (
        "the README's bad-input table is out of date; regenerate it with "
        "BASIS_NMCE_WRITE_README=1 pytest tests/test_bad_inputs.py"
    )


def test_debug_shows_the_traceback_and_plain_runs_do_not(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    argv = [sys.executable, "-m", "basis_nmce.cli", "check-config", "--config", "nope.yaml"]
    plain = subprocess.run(argv, cwd=tmp_path, env=env(), capture_output=True, text=True)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert plain.stderr.strip() == (
        "basis-nmce check-config: error: nope.yaml: config file not found; pass --config PATH "
        "to an existing YAML"
    )
    debug = subprocess.run([*argv, "--debug"], cwd=tmp_path, env=env(), capture_output=True)
    assert debug.returncode == 1 and b"Traceback" in debug.stderr
    assert b"ConfigError: nope.yaml" in debug.stderr


def test_params_from_every_rule_pass_the_key_check():
    from basis_nmce.config import validate_config
    from basis_nmce.stages.params import STAGES, missing_params, stage_params

    for cfg in (validate_config(TINY_CONFIG), load_config(ROOT / "config.yaml")):
        for dataset in cfg["run"]["datasets"]:
            for stage in STAGES:
                for method in ("analytic", "nmce_cluster"):
                    params = json.loads(
                        json.dumps(stage_params(cfg, stage, dataset, "raw", method))
                    )
                    assert missing_params(params, stage, "raw", method) == [], (stage, dataset)
