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
import textwrap
import warnings
from pathlib import Path
from typing import Any

import yaml

from .errors import BasisNmceError, ConfigError, SettingWarning
from .stages.params import BASELINE_METHODS

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
        if args.set:
            raise ConfigError(
                f"--set {' '.join(args.set)}: --params is the stage's complete settings, so --set "
                "would be ignored; put the value into the --params JSON, or use --config with "
                "--set instead of --params"
            )
        try:
            params = json.loads(args.params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--params: not valid JSON ({exc})") from exc
        if not isinstance(params, dict):
            raise ConfigError("--params: expected a JSON object")
        from .stages.params import missing_params

        missing = missing_params(
            params, stage, getattr(args, "kind", None), getattr(args, "method", None)
        )
        if missing:
            raise ConfigError(
                f"--params: missing {', '.join(missing)} (keys the {stage} stage reads); pass "
                "the stage's whole slice of a validated config, as the pipeline does, or use "
                "--config with --set instead of --params"
            )
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
    src.add_argument(
        "--params",
        metavar="JSON",
        help="the stage's settings as JSON: its slice of a validated config (what the "
        "pipeline passes); not combined with --set",
    )
    src.add_argument(
        "--config", default="config.yaml", help="config YAML to read (default: config.yaml)"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set graph.n_neighbors=30 (repeatable)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads for torch/BLAS/OpenMP")
    p.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="how much to log on stderr (default: INFO)",
    )
    _add_debug(p)


def _add_debug(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        help="on an error, show the Python traceback instead of the one-line message",
    )


def _dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset", required=True, help="the data set's name under `datasets:` in the config"
    )


def _stage(
    sub: argparse._SubParsersAction, name: str, summary: str, description: str, writes: str
) -> argparse.ArgumentParser:
    """A stage's parser: one-line ``summary`` (in ``basis-nmce --help``), a ``description``
    and the files it ``writes`` (in ``basis-nmce <stage> --help``)."""
    p = sub.add_parser(
        name,
        help=summary,
        description=textwrap.fill(f"{summary[0].upper()}{summary[1:]}. {description}", 88),
        epilog=f"writes:\n{writes}\n\nErrors print one line and exit 2 (--debug: traceback).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p)
    return p


FEATURES_HELP = "features.npz from the features stage (arrays train, test)"
PREPARED_HELP = "the prepare stage's data/prepared/<dataset>.npz (its .json sidecar beside it)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="basis-nmce",
        description="Spectral embeddings (BASiS) and manifold clustering (NMCE): one command "
        "per pipeline stage. `basis-nmce STAGE --help` describes a stage, its options and the "
        "files it writes.",
    )
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    p = _stage(
        sub,
        "fetch",
        "download (or copy from a mirror) a data set's raw files",
        "The only stage that may use the network; `mirror:` in the config points at a local "
        "copy instead. Checksums are verified and recorded.",
        "  OUT/                 the raw files\n"
        "  OUT/manifest.json    their origins and sha256 checksums",
    )
    _dataset(p)
    p.add_argument("--out", required=True, type=Path, help="raw folder, e.g. data/raw/digits")

    p = _stage(
        sub,
        "prepare",
        "turn a data set's raw files into the prepared format",
        "Validates the arrays (NaN/inf, shapes, labels) and holds out a seeded test split "
        "when the data have none.",
        "  OUT                  .npz with x_train, y_train, x_test, y_test\n"
        "  OUT with .json       sidecar: meta, shapes, dtypes, classes, sha256 of OUT",
    )
    _dataset(p)
    p.add_argument(
        "--raw", required=True, type=Path, help="the fetch stage's folder, e.g. data/raw/digits"
    )
    p.add_argument(
        "--out", required=True, type=Path, help="prepared .npz, e.g. data/prepared/digits.npz"
    )

    p = _stage(
        sub,
        "features",
        "compute the features of both splits",
        "Kind raw: flattened, scaled inputs (optional PCA fitted on train); kind siamese: the "
        "BASiS paper's Siamese network (contrastive loss, Eq. 21); kind tcr: NMCE stage 1 "
        "(TCR) features.",
        "  OUT                  features.npz with train, test (float32)\n"
        "  OUT with .json       kind, options, dimensions",
    )
    _dataset(p)
    p.add_argument(
        "--kind",
        required=True,
        help="feature kind: raw, siamese or tcr (the config's run.features)",
    )
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument(
        "--model",
        type=Path,
        default=None,
        help="kind tcr: the nmce_tcr stage's model.pt to embed with",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="kind siamese: checkpoint file, resumed from; removed once the outputs exist",
    )
    p.add_argument("--out", required=True, type=Path, help="features.npz to write")

    p = _stage(
        sub,
        "analytic",
        "exact eigenvectors of the train and test graphs",
        "The reference every learnt method is scored against: each split's own graph, "
        "eigenvectors scaled so that Y^T Y / n = I, and k-means clusters.",
        "  OUT                  embedding.npz: train, test, eigenvalues, eigenvalues_test,\n"
        "                       clusters_train, clusters_test\n"
        "  OUT with .json       K, graph settings, seconds",
    )
    _dataset(p)
    p.add_argument("--features", required=True, type=Path, help=FEATURES_HELP)
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument("--out", required=True, type=Path, help="embedding.npz to write")

    p = _stage(
        sub,
        "basis_reference",
        "choose BASiS's anchors and embed the reference batch exactly",
        "BASiS Eq. 11: the coordinates every training batch is aligned to.",
        "  OUT                  reference.npz: anchor_index, reference_index,\n"
        "                       anchor_embedding, reference_embedding, eigenvalues, strategy\n"
        "  OUT with .json       anchor and reference counts, K, strategy, seconds",
    )
    _dataset(p)
    p.add_argument("--features", required=True, type=Path, help=FEATURES_HELP)
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument("--out", required=True, type=Path, help="reference.npz to write")

    p = _stage(
        sub,
        "basis_train",
        "train BASiS on aligned batches and embed both splits",
        "BASiS Algorithm 1 (Eqs. 13-15) from the basis_reference stage's reference.",
        "  OUT                  embedding.npz: train, test, clusters_train, clusters_test\n"
        "  OUT with .json       settings, iterations, redrawn batches, final loss, seconds\n"
        "  model.pt, model.json beside OUT: the network (BASiS.load reads them)\n"
        "  log.csv              per step: loss, lr, inlier ratio, residual, condition, redrawn\n"
        "  anchors.npz          anchors before and after alignment, first batches (Fig. 3)\n"
        "  grid.npz             the network on a grid over 2-D inputs (Fig. 1)\n"
        "  --checkpoint file    while training; removed once the outputs exist",
    )
    _dataset(p)
    p.add_argument("--features", required=True, type=Path, help=FEATURES_HELP)
    p.add_argument(
        "--reference", required=True, type=Path, help="the basis_reference stage's reference.npz"
    )
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument("--out", required=True, type=Path, help="embedding.npz to write")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="resume from this file when it matches the settings and data; saved to it",
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar")

    p = _stage(
        sub,
        "spectral_train",
        "train a learnt baseline (SpectralNet, SpecNet2, Diffusion Net) and embed both splits",
        "BASiS Table 1's baselines on BASiS's graph, K, batch size and iterations (`graph`, "
        "`basis`) with their own settings from `baselines.<method>`.",
        "  OUT                  embedding.npz: train, test, clusters_train, clusters_test\n"
        "  OUT with .json       settings, iterations, final loss, seconds\n"
        "  model.pt, model.json beside OUT: the network (the estimator's load reads them)\n"
        "  log.csv              per step: loss, lr, seconds\n"
        "  --checkpoint file    while training; removed once the outputs exist",
    )
    _dataset(p)
    p.add_argument(
        "--method", required=True, choices=BASELINE_METHODS, help="the baseline to train"
    )
    p.add_argument("--features", required=True, type=Path, help=FEATURES_HELP)
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument("--out", required=True, type=Path, help="embedding.npz to write")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="resume from this file when it matches the settings and data; saved to it",
    )
    p.add_argument("--progress", action="store_true", help="show a progress bar")

    p = _stage(
        sub,
        "basis_joint",
        "train BASiS Algorithm 2: Siamese features and a BASiS network together",
        "BASiS Sec. 4.3 / 5.4: every joint.spectral_every feature iterations the reference is "
        "re-embedded on the current features and carried over by T_G (variant tg) or not "
        "(variant no_tg, the ablation), then one aligned BASiS step.",
        "  OUT                  embedding.npz: train, test (spectral network), features_train,\n"
        "                       features_test, exact_test, clusters_test\n"
        "  OUT with .json       settings, final test NMI (network, exact), d_G, seconds\n"
        "  model.pt, model.json beside OUT: both networks (BASiSJoint.load reads them)\n"
        "  log.csv              per spectral step: losses, T_G fit, batch fit, NMIs, d_G (Fig. 6)\n"
        "  snapshots.npz        reference before / after T_G, test output (Fig. 8)\n"
        "  --checkpoint file    while training; removed once the outputs exist",
    )
    _dataset(p)
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument(
        "--variant",
        required=True,
        choices=["tg", "no_tg"],
        help="tg: Algorithm 2; no_tg: T_G switched off (the ablation)",
    )
    p.add_argument("--out", required=True, type=Path, help="embedding.npz to write")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="resume from this file when it matches the settings and data; saved to it",
    )
    p.add_argument("--progress", action="store_true", help="log progress every 10 steps")

    for stage, what, description in (
        ("nmce_tcr", "NMCE stage 1: TCR features from a fresh network", "NMCE Eq. 5."),
        (
            "nmce_cluster",
            "NMCE stage 2: cluster head on stage 1's frozen backbone",
            "NMCE Eq. 4 with Gumbel-softmax memberships; nmce.restarts keeps the restart "
            "that breaks the augmentation constraint least.",
        ),
        (
            "nmce_finetune",
            "NMCE stage 3: fine-tune stage 2's model (or joint training)",
            "Every parameter on NMCE Eq. 4; with nmce.joint the full objective from a fresh "
            "network.",
        ),
    ):
        p = _stage(
            sub,
            stage,
            what,
            description,
            "  OUT                  embedding.npz: train, test (unit-norm features)"
            + ("" if stage == "nmce_tcr" else ", clusters_train, clusters_test")
            + "\n  OUT with .json       settings, steps, restarts, seconds\n"
            "  model.pt, model.json beside OUT: the network\n"
            "  log.csv              per logged step: loss, lr, effective rank, rates\n"
            "  --checkpoint file    while training; removed once the outputs exist",
        )
        _dataset(p)
        p.add_argument(
            "--features", type=Path, default=None, help=f"{FEATURES_HELP}; for network mlp"
        )
        p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
        if stage != "nmce_tcr":
            p.add_argument(
                "--model",
                type=Path,
                default=None,
                help="the previous stage's model.pt (not read by nmce_finetune with nmce.joint)",
            )
        p.add_argument("--out", required=True, type=Path, help="embedding.npz to write")
        p.add_argument(
            "--checkpoint",
            type=Path,
            default=None,
            help="resume from this file when it matches the settings and inputs; saved to it",
        )

    p = _stage(
        sub,
        "evaluate",
        "score one method's embedding on the test split",
        "BASiS Sec. 5.1: d_G, d_perp, k-means NMI / ACC / ARI, linear probe; NMCE methods: "
        "cluster head, kNN / SVM / nearest-subspace accuracy, subspace clustering.",
        "  OUT                  metrics.json\n  predictions.npz beside OUT: clusters_test",
    )
    _dataset(p)
    p.add_argument(
        "--method",
        required=True,
        help="the method that wrote the embedding: analytic, basis_train, spectralnet, "
        "specnet2, diffusionnet, nmce_tcr, nmce_cluster or nmce_finetune",
    )
    p.add_argument(
        "--embedding", required=True, type=Path, help="the method's embedding.npz to score"
    )
    p.add_argument(
        "--reference", type=Path, default=None, help="analytic embedding.npz (not for nmce_*)"
    )
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument(
        "--features", type=Path, default=None, help=f"{FEATURES_HELP}; for d_G matched, plots"
    )
    p.add_argument("--out", required=True, type=Path, help="metrics.json to write")

    p = _stage(
        sub,
        "compare",
        "compare the exact embedding, BASiS and the baselines over seeds",
        "BASiS Sec. 5.2 / Table 1 on one data set and feature kind: every method of "
        "`compare.methods` built as its own stage builds it, `compare.seeds` seeds, scored as "
        "evaluate scores (d_G same-k and matched, d_perp ours and the authors', NMI, ACC, ARI, "
        "linear probe), with train time; `compare.neighbors` adds the Fig. 4 sweep.",
        "  OUT                  compare.json: runs, mean and std per method, protocol, settings\n"
        "  compare.md, compare.csv beside OUT: the table\n"
        "  sweep.json, sweep.csv beside OUT: the neighbour sweep (empty without one)",
    )
    _dataset(p)
    p.add_argument("--features", required=True, type=Path, help=FEATURES_HELP)
    p.add_argument("--prepared", required=True, type=Path, help=PREPARED_HELP)
    p.add_argument("--out", required=True, type=Path, help="compare.json to write")

    p = _stage(
        sub,
        "report",
        "gather metrics into tables and figures",
        "Reads each metrics.json and the files it names (embeddings, logs, anchors, grids).",
        "  OUT/report.md        tables and figures\n"
        "  OUT/metrics.csv, metrics.md, metrics.json   one row per data set, features, method\n"
        "  OUT/*.png            embeddings, training curves, anchors, grids\n"
        "  OUT/training/*.csv   the training logs (DVC plots)",
    )
    p.add_argument(
        "--metrics",
        required=True,
        nargs="+",
        type=Path,
        help="the evaluate stage's metrics.json files",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        type=Path,
        default=[],
        help="the compare stage's compare.json files (run.compare), drawn as tables and figures",
    )
    p.add_argument(
        "--joint",
        nargs="+",
        action="extend",
        type=Path,
        default=[],
        help="the basis_joint stage's embedding.json files (Figs. 6 and 8)",
    )
    p.add_argument("--out", required=True, type=Path, help="report folder")

    p = sub.add_parser(
        "check-config",
        help="validate a config file and print it with defaults",
        description="Validate a config file against the schema and print it with every "
        "default filled; a wrong value stops with a message naming the key.",
        epilog="writes nothing; prints the validated config (YAML) on stdout.",
    )
    p.add_argument("--config", default="config.yaml", help="config YAML (default: config.yaml)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set graph.n_neighbors=30 (repeatable)",
    )
    _add_debug(p)
    return parser


def run(args: argparse.Namespace) -> Any:
    if args.stage == "check-config":
        from .config import load_config

        cfg = load_config(args.config, _parse_set(args.set))
        print(yaml.safe_dump(cfg, sort_keys=False))
        return cfg
    params = _params(args, args.stage)
    from .stages.inputs import check_inputs

    check_inputs(args.stage, vars(args))
    _limit_threads(args.threads)
    if args.stage == "fetch":
        from .stages.data import run_fetch

        return run_fetch(args.dataset, params, args.out)
    if args.stage == "prepare":
        from .stages.data import run_prepare

        return run_prepare(args.dataset, params, args.raw, args.out)
    if args.stage == "features":
        from .stages.features import run_features

        return run_features(
            params, args.prepared, args.out, model=args.model, checkpoint=args.checkpoint
        )
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
    if args.stage == "basis_joint":
        from .stages.joint import run_basis_joint

        return run_basis_joint(
            params,
            args.prepared,
            args.variant,
            args.out,
            checkpoint=args.checkpoint,
            verbose=args.progress,
        )
    if args.stage == "spectral_train":
        from .stages.spectral import run_spectral_train

        return run_spectral_train(
            params,
            args.method,
            args.features,
            args.prepared,
            args.out,
            checkpoint=args.checkpoint,
            verbose=args.progress,
        )
    if args.stage == "compare":
        from .stages.compare import run_compare

        return run_compare(params, args.features, args.prepared, args.out)
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

        return run_report(params, args.metrics, args.out, compare=args.compare, joint=args.joint)
    raise AssertionError(args.stage)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _warning_printer(stage: str):
    """A setting the data cannot honour prints as one line; other warnings as Python does."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SettingWarning):
            print(f"basis-nmce {stage}: warning: {_one_line(message)}", file=file or sys.stderr)
        else:
            _python_show_warning(message, category, filename, lineno, file, line)

    return show


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    warnings.showwarning = _warning_printer(args.stage)
    try:
        run(args)
    except (BasisNmceError, OSError) as exc:  # bad input or environment: no traceback
        if args.debug:
            raise
        print(f"basis-nmce {args.stage}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    finally:
        warnings.showwarning = _python_show_warning
    return 0


if __name__ == "__main__":
    sys.exit(main())
