"""The report's scatter panels skip a kept trivial eigenvector (a near-constant column)."""

import json

from basis_nmce.stages.report import _first_informative


def test_a_kept_trivial_eigenvector_is_not_drawn(tmp_path):
    meta = tmp_path / "embedding.json"
    meta.write_text(json.dumps({"graph": {"drop_first": False}}))
    assert _first_informative(meta, 10) == 1
    assert _first_informative(meta, 1) == 0  # nothing else to draw


def test_dropped_trivial_or_no_graph_draws_from_the_first_column(tmp_path):
    meta = tmp_path / "embedding.json"
    meta.write_text(json.dumps({"graph": {"drop_first": True}}))
    assert _first_informative(meta, 10) == 0
    meta.write_text(json.dumps({"method": "nmce_finetune"}))
    assert _first_informative(meta, 32) == 0
    assert _first_informative(tmp_path / "missing.json", 32) == 0
