"""Command line: one ``basis-nmce <stage>`` command per pipeline stage.

Every stage takes explicit input and output paths. Its settings come either from
``--params JSON`` (what the Snakemake rules pass: the stage's slice of the validated config)
or from ``--config config.yaml`` plus ``--set key=value`` overrides (for running one stage by
hand); both resolve to the same mapping (``basis_nmce.stages.params.stage_params``).
"""

from __future__ import annotations

import os

# Before numpy / torch / scikit-learn load their OpenMP runtimes: passive waiting keeps the
# idle threads of one runtime from spinning on the cores the other needs (DESIGN.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from .errors import BasisNmceError, ConfigError

log = logging.getLogger("basis_nmce")


def _parse_set(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(
                f"--set {item!r}: expected KEY=VALUE, e.g. --set graph.n_neighbors=30"
            )
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def _params(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    if args.params is not None:
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--params: not valid JSON ({exc})") from exc
        if not isinstance(params, dict):
            raise ConfigError("--params: expected a JSON object")
        return params
    from .config import load_config
    from .stages.params import stage_params

    cfg = load_config(args.config, _parse_set(args.set))
    dataset = getattr(args, "dataset", None)
    if dataset is not None and dataset not in cfg["datasets"]:
        known = ", ".join(sorted(cfg["datasets"])) or "none"
        raise ConfigError(
            f"--dataset {dataset!r}: not declared under `datasets:` (declared: {known})"
        )
    return stage_params(
        cfg, stage, dataset, getattr(args, "kind", None), getattr(args, "method", None)
    )


def _limit_threads(threads: int | None) -> None:
    if not threads:
        return
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)


def _add_common(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--params", help="the stage's settings as JSON (what the pipeline passes)")
    src.add_argument("--config", default="config.yaml", help="config YAML (default: config.yaml)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument("--threads", type=int, default=None, help="threads for torch/BLAS/OpenMP")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basis-nmce",
        description="Spectral embeddings (BASiS) and manifold clustering (NMCE): one command per stage.",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    p = sub.add_parser("fetch", help="download (or copy from a mirror) a data set's raw files")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, type=Path, help="raw folder, e.g. data/raw/digits")

    p = sub.add_parser("prepare", help="raw files -> data/prepared/<dataset>.npz + .json sidecar")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--raw", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path)

    p = sub.add_parser("features", help="prepared data -> features.npz (train, test)")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--kind", required=True)
    p.add_argument("--prepared", required=True, type=Path)
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="kind tcr: the nmce_tcr stage's model.pt to embed with",
    )
    p.add_argument("--out", required=True, type=Path)

    p = sub.add_parser("analytic", help="exact eigenvectors of the train and test graphs")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--prepared", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="embedding.npz")

    p = sub.add_parser("basis_reference", help="BASiS anchors and their exact reference embedding")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--prepared", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="reference.npz")

    p = sub.add_parser("basis_train", help="train BASiS on aligned batches, embed both splits")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--features", required=True, type=Path)
    p.add_argument("--reference", required=True, type=Path, help="basis_reference's reference.npz")
    p.add_argument("--prepared", required=True, type=Path)
    p.add_argument("--out", required=True, type=Path, help="embedding.npz")
    p.add_argument("--checkpoint", type=Path, default=None, help="resume from / save to this file")
    p.add_argument("--progress", action="store_true", help="show a progress bar")

    for stage, what in (
        ("nmce_tcr", "NMCE stage 1: TCR features from a fresh network"),
        ("nmce_cluster", "NMCE stage 2: cluster head on stage 1's frozen backbone"),
        ("nmce_finetune", "NMCE stage 3: fine-tune stage 2's model (or joint training)"),
    ):
        p = sub.add_parser(stage, help=what)
        _add_common(p)
        p.add_argument("--dataset", required=True)
        p.add_argument("--features", type=Path, default=None, help="features.npz (network mlp)")
        p.add_argument("--prepared", required=True, type=Path)
        if stage != "nmce_tcr":
            p.add_argument(
                "--model",
                type=Path,
                default=None,
                help="the previous stage's model.pt (not read by nmce_finetune with nmce.joint)",
            )
        p.add_argument("--out", required=True, type=Path, help="embedding.npz")
        p.add_argument("--checkpoint", type=Path, default=None, help="resume from / save to")

    p = sub.add_parser("evaluate", help="score an embedding -> metrics.json")
    _add_common(p)
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--embedding", required=True, type=Path)
    p.add_argument(
        "--reference", type=Path, default=None, help="analytic embedding.npz (not for nmce_*)"
    )
    p.add_argument("--prepared", required=True, type=Path)
    p.add_argument("--features", type=Path, default=None, help="features.npz (for 2-D plots)")
    p.add_argument("--out", required=True, type=Path, help="metrics.json")

    p = sub.add_parser("report", help="gather metrics into tables and figures")
    _add_common(p)
    p.add_argument("--metrics", required=True, nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path, help="report folder")

    p = sub.add_parser("check-config", help="validate a config file and print it with defaults")
    p.add_argument("--config", default="config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return parser


def run(args: argparse.Namespace) -> Any:
    if args.stage == "check-config":
        from .config import load_config

        cfg = load_config(args.config, _parse_set(args.set))
        print(yaml.safe_dump(cfg, sort_keys=False))
        return cfg
    params = _params(args, args.stage)
    _limit_threads(args.threads)
    if args.stage == "fetch":
        from .stages.data import run_fetch

        return run_fetch(args.dataset, params, args.out)
    if args.stage == "prepare":
        from .stages.data import run_prepare

        return run_prepare(args.dataset, params, args.raw, args.out)
    if args.stage == "features":
        from .stages.features import run_features

        return run_features(params, args.prepared, args.out, model=args.model)
    if args.stage == "analytic":
        from .stages.analytic import run_analytic

        return run_analytic(params, args.features, args.prepared, args.out)
    if args.stage == "basis_reference":
        from .stages.basis import run_basis_reference

        return run_basis_reference(params, args.features, args.prepared, args.out)
    if args.stage == "basis_train":
        from .stages.basis import run_basis_train

        return run_basis_train(
            params,
            args.features,
            args.reference,
            args.prepared,
            args.out,
            checkpoint=args.checkpoint,
            verbose=args.progress,
        )
    if args.stage == "nmce_tcr":
        from .stages.nmce import run_nmce_tcr

        return run_nmce_tcr(params, args.features, args.prepared, args.out, args.checkpoint)
    if args.stage in ("nmce_cluster", "nmce_finetune"):
        from .stages import nmce

        fn = nmce.run_nmce_cluster if args.stage == "nmce_cluster" else nmce.run_nmce_finetune
        return fn(params, args.features, args.prepared, args.model, args.out, args.checkpoint)
    if args.stage == "evaluate":
        from .stages.evaluate import run_evaluate

        return run_evaluate(
            params,
            args.method,
            args.embedding,
            args.reference,
            args.prepared,
            args.out,
            args.features,
        )
    if args.stage == "report":
        from .stages.report import run_report

        return run_report(params, args.metrics, args.out)
    raise AssertionError(args.stage)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        run(args)
    except BasisNmceError as exc:
        print(f"basis-nmce {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
