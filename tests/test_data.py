"""Data layer: toy generators, digits, splits, validation, the prepared format, the registry."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from basis_nmce.data import (
    SOURCES,
    Dataset,
    fetch,
    load_prepared,
    load_raw,
    prepare,
    save_prepared,
    toys,
    validate_dataset,
)
from basis_nmce.data.dataset import as_label_vector, encode_labels
from basis_nmce.data.prepared import sidecar_path
from basis_nmce.data.splits import holdout_indices, subsample_indices
from basis_nmce.errors import ChecksumError, DataError
from basis_nmce.io import save_npz, write_json

SMALL = {
    "moons": 300,
    "circles": 300,
    "three_moons": 300,
    "double_spiral": 300,
    "random_mlp_manifolds": 300,
}
CLASSES = {
    "moons": 2,
    "circles": 2,
    "three_moons": 3,
    "double_spiral": 2,
    "random_mlp_manifolds": 2,
}


def test_sources_are_exactly_the_documented_ones():
    assert SOURCES == (
        "moons", "circles", "three_moons", "double_spiral", "random_mlp_manifolds", "digits",
        "rotating", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "stl10", "coil20", "coil100",
        "npz", "npy", "csv",
    )  # fmt: skip


def test_importing_the_package_does_not_import_torch():
    code = "import sys, basis_nmce.data; print('torch' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# ------------------------------------------------------------------ toys


@pytest.mark.parametrize("source", toys.TOYS)
def test_toy_shapes_classes_and_dtype(source, tmp_path):
    spec = {"source": source, "options": {"n_samples": SMALL[source]}}
    ds = load_raw("toy", spec, tmp_path)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert ds.x_train.shape[0] == SMALL[source] and ds.x_test.shape[0] == 0
    assert ds.n_classes == CLASSES[source]
    assert set(np.unique(ds.y_train)) == set(range(CLASSES[source]))
    assert ds.meta["split"] == "holdout" and ds.meta["image_shape"] is None
    assert not ds.is_image


@pytest.mark.parametrize("source", toys.TOYS)
def test_toys_are_seeded(source, tmp_path):
    spec = {"source": source, "options": {"n_samples": SMALL[source]}}
    a, b = load_raw("t", spec, tmp_path, seed=3), load_raw("t", spec, tmp_path, seed=3)
    c = load_raw("t", spec, tmp_path, seed=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize(
    ("source", "n"), [("moons", 9000), ("circles", 9000), ("three_moons", 9000)]
)
def test_basis_toy_default_size_is_9000(source, n):
    opts = toys.options("t", {"source": source})
    assert opts["n_samples"] == n


def test_double_spiral_geometry():
    opts = {**toys.options("s", {"source": "double_spiral"}), "noise": 0.0, "n_samples": 2000}
    x, y = toys.generate("double_spiral", opts, seed=0)
    r = np.linalg.norm(x, axis=1)
    assert 14.0 < r.max() <= 4.5 * np.pi + 1e-4  # "radius approximately 15"
    assert r.min() >= 1.5 * np.pi - 1e-4
    assert toys.options("s", {"source": "double_spiral"})["noise"] == 0.05
    # Spiral 0 is (t cos t, t sin t) with t = r: its angle is r (mod 2 pi); spiral 1 is its
    # point reflection, angle r + pi.
    phase = np.angle(np.exp(1j * (np.arctan2(x[:, 1], x[:, 0]) - r - np.pi * y)))
    np.testing.assert_allclose(phase, 0.0, atol=1e-3)


def test_three_moons_are_separated_interleaved_arcs():
    opts = toys.options("t", {"source": "three_moons", "options": {"n_samples": 900, "noise": 0.0}})
    x, y = toys.generate("three_moons", opts, seed=0)
    assert np.bincount(y).tolist() == [300, 300, 300]
    from scipy.spatial.distance import cdist

    gap = {(a, b): cdist(x[y == a], x[y == b]).min() for a in range(3) for b in range(a + 1, 3)}
    assert gap[0, 1] > 0.85 and gap[1, 2] > 0.85  # upper arcs to the lower arc
    assert gap[0, 2] > 0.45  # the two upper arcs' tips
    lifted, _ = toys.generate("three_moons", {**opts, "drop": 0.0}, seed=0)
    assert cdist(lifted[y == 0], lifted[y == 1]).min() == pytest.approx(0.44, abs=0.01)
    # interleaved: the x-ranges of neighbouring moons overlap
    assert x[y == 0, 0].max() > x[y == 1, 0].min() and x[y == 2, 0].min() < x[y == 1, 0].max()


def test_random_mlp_without_bias_passes_through_origin():
    rng = np.random.default_rng(0)
    net = toys._random_mlp([3, 16, 16, 8], bias=False, rng=rng)
    z = rng.standard_normal((50, 3))
    np.testing.assert_allclose(net(np.zeros((1, 3))), 0.0)
    np.testing.assert_allclose(net(2.5 * z), 2.5 * net(z), atol=1e-12)  # a cone through 0
    biased = toys._random_mlp([3, 16, 8], bias=True, rng=rng)
    assert np.abs(biased(np.zeros((1, 3)))).max() > 0


def test_random_mlp_manifolds_options():
    base = {"n_samples": 400, "noise": 0.0}
    spec = {"source": "random_mlp_manifolds", "options": {**base, "bias": False, "ambient_dim": 10}}
    x, y = toys.generate("random_mlp_manifolds", toys.options("m", spec), seed=0)
    assert x.shape == (400, 10)
    assert np.bincount(y).tolist() == [200, 200]
    assert np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-4)  # normalize: one global scale
    spec3 = {"source": "random_mlp_manifolds", "options": {**base, "intrinsic_dims": [1, 2, 3]}}
    _, y3 = toys.generate("random_mlp_manifolds", toys.options("m", spec3), seed=0)
    assert set(y3) == {0, 1, 2}
    assert toys.n_classes("random_mlp_manifolds", toys.options("m", spec3)) == 3
    # intrinsic dimension: a 1-d latent through the MLP gives a curve (rank-1 local tangent)
    spec1 = {"source": "random_mlp_manifolds", "options": {**base, "intrinsic_dims": [1, 1]}}
    x1, y1 = toys.generate("random_mlp_manifolds", toys.options("m", spec1), seed=0)
    assert x1.shape[1] == 32 and np.linalg.matrix_rank(x1[y1 == 0][:3] - x1[y1 == 0][:1]) <= 2


def test_unknown_toy_option_names_the_key_and_the_allowed_ones(tmp_path):
    spec = {"source": "moons", "options": {"n_sample": 10}}
    with pytest.raises(DataError) as e:
        fetch("mymoons", spec, tmp_path)
    msg = str(e.value)
    assert "datasets.mymoons.options.n_sample" in msg
    assert "n_samples" in msg and "noise" in msg


@pytest.mark.parametrize(
    ("source", "options", "key"),
    [
        ("moons", {"n_samples": 1}, "n_samples"),
        ("moons", {"n_samples": 2.5}, "n_samples"),
        ("circles", {"factor": 1.0}, "factor"),
        ("moons", {"noise": -1}, "noise"),
        ("random_mlp_manifolds", {"bias": "yes"}, "bias"),
        ("random_mlp_manifolds", {"latent": "cauchy"}, "latent"),
        ("random_mlp_manifolds", {"intrinsic_dims": [3]}, "intrinsic_dims"),
    ],
)
def test_bad_toy_option_values_name_the_key(source, options, key, tmp_path):
    with pytest.raises(DataError, match=rf"datasets\.d\.options\.{key}"):
        load_raw("d", {"source": source, "options": options}, tmp_path)


def test_fetch_of_a_toy_writes_a_generated_manifest(tmp_path):
    raw = tmp_path / "raw" / "moons"
    m = fetch("moons", {"source": "moons", "options": {"n_samples": 100}}, raw, seed=2)
    on_disk = json.loads((raw / "manifest.json").read_text())
    assert on_disk == m
    assert m["generated"] is True and m["source"] == "moons" and m["files"] == {}
    assert m["options"]["n_samples"] == 100


# ------------------------------------------------------------------ digits


def test_digits(tmp_path):
    spec = {"source": "digits"}
    fetch("digits", spec, tmp_path)
    ds = prepare("digits", spec, tmp_path, seed=0)
    assert ds.x_train.shape == (1497, 64) and ds.x_test.shape == (300, 64)
    assert ds.x_train.dtype == np.float32 and 0 <= ds.x_train.min() and ds.x_train.max() <= 16
    assert ds.n_classes == 10 and ds.meta["image_shape"] == [8, 8] and not ds.is_image
    assert ds.meta["split"] == "holdout"
    small = load_raw("d", {"source": "digits", "options": {"n_class": 3}}, tmp_path)
    assert small.n_classes == 3 and set(small.y_train) == {0, 1, 2}


# ------------------------------------------------------------------ registry errors


def test_unknown_source_names_the_key(tmp_path):
    with pytest.raises(DataError, match=r"datasets\.x\.source: unknown source 'mnits'.*mnist"):
        fetch("x", {"source": "mnits"}, tmp_path)
    with pytest.raises(DataError, match=r"datasets\.x\.source"):
        load_raw("x", {}, tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [("test_fraction", 0.0), ("test_fraction", 1.5), ("max_train", 0), ("max_test", "9")],
)
def test_bad_split_keys_name_the_key(field, value, tmp_path):
    with pytest.raises(DataError, match=rf"datasets\.m\.{field}"):
        prepare("m", {"source": "moons", "options": {"n_samples": 60}, field: value}, tmp_path)


# ------------------------------------------------------------------ splits


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 500), frac=st.floats(0.01, 0.99), seed=st.integers(0, 2**32 - 1))
def test_holdout_is_a_seeded_partition(n, frac, seed):
    tr, te = holdout_indices(n, frac, seed)
    assert len(te) == min(max(round(n * frac), 1), n - 1)
    assert len(np.intersect1d(tr, te)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, te])), np.arange(n))
    assert (np.diff(tr) > 0).all() and (np.diff(te) > 0).all()
    tr2, te2 = holdout_indices(n, frac, seed)
    np.testing.assert_array_equal(te, te2)
    np.testing.assert_array_equal(tr, tr2)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), limit=st.integers(1, 400), seed=st.integers(0, 1000))
def test_subsample_indices(n, limit, seed):
    idx = subsample_indices(n, limit, seed, "subsample_train")
    if n <= limit:
        assert idx is None
    else:
        assert len(idx) == limit and len(np.unique(idx)) == limit and (np.diff(idx) > 0).all()
        assert idx.max() < n
        np.testing.assert_array_equal(idx, subsample_indices(n, limit, seed, "subsample_train"))


def test_holdout_needs_two_points():
    with pytest.raises(DataError, match="at least 2"):
        holdout_indices(1, 0.5, 0)


def test_prepare_holdout_is_one_sixth_and_seeded(tmp_path):
    spec = {"source": "moons", "options": {"n_samples": 600}}
    a = prepare("moons", spec, tmp_path, seed=0)
    b = prepare("moons", spec, tmp_path, seed=0)
    c = prepare("moons", {**spec, "options": {"n_samples": 600}}, tmp_path, seed=1)
    assert len(a.x_test) == 100 and len(a.x_train) == 500
    np.testing.assert_array_equal(a.x_test, b.x_test)
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.array_equal(a.x_test, c.x_test)
    assert a.meta["split"] == "holdout" and a.meta["test_fraction"] == pytest.approx(1 / 6)
    assert a.meta["seed"] == 0 and a.meta["n_train"] == 500


def test_prepare_test_fraction_and_subsampling(tmp_path):
    spec = {
        "source": "circles",
        "options": {"n_samples": 1000},
        "test_fraction": 0.3,
        "max_train": 200,
        "max_test": 50,
    }
    ds = prepare("c", spec, tmp_path, seed=5)
    assert ds.x_train.shape == (200, 2) and ds.x_test.shape == (50, 2)
    assert ds.meta["n_train_available"] == 700 and ds.meta["n_test_available"] == 300
    again = prepare("c", spec, tmp_path, seed=5)
    np.testing.assert_array_equal(ds.x_train, again.x_train)
    # the split does not depend on max_train: the test set with and without subsampling agrees
    full = prepare("c", {**spec, "max_train": None, "max_test": None}, tmp_path, seed=5)
    assert {tuple(r) for r in ds.x_test} <= {tuple(r) for r in full.x_test}


# ------------------------------------------------------------------ labels


@settings(max_examples=60, deadline=None)
@given(
    ytr=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=40),
    yte=st.lists(st.integers(-(2**40), 2**40), max_size=40),
)
def test_label_encoding_is_consistent_and_invertible(ytr, yte):
    a, b, values = encode_labels(np.array(ytr), np.array(yte, dtype=np.int64), len(ytr), len(yte))
    assert values == sorted(set(ytr) | set(yte))
    assert a.min() >= 0 and a.max() < len(values)
    np.testing.assert_array_equal(np.array(values)[a], ytr)
    np.testing.assert_array_equal(
        np.array(values, dtype=np.int64)[b], np.array(yte, dtype=np.int64)
    )


def test_label_encoding_unlabelled_value_and_missing_labels():
    a, b, values = encode_labels(np.array([5, -1, 7]), None, 3, 2, unlabelled=-1)
    assert a.tolist() == [0, -1, 1] and b.tolist() == [-1, -1] and values == [5, 7]
    a, b, values = encode_labels(None, None, 2, 1)
    assert a.tolist() == [-1, -1] and values is None


def test_label_vector_conversion():
    assert as_label_vector(np.array([1.0, 2.0]), "y", "f").dtype == np.int64
    assert as_label_vector(np.array([[1], [2]]), "y", "f").tolist() == [1, 2]
    with pytest.raises(DataError, match=r"f: y holds non-integer labels \(row 1"):
        as_label_vector(np.array([1.0, 2.5]), "y", "f")
    with pytest.raises(DataError, match="strings"):
        as_label_vector(np.array(["a", "b"]), "y", "f")
    with pytest.raises(DataError, match="NaN"):
        as_label_vector(np.array([1.0, np.nan]), "y", "f")
    with pytest.raises(DataError, match="shape"):
        as_label_vector(np.zeros((2, 2)), "y", "f")


# ------------------------------------------------------------------ validation


def _ds(**kw) -> Dataset:
    rng = np.random.default_rng(0)
    base = {
        "x_train": rng.normal(size=(10, 3)).astype(np.float32),
        "y_train": np.arange(10) % 2,
        "x_test": rng.normal(size=(4, 3)).astype(np.float32),
        "y_test": np.arange(4) % 2,
        "meta": {
            "name": "d",
            "source": "npz",
            "n_classes": 2,
            "image_shape": None,
            "split": "official",
        },
    }
    base.update(kw)
    return Dataset(**base)


def test_a_valid_dataset_passes():
    validate_dataset(_ds(), "here")


def _bad(arr, value, where=(1, 2)):
    arr = arr.copy()
    arr[where] = value
    return arr


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        (
            lambda d: {"x_train": _bad(d.x_train, np.nan)},
            r"here: x_train contains 1 NaN.*row 1, column 2",
        ),
        (lambda d: {"x_test": _bad(d.x_test, np.inf)}, r"here: x_test contains 1 infinite"),
        (lambda d: {"x_train": d.x_train[:0], "y_train": d.y_train[:0]}, r"x_train is empty"),
        (lambda d: {"x_test": d.x_test[:0], "y_test": d.y_test[:0]}, r"x_test is empty"),
        (lambda d: {"y_train": d.y_train[:7]}, r"y_train has 7 labels but x_train has 10 rows"),
        (lambda d: {"x_train": d.x_train[:, 0]}, r"x_train has 1 dimension"),
        (lambda d: {"x_train": np.zeros((10, 1, 1, 1, 1), np.float32)}, r"x_train has 5 dimension"),
        (
            lambda d: {"x_test": np.zeros((4, 5), np.float32)},
            r"x_train rows have shape \(3,\) but x_test rows \(5,\)",
        ),
        (lambda d: {"y_test": np.array([0, 1, 2, 0])}, r"y_test\[2\] = 2 is outside 0..1"),
        (lambda d: {"y_train": d.y_train.astype(float)}, r"y_train must be an integer vector"),
        (lambda d: {"x_train": d.x_train.astype(str)}, r"x_train holds strings"),
        (lambda d: {"meta": {**d.meta, "split": "random"}}, r"split 'random'"),
        (lambda d: {"meta": {"name": "d"}}, r"meta lacks source, n_classes"),
        (lambda d: {"meta": {**d.meta, "n_classes": None}}, r"n_classes is None"),
    ],
)
def test_validation_errors_name_origin_and_array(change, pattern):
    d = _ds()
    with pytest.raises(DataError, match=pattern) as e:
        validate_dataset(_ds(**change(d)), "here")
    assert str(e.value).startswith("here")


def test_validation_accepts_images_and_unlabelled_points():
    imgs = np.zeros((10, 4, 4, 3), np.uint8)
    ds = _ds(x_train=imgs, x_test=imgs[:4], y_train=np.full(10, -1))
    validate_dataset(ds, "here")
    assert ds.is_image
    empty_test = _ds(x_test=np.zeros((0, 3), np.float32), y_test=np.zeros(0, np.int64))
    validate_dataset(empty_test, "here", require_test=False)


# ------------------------------------------------------------------ prepared format


def _prepared(tmp_path, source="three_moons"):
    spec = {"source": source, "options": {"n_samples": 300}}
    ds = prepare("tm", spec, tmp_path / "raw", seed=0)
    path = tmp_path / "prepared" / "tm.npz"
    save_prepared(path, ds)
    return ds, path


def test_prepared_round_trip_and_sidecar(tmp_path):
    ds, path = _prepared(tmp_path)
    back = load_prepared(path)
    for k in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(back, k), getattr(ds, k))
        assert getattr(back, k).dtype == getattr(ds, k).dtype
    assert back.meta == json.loads(json.dumps(ds.meta))
    side = json.loads(sidecar_path(path).read_text())
    assert side["classes"] == [0, 1, 2]
    assert side["shapes"]["x_train"] == [250, 2] and side["dtypes"]["y_test"] == "int64"
    from basis_nmce.io import sha256_file

    assert side["checksum"]["sha256"] == sha256_file(path)
    assert side["meta"]["name"] == "tm" and side["meta"]["n_classes"] == 3
    assert not list(path.parent.glob(".*"))  # no temporary files left behind


def test_prepared_checksum_mismatch_is_caught(tmp_path):
    ds, path = _prepared(tmp_path)
    save_npz(
        path, x_train=ds.x_train[:5], y_train=ds.y_train[:5], x_test=ds.x_test, y_test=ds.y_test
    )
    with pytest.raises(ChecksumError, match=r"tm\.npz: sha256 .* changed after it was prepared"):
        load_prepared(path)


def test_prepared_missing_files_say_how_to_make_them(tmp_path):
    with pytest.raises(
        DataError,
        match=r"nope\.npz: prepared data set not found; run `basis-nmce prepare --dataset nope",
    ):
        load_prepared(tmp_path / "nope.npz")
    _, path = _prepared(tmp_path)
    sidecar_path(path).unlink()
    with pytest.raises(DataError, match=r"tm\.json: the sidecar .* is missing"):
        load_prepared(path)


def test_prepared_with_an_unknown_array_is_refused(tmp_path):
    ds, path = _prepared(tmp_path)
    arrays = {k: getattr(ds, k) for k in ("x_train", "y_train", "x_test", "y_test")}
    save_npz(path, **arrays, extra=np.zeros(3))
    side = json.loads(sidecar_path(path).read_text())
    from basis_nmce.io import sha256_file

    side["checksum"]["sha256"] = sha256_file(path)
    write_json(sidecar_path(path), side)
    with pytest.raises(DataError, match=r"extra: \['extra'\]"):
        load_prepared(path)


def test_save_prepared_refuses_invalid_data(tmp_path):
    ds = _ds(x_train=_bad(_ds().x_train, np.nan))
    with pytest.raises(DataError, match="NaN"):
        save_prepared(tmp_path / "bad.npz", ds)
    assert not (tmp_path / "bad.npz").exists()
