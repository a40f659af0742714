"""User data files (npz, npy, csv): loading, label remapping, and every bad input's message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from basis_nmce.data import fetch, load_prepared, load_raw, prepare, save_prepared
from basis_nmce.errors import ChecksumError, DataError


def _x(n=30, d=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _npz(tmp_path, name="blobs.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _load(tmp_path, path, source="npz", **spec):
    return load_raw("mine", {"source": source, "path": str(path), **spec}, tmp_path / "raw")


# ------------------------------------------------------------------ npz


def test_npz_train_only_gets_a_holdout(tmp_path):
    path = _npz(tmp_path, x_train=_x(60), y_train=np.arange(60) % 3)
    spec = {"source": "npz", "path": str(path)}
    ds = prepare("mine", spec, tmp_path / "raw", seed=0)
    assert ds.meta["split"] == "holdout" and len(ds.x_test) == 10 and len(ds.x_train) == 50
    assert ds.n_classes == 3 and ds.meta["label_values"] == [0, 1, 2]


def test_npz_with_official_test_split(tmp_path):
    path = _npz(
        tmp_path,
        x_train=_x(20),
        y_train=np.arange(20) % 2,
        x_test=_x(8, seed=1),
        y_test=np.arange(8) % 2,
    )
    ds = prepare("mine", {"source": "npz", "path": str(path)}, tmp_path / "raw")
    assert ds.meta["split"] == "official" and ds.x_test.shape == (8, 3)
    np.testing.assert_array_equal(ds.x_test, _x(8, seed=1))


def test_npz_arbitrary_labels_are_remapped_consistently(tmp_path):
    ytr = np.array([10, -5, 7, 10, 7, -5])
    yte = np.array([7, 10, 99])
    path = _npz(tmp_path, x_train=_x(6), y_train=ytr, x_test=_x(3), y_test=yte.astype(float))
    ds = _load(tmp_path, path)
    assert ds.meta["label_values"] == [-5, 7, 10, 99] and ds.n_classes == 4
    assert ds.y_train.tolist() == [2, 0, 1, 2, 1, 0] and ds.y_test.tolist() == [1, 2, 3]
    assert ds.y_train.dtype == np.int64


def test_npz_unlabelled_option_and_no_labels(tmp_path):
    path = _npz(tmp_path, x_train=_x(6), y_train=np.array([1, -1, 2, -1, 1, 2]))
    ds = _load(tmp_path, path, options={"unlabelled": -1})
    assert ds.y_train.tolist() == [0, -1, 1, -1, 0, 1] and ds.meta["label_values"] == [1, 2]
    path = _npz(tmp_path, "nolabels.npz", x_train=_x(6))
    ds = _load(tmp_path, path)
    assert ds.n_classes is None and (ds.y_train == -1).all()


def test_npz_uint8_images_stay_images(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, size=(12, 5, 5, 3), dtype=np.uint8)
    path = _npz(tmp_path, x_train=imgs, y_train=np.arange(12) % 2)
    ds = _load(tmp_path, path)
    assert ds.is_image and ds.x_train.dtype == np.uint8 and ds.meta["image_shape"] == [5, 5, 3]


def test_npz_float64_and_int_features_become_float32(tmp_path):
    path = _npz(tmp_path, x_train=np.arange(12, dtype=np.int64).reshape(6, 2))
    assert _load(tmp_path, path).x_train.dtype == np.float32
    path = _npz(tmp_path, "big.npz", x_train=np.full((3, 2), 1e300))
    with pytest.raises(DataError, match=r"big\.npz: x_train has values beyond the float32 range"):
        _load(tmp_path, path)


@pytest.mark.parametrize(
    ("arrays", "pattern"),
    [
        (
            {"x_train": "nan"},
            r"bad\.npz: x_train contains 1 NaN value\(s\) \(first at row 4, column 1\)",
        ),
        ({"x_train": "inf"}, r"bad\.npz: x_train contains 1 infinite"),
        ({"x_train": np.zeros((0, 3))}, r"bad\.npz: x_train is empty"),
        ({"x_train": np.zeros((5, 0))}, r"bad\.npz: x_train has shape \(5, 0\)"),
        (
            {"x_train": "ok", "y_train": np.arange(29)},
            r"bad\.npz: y_train has 29 labels but x_train has 30 rows",
        ),
        (
            {"x_train": "ok", "y_train": np.full(30, 0.5)},
            r"bad\.npz: y_train holds non-integer labels \(row 0: ",
        ),
        (
            {"x_train": "ok", "y_train": np.array(["a", "b"] * 15)},
            r"bad\.npz: y_train holds strings",
        ),
        ({"x_train": np.arange(30.0)}, r"bad\.npz: x_train has 1 dimension"),
        ({"x_train": np.zeros((2, 1, 1, 1, 1))}, r"bad\.npz: x_train has 5 dimension"),
        (
            {"x_train": "ok", "x_test": np.zeros((4, 5))},
            r"bad\.npz: x_train rows have shape \(3,\) but x_test rows \(5,\)",
        ),
        ({"x_train": "ok", "x_test": np.zeros((0, 3))}, r"bad\.npz: x_test is empty"),
        (
            {"x_train": "ok", "xtest": np.zeros((4, 3))},
            r"bad\.npz: unknown array\(s\) 'xtest'.*x_train, y_train, x_test, y_test",
        ),
        ({"x": np.zeros((4, 3))}, r"bad\.npz: unknown array\(s\) 'x'"),
        ({"y_train": np.zeros(4)}, r"bad\.npz: no array 'x_train'"),
        ({"x_train": "ok", "y_test": np.zeros(4)}, r"bad\.npz: has y_test but no x_test"),
        ({"x_train": np.array(["1", "2"]).reshape(2, 1)}, r"bad\.npz: x_train holds strings"),
    ],
)
def test_npz_bad_inputs_name_the_file_and_array(tmp_path, arrays, pattern):
    resolved = {}
    for k, v in arrays.items():
        if isinstance(v, str) and v in ("nan", "inf", "ok"):
            x = _x()
            if v != "ok":
                x[4, 1] = np.nan if v == "nan" else np.inf
            v = x
        resolved[k] = v
    path = _npz(tmp_path, "bad.npz", **resolved)
    with pytest.raises(DataError, match=pattern):
        _load(tmp_path, path)


def test_npz_object_arrays_are_not_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x_train=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npz.*(object array|not a numeric)"):
        _load(tmp_path, path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "x.npz"
    path.write_text("hello")
    with pytest.raises(
        DataError, match=r"x\.npz: is not an \.npz archive: found text.*numpy\.savez"
    ):
        _load(tmp_path, path)
    np.save(tmp_path / "single.npy", _x())
    (tmp_path / "single.npy").rename(tmp_path / "single.npz")
    with pytest.raises(
        DataError,
        match=r"single\.npz: is not an \.npz archive: found a single \.npy array.*source npy",
    ):
        _load(tmp_path, tmp_path / "single.npz")


def test_missing_user_file_names_key_and_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        DataError,
        match=r"datasets\.mine\.path: file 'nothere\.npz' not found.*create it or fix the path",
    ):
        fetch("mine", {"source": "npz", "path": "nothere.npz"}, tmp_path / "raw")
    with pytest.raises(DataError, match=r"datasets\.mine\.path: source 'npz' needs a file"):
        load_raw("mine", {"source": "npz"}, tmp_path / "raw")
    with pytest.raises(DataError, match=r"datasets\.mine\.labels_path: only source npy"):
        load_raw(
            "mine", {"source": "csv", "path": "a.csv", "labels_path": "b.txt"}, tmp_path / "raw"
        )


def test_unknown_user_option(tmp_path):
    path = _npz(tmp_path, x_train=_x())
    with pytest.raises(
        DataError, match=r"datasets\.mine\.options\.delimiter: unknown option.*unlabelled"
    ):
        _load(tmp_path, path, options={"delimiter": ";"})


# ------------------------------------------------------------------ fetch copies and pins the file


def test_fetch_copies_user_file_and_pins_its_checksum(tmp_path):
    path = _npz(tmp_path, x_train=_x(12), y_train=np.arange(12) % 2)
    spec = {"source": "npz", "path": str(path)}
    raw = tmp_path / "raw"
    m = fetch("mine", spec, raw)
    ((rel, entry),) = m["files"].items()
    assert rel == "blobs.npz" and entry["origin"] == str(path) and entry["role"] == "path"
    # prepare reads the fetched copy: editing the original changes nothing until the next fetch
    np.savez(path, x_train=_x(12, seed=9))
    ds = load_raw("mine", spec, raw)
    np.testing.assert_array_equal(ds.x_train, _x(12))
    # a copy changed after the fetch is caught
    np.savez(raw / "blobs.npz", x_train=_x(12, seed=5))
    with pytest.raises(ChecksumError, match=r"blobs\.npz: sha256 .* recorded at fetch time"):
        load_raw("mine", spec, raw)
    # a spec pointing at another file than the one fetched asks for a new fetch
    other = _npz(tmp_path, "other.npz", x_train=_x(4))
    with pytest.raises(DataError, match=r"datasets\.mine\.path is .*other\.npz.*fetch"):
        load_raw("mine", {"source": "npz", "path": str(other)}, raw)


def test_nan_message_names_original_file_after_fetch(tmp_path):
    x = _x(50)
    x[4, 1] = np.nan
    path = _npz(tmp_path, x_train=x, y_train=np.zeros(50, np.int64))
    spec = {"source": "npz", "path": str(path)}
    fetch("blobs", spec, tmp_path / "raw")
    with pytest.raises(DataError) as e:
        prepare("blobs", spec, tmp_path / "raw")
    assert "x_train" in str(e.value) and "blobs.npz" in str(e.value) and "NaN" in str(e.value)


def test_user_round_trip_through_prepared(tmp_path):
    path = _npz(tmp_path, x_train=_x(60), y_train=(np.arange(60) % 3) * 10 + 5)
    spec = {"source": "npz", "path": str(path), "max_train": 20}
    fetch("mine", spec, tmp_path / "raw")
    ds = prepare("mine", spec, tmp_path / "raw", seed=1)
    save_prepared(tmp_path / "p" / "mine.npz", ds)
    back = load_prepared(tmp_path / "p" / "mine.npz")
    np.testing.assert_array_equal(back.x_train, ds.x_train)
    assert back.meta["label_values"] == [5, 15, 25] and len(back.x_train) == 20
    side = json.loads((tmp_path / "p" / "mine.json").read_text())
    assert side["meta"]["files"]["path"] == str(path)


# ------------------------------------------------------------------ npy


def test_npy_with_labels_npy_and_text(tmp_path):
    np.save(tmp_path / "feat.npy", _x(10))
    np.save(tmp_path / "lab.npy", np.arange(10) % 2)
    ds = _load(tmp_path, tmp_path / "feat.npy", source="npy", labels_path=str(tmp_path / "lab.npy"))
    assert ds.n_classes == 2 and ds.meta["split"] == "holdout"
    (tmp_path / "lab.txt").write_text("\n".join(str(v) for v in [3, 4] * 5) + "\n")
    ds = _load(tmp_path, tmp_path / "feat.npy", source="npy", labels_path=str(tmp_path / "lab.txt"))
    assert ds.meta["label_values"] == [3, 4]
    no_labels = _load(tmp_path, tmp_path / "feat.npy", source="npy")
    assert no_labels.n_classes is None


def test_npy_fetch_copies_both_files_even_with_the_same_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    np.save(tmp_path / "a" / "data.npy", _x(10))
    np.save(tmp_path / "b" / "data.npy", np.arange(10) % 2)
    spec = {
        "source": "npy",
        "path": str(tmp_path / "a" / "data.npy"),
        "labels_path": str(tmp_path / "b" / "data.npy"),
    }
    m = fetch("n", spec, tmp_path / "raw")
    assert sorted(m["files"]) == ["data.npy", "labels_path_data.npy"]
    ds = load_raw("n", spec, tmp_path / "raw")
    assert ds.y_train.tolist() == [0, 1] * 5
    # dropping labels_path from the config after the fetch asks for a new fetch
    without = {k: v for k, v in spec.items() if k != "labels_path"}
    with pytest.raises(DataError, match=r"datasets\.n\.labels_path is None but .* holds a copy"):
        load_raw("n", without, tmp_path / "raw")


@pytest.mark.parametrize(
    ("labels", "pattern"),
    [
        ("1\n2\n", r"lab\.txt has 2 labels but .*feat\.npy has 10 rows"),
        ("a\nb\n" * 5, r"lab\.txt: labels must be one integer per line"),
        ("0.5\n" * 10, r"lab\.txt: y_train holds non-integer labels"),
    ],
)
def test_npy_bad_labels(tmp_path, labels, pattern):
    np.save(tmp_path / "feat.npy", _x(10))
    (tmp_path / "lab.txt").write_text(labels)
    with pytest.raises(DataError, match=pattern):
        _load(tmp_path, tmp_path / "feat.npy", source="npy", labels_path=str(tmp_path / "lab.txt"))


def test_npy_bad_features(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object))
    with pytest.raises(DataError, match=r"obj\.npy: not a numeric \.npy"):
        _load(tmp_path, tmp_path / "obj.npy", source="npy")
    np.save(tmp_path / "vec.npy", np.arange(5.0))
    with pytest.raises(DataError, match=r"vec\.npy: x_train has 1 dimension"):
        _load(tmp_path, tmp_path / "vec.npy", source="npy")


# ------------------------------------------------------------------ csv


def _csv(tmp_path, text, name="d.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_with_header_and_label_column(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,7\n3,4,9\n5,6,7\n0.5,1e3,9\n")
    ds = _load(tmp_path, path, source="csv")
    np.testing.assert_array_equal(ds.x_train, [[1, 2], [3, 4], [5, 6], [0.5, 1000]])
    assert ds.y_train.tolist() == [0, 1, 0, 1] and ds.meta["label_values"] == [7, 9]


def test_csv_y_column_any_case_and_position(tmp_path):
    path = _csv(tmp_path, "Y, f1, f2\n1, 0.1, 0.2\n2, 0.3, 0.4\n")
    ds = _load(tmp_path, path, source="csv")
    assert ds.x_train.shape == (2, 2) and ds.y_train.tolist() == [0, 1]


def test_csv_without_header_has_no_labels(tmp_path):
    path = _csv(tmp_path, "1,2,3\n4,5,6\n7,8,9\n")
    ds = _load(tmp_path, path, source="csv")
    assert ds.x_train.shape == (3, 3) and ds.n_classes is None


def test_csv_options(tmp_path):
    path = _csv(tmp_path, "a;cls\n1;0\n2;1\n")
    ds = _load(tmp_path, path, source="csv", options={"delimiter": ";", "label_column": "cls"})
    assert ds.y_train.tolist() == [0, 1] and ds.x_train.shape == (2, 1)
    with pytest.raises(DataError, match=r"d\.csv: no column 'klass'"):
        _load(tmp_path, path, source="csv", options={"delimiter": ";", "label_column": "klass"})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a,b,label\n1,2,0\n3,x,1\n", r"d\.csv: column 'b' is not numeric \(line 3: 'x'\)"),
        ("a,b,label\n1,2,0\n3,,1\n", r"d\.csv: column 'b' has an empty or NaN cell on line 3"),
        ("a,b,label\n1,2,cat\n3,4,dog\n", r"d\.csv: column 'label' holds non-integer labels"),
        ("a,b,label\n1,2,0.5\n3,4,1\n", r"d\.csv: y_train holds non-integer labels"),
        ("a,b,label\n1,2,0\n3,4,\n", r"d\.csv: column 'label' is empty on line 3"),
        ("a,label,y\n1,2,0\n", r"d\.csv: several label columns"),
        ("label\n1\n2\n", r"d\.csv: no feature columns"),
        ("a,b\n", r"d\.csv: no data rows"),
        ("", r"d\.csv: the file is empty"),
        ("a,b\n1,nan\n", r"d\.csv: column 'b' has an empty or NaN cell on line 2"),
        ("a,b\n1,inf\n2,3\n", r"d\.csv: x_train contains 1 infinite"),
    ],
)
def test_csv_bad_inputs_name_the_file(tmp_path, text, pattern):
    with pytest.raises(DataError, match=pattern):
        _load(tmp_path, _csv(tmp_path, text), source="csv")
