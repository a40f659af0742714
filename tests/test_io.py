"""The one loader: every damaged or foreign file is a DataError naming it, what was expected,
what was found and the fix; model files never run code."""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
import torch

from basis_nmce.errors import DataError
from basis_nmce.io import (
    load_checkpoint,
    load_model,
    load_npy,
    load_npz,
    read_csv,
    read_json,
    save_checkpoint,
    save_model,
    save_npz,
    sniff,
)


class RunsCode:
    """Unpickling this runs ``touch <marker>``: proof that a loader executed code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def truncate(path, keep: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, {"w": torch.ones(2, 3)}, {"class": "X"})
    return path


def test_model_round_trip(model):
    state, meta = load_model(model)
    assert torch.equal(state["w"], torch.ones(2, 3)) and meta == {"class": "X"}


@pytest.mark.parametrize(
    "damage, found",
    [
        (lambda p: p.unlink(), "file not found"),
        (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
        (truncate, "truncated or damaged zip archive"),
        (lambda p: np.savez(p.open("wb"), a=np.ones(2)), "found an .npz archive"),
        (lambda p: p.write_text("hello"), "found text"),
        (lambda p: pickle.dump({"w": np.ones(2)}, p.open("wb")), "holds pickled Python objects"),
        (lambda p: torch.save(torch.nn.Linear(2, 2), p), "torch.nn.modules.linear.Linear"),
        (lambda p: torch.save([torch.ones(1)], p), "holds a list, not a state dict"),
    ],
    ids=["missing", "empty", "truncated", "npz", "text", "pickle", "module", "list"],
)
def test_damaged_model_names_file_expectation_and_fix(model, damage, found):
    damage(model)
    with pytest.raises(DataError, match=found) as e:
        load_model(model)
    msg = str(e.value)
    assert msg.startswith(str(model)) and "expected a state dict" in msg and "Fix:" in msg


def test_a_pickle_that_runs_code_is_refused_without_running_it(model, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"w": RunsCode(marker)}, model)
    with pytest.raises(DataError, match=r"references posix\.system.*never unpickled"):
        load_model(model)
    assert not marker.exists()


def test_model_sidecar_missing_or_damaged(model):
    side = model.with_suffix(".json")
    side.write_text("{not json")
    with pytest.raises(DataError, match=r"model\.json: is not valid JSON.*metadata"):
        load_model(model)
    side.unlink()
    with pytest.raises(DataError, match=r"model\.json: file not found.*metadata written with"):
        load_model(model)


def test_checkpoint_missing_is_none_damaged_names_the_fix(tmp_path):
    path = tmp_path / "ckpt.pt"
    assert load_checkpoint(path) is None
    save_checkpoint(path, {"step": 3, "w": torch.zeros(2)})
    assert load_checkpoint(path)["step"] == 3
    truncate(path)
    with pytest.raises(DataError, match=rf"ckpt\.pt: .*Fix: delete {path} to start"):
        load_checkpoint(path)


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "features.npz"
    save_npz(path, train=np.ones((4, 2), np.float32), test=np.ones((2, 2), np.float32))
    return path


@pytest.mark.parametrize(
    "damage, found",
    [
        (lambda p: p.unlink(), "file not found"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (truncate, "not an .npz archive: found a truncated or damaged zip archive"),
        (lambda p: np.save(p.open("wb"), np.ones(3)), "found a single .npy array"),
        (lambda p: torch.save({"w": torch.ones(1)}, p), "found a torch file"),
        (lambda p: pickle.dump([1], p.open("wb")), "found a Python pickle"),
        (lambda p: p.write_text('{"a": 1}'), "found JSON or other text"),
    ],
    ids=["missing", "empty", "truncated", "npy", "torch", "pickle", "json"],
)
def test_damaged_npz_names_file_and_what_it_found(npz, damage, found):
    damage(npz)
    with pytest.raises(DataError, match=found) as e:
        load_npz(npz, ["train"], what="features.npz", hint="run the features stage")
    msg = str(e.value)
    assert msg.startswith(str(npz)) and "expected features.npz" in msg
    assert msg.endswith("Fix: run the features stage")


def test_missing_array_names_the_file_and_recognises_what_it_holds(tmp_path):
    path = tmp_path / "blobs.npz"
    arrays = {k: np.zeros(2) for k in ("x_train", "y_train", "x_test", "y_test")}
    save_npz(path, **arrays)
    with pytest.raises(DataError, match=r"no array 'train'.*a prepared data set"):
        load_npz(path, ["train", "test"])
    z = load_npz(path)  # looking the array up later names it just the same
    with pytest.raises(DataError, match=r"blobs\.npz: has no array 'train'; it holds x_test"):
        z["train"]
    assert "train" not in z and z.get("train") is None  # membership tests never raise


def test_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, train=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz: array 'train' is an object array"):
        load_npz(path)


def test_npy_and_json(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(6.0).reshape(3, 2))
    assert load_npy(path).shape == (3, 2)
    np.savez(path.open("wb"), a=np.ones(2))
    with pytest.raises(DataError, match=r"x\.npy: is not a single array: found an .npz"):
        load_npy(path)
    bad = tmp_path / "m.json"
    bad.write_text("[1, 2")
    with pytest.raises(DataError, match=r"m\.json: is not valid JSON.*Fix: rerun"):
        read_json(bad, hint="rerun")
    bad.write_text(json.dumps({"a": 1}))
    assert read_json(bad) == {"a": 1}


def test_sniff_recognises_the_formats_this_project_writes(npz, model):
    assert sniff(npz) == "an .npz archive"
    assert sniff(model) == "a torch file (torch.save)"
    assert sniff(model.with_suffix(".json")) == "JSON or other text"


def test_csv(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("step,loss\n1,0.5\n")
    assert read_csv(path)["loss"].tolist() == [0.5]
    path.write_text("")
    with pytest.raises(DataError, match=r"log\.csv: is empty.*expected a log"):
        read_csv(path, what="a log")
    path.write_bytes(b'a,b\n"1,2\n')
    with pytest.raises(DataError, match=r"log\.csv: is not a readable CSV table"):
        read_csv(path)


def test_require_finite_names_file_array_and_row(npz):
    z = load_npz(npz)
    assert z.require_finite("train", "test") is z
    arrays = dict(z)
    arrays["test"][1, 0] = np.inf
    save_npz(npz, **arrays)
    with pytest.raises(DataError, match=r"features\.npz: array 'test' contains 1 NaN .*row 1"):
        load_npz(npz).require_finite("train", "test")
