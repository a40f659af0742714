"""The NMCE stages through the real pipeline: a killed training job resumes from its checkpoint."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from basis_nmce.io import load_npz

from .helpers import SNAKEMAKE, TINY_CONFIG, kill_snakemake_once, make_project, run

pytestmark = pytest.mark.slow


def _config() -> dict:
    cfg = copy.deepcopy(TINY_CONFIG)
    cfg["run"] = {"datasets": ["blobs"], "features": ["raw"], "methods": ["nmce_tcr"]}
    cfg["nmce"].update({"tcr": {"steps": 4000}, "checkpoint_every": 50, "log_every": 50})
    cfg["nmce"]["network_options"] = {"width": 64, "depth": 3}
    return cfg


def test_killed_nmce_training_resumes_from_its_checkpoint(tmp_path):
    proj = make_project(tmp_path, _config())
    folder = proj / "results/nmce_tcr/blobs/raw"
    ckpt = proj / "results/checkpoints/nmce_tcr/blobs/raw/checkpoint.pt"
    run([*SNAKEMAKE, "--until", "features"], proj)

    def second_run_is_refused():
        """A second Snakemake on the same folder while the first one trains."""
        second = run([*SNAKEMAKE, "--until", "nmce_tcr"], proj, check=False)
        out = second.stdout + second.stderr
        assert second.returncode != 0
        assert "Directory cannot be locked" in out and "no other Snakemake process" in out
        assert "Finished jobid" not in out

    kill_snakemake_once("nmce_tcr", proj, ckpt, while_running=second_run_is_refused)
    # SIGKILL mid-training leaves no output of the job, not even a half-written one.
    outputs = ("embedding.npz", "embedding.json", "model.pt", "model.json", "log.csv")
    assert not [name for name in outputs if (folder / name).exists()]
    assert not [p.name for p in folder.iterdir() if p.name != "log.txt"], "partial output"
    run([*SNAKEMAKE, "--until", "nmce_tcr"], proj)

    meta = json.loads((folder / "embedding.json").read_text())
    assert meta["steps"] == 4000
    assert 50 <= meta["resumed_from"] < 4000 and meta["resumed_from"] % 50 == 0
    log = np.genfromtxt(folder / "log.csv", delimiter=",", names=True)
    np.testing.assert_array_equal(log["step"], np.arange(50, 4001, 50))
    assert not ckpt.exists(), "the checkpoint is removed once the outputs exist"

    # The resumed run ends where an uninterrupted one does.
    resumed = load_npz(folder / "embedding.npz")["test"]
    run([*SNAKEMAKE, "--until", "nmce_tcr", "--forcerun", "nmce_tcr"], proj)
    assert json.loads((folder / "embedding.json").read_text())["resumed_from"] == 0
    np.testing.assert_allclose(load_npz(folder / "embedding.npz")["test"], resumed, atol=1e-5)

    # The whole NMCE chain and its scores, from the resumed stage 1.
    run([*SNAKEMAKE, "--config", "run={methods: [nmce_tcr, nmce_finetune]}"], proj)
    m = json.loads((proj / "results/evaluate/blobs/raw/nmce_finetune/metrics.json").read_text())
    assert m["split"] == "test" and m["acc"] is not None and m["knn_acc"] is not None
    report = (proj / "results/report/report.md").read_text()
    assert "nmce_finetune" in report and "nmce_tcr" in report

    # The unsupervised chain: stage 1's features (kind tcr, from the same model, not retrained)
    # feed the exact embedding and BASiS; NMCE methods skip kind tcr.
    chain = "run={features: [raw, tcr], methods: [nmce_tcr, analytic, basis_train]}"
    run([*SNAKEMAKE, "--config", chain], proj)
    again = run([*SNAKEMAKE, "-n", "--config", chain], proj)
    tcr = load_npz(proj / "results/features/blobs/tcr/features.npz")
    np.testing.assert_allclose(tcr["test"], load_npz(folder / "embedding.npz")["test"], atol=1e-6)
    m = json.loads((proj / "results/evaluate/blobs/tcr/basis_train/metrics.json").read_text())
    assert m["split"] == "test" and m["acc"] is not None and m["grassmann"] is not None
    assert not (proj / "results/nmce_tcr/blobs/tcr").exists()
    assert "Nothing to be done" in again.stdout + again.stderr
