"""`basis-nmce <stage> --help`: a description, help text on every option, the files it writes."""

from __future__ import annotations

import argparse

import pytest

from basis_nmce.cli import build_parser, main
from basis_nmce.stages.params import STAGES


def _stages() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_every_pipeline_stage_has_a_command():
    assert set(STAGES) | {"check-config"} == set(_stages())


@pytest.mark.parametrize("stage", sorted(_stages()))
def test_stage_help_describes_the_stage_every_option_and_its_outputs(stage):
    p = _stages()[stage]
    assert p.description and len(p.description) > 40, stage
    assert p.epilog and "writes" in p.epilog, stage
    for action in p._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help and action.help != argparse.SUPPRESS, (stage, action.dest)


@pytest.mark.parametrize(
    "stage, files",
    [
        ("basis_train", ("model.pt", "model.json", "log.csv", "anchors.npz", "grid.npz")),
        ("nmce_cluster", ("model.pt", "model.json", "log.csv", "clusters_test")),
        ("evaluate", ("metrics.json", "predictions.npz")),
        ("report", ("report.md", "metrics.csv", "training/")),
        ("prepare", ("x_train", ".json")),
    ],
)
def test_help_names_the_side_outputs(stage, files, capsys):
    with pytest.raises(SystemExit) as e:
        main([stage, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name in files:
        assert name in out, (stage, name)
