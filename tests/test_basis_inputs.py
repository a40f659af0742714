"""BASiS as a user meets it: input checked like scikit-learn's check_array, settings the data
cannot honour refused (with advice that works) or warned about, save/load keeping what a user
reads, and predict never clustering on the trivial eigenvector."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

from basis_nmce import BASiS
from basis_nmce.errors import ConfigError, DataError, SettingWarning
from basis_nmce.spectral.batch_limits import PIPELINE, plan_batch

X, Y = make_blobs(300, n_features=5, centers=3, cluster_std=0.5, random_state=0)
SMALL = {"n_neighbors": 10, "batch_size": 128, "n_iter": 8, "hidden": (16,), "device": "cpu"}


def small(**kw) -> BASiS:
    return BASiS(**{"n_components": 3, "random_state": 0, **SMALL, **kw})


@pytest.fixture(scope="module")
def fitted() -> BASiS:
    return small().fit(X)


def test_transform_accepts_lists_and_tensors_like_arrays(fitted):
    z = fitted.transform(X[:7])
    np.testing.assert_array_equal(fitted.transform(X[:7].tolist()), z)
    np.testing.assert_array_equal(fitted.transform(torch.as_tensor(X[:7])), z)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.where(np.arange(15).reshape(3, 5) == 7, np.nan, 1.0), r"NaN or infinite .*row 1"),
        (np.full((2, 5), np.inf), r"NaN or infinite .*row 0"),
        (np.full((2, 5), 1e39), r"float32 range overflow"),
        (X[:4, :3], r"X has 3 features per row .* fitted on 5"),
        (X[0], r"X must be 2-D .* got shape \(5,\): reshape\(1, -1\)"),
        (np.zeros((0, 5)), r"0 sample\(s\)"),
        ([["a"] * 5], r"could not convert string to float"),
        (np.ones((2, 5)) * 1j, r"Complex data not supported"),
    ],
    ids=["nan", "inf", "overflow", "features", "1d", "empty", "strings", "complex"],
)
def test_transform_refuses_bad_input_naming_it(fitted, bad, message):
    with pytest.raises(DataError, match=message):
        fitted.transform(bad)


def test_memory_mapped_input_is_checked_chunk_by_chunk(fitted, tmp_path):
    path = tmp_path / "x.npy"
    data = X[:10].astype(np.float32)
    np.save(path, data)
    np.testing.assert_allclose(fitted.transform(path), fitted.transform(data))
    data[6, 2] = np.nan
    np.save(path, data)
    with pytest.raises(DataError, match=r"row 6"):
        fitted.transform(np.load(path, mmap_mode="r"))
    with pytest.raises(DataError, match=r"nope\.npy: file not found"):
        fitted.transform(tmp_path / "nope.npy")


def test_fit_refuses_nan():
    x = X.copy()
    x[5, 0] = np.nan
    with pytest.raises(DataError, match=r"X contains NaN .*row 5"):
        small().fit(x)


def test_save_load_keeps_history_and_fitted_settings(fitted, tmp_path):
    fitted.save(tmp_path / "model.pt")
    est = BASiS.load(tmp_path / "model.pt")
    assert est.history_ == fitted.history_ and len(est.history_) == 8
    assert (est.n_iter_, est.rejected_batches_, est.resumed_from_) == (8, 0, 0)
    assert est.get_params() == {**fitted.get_params(), "device": "cpu"}
    np.testing.assert_array_equal(est.offset_, fitted.offset_)
    np.testing.assert_array_equal(est.predict(X), fitted.predict(X))


def test_load_refuses_another_class_and_a_foreign_sidecar(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    side = path.with_suffix(".json")
    meta = side.read_text()
    side.write_text(meta.replace('"class": "BASiS"', '"class": "NMCENet"'))
    with pytest.raises(DataError, match=r"model\.pt: not a BASiS model \(class 'NMCENet'"):
        BASiS.load(path)
    side.write_text('{"class": "BASiS"}')
    with pytest.raises(DataError, match=r"model\.json: lacks params, n_features_in"):
        BASiS.load(path)


def test_predict_does_not_cluster_on_the_trivial_eigenvector(fitted):
    # drop_first=False keeps the trivial eigenvector as column 0; k-means sees 1..K-1 only
    assert fitted.cluster_centers_.shape == (3, 2)
    z = fitted.transform(X)
    d = ((z[:, None, 1:] - fitted.cluster_centers_[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(fitted.predict(X), d.argmin(1))
    assert len(np.unique(fitted.predict(X))) == 3


def test_one_component_with_the_trivial_eigenvector_is_refused():
    with pytest.raises(ConfigError, match=r"trivial eigenvector alone.*drop_first true"):
        small(n_components=1).fit(X)
    est = small(n_components=1, drop_first=True).fit(X)  # the advice works
    assert len(np.unique(est.predict(X))) == 2


def test_batch_larger_than_the_data_warns_and_uses_all_points():
    with pytest.warns(SettingWarning, match=r"batch_size 1000 exceeds the 300 training points"):
        est = small(batch_size=1000, n_iter=2).fit(X)
    assert est.reference_.reference_index.size == 300


def _advised(message: str, key: str) -> int:
    return int(re.search(rf"raise {key} to >= (\d+)", message).group(1))


@pytest.mark.parametrize(
    "kw",
    [{"n_components": 10, "batch_size": 16}, {"n_components": 5, "batch_size": 6, "n_anchors": 6}],
    ids=["default-anchors", "n_anchors"],
)
def test_k_beyond_the_batch_is_refused_with_advice_that_works(kw):
    with pytest.raises(ConfigError, match=r"needs batches of at least") as e:
        small(n_neighbors=5, sigma_neighbor=3, **kw).fit(X)
    batch = _advised(str(e.value), "batch_size")
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingWarning)
        est = small(
            n_neighbors=5, sigma_neighbor=3, **{**kw, "batch_size": batch, "n_iter": 3}
        ).fit(X)
    assert est.n_iter_ == 3


def test_anchors_beyond_the_batch_are_refused():
    with pytest.raises(ConfigError, match=r"n_anchors 200: choose between K \+ 1 = 4 .* and 127"):
        small(n_anchors=200).fit(X)
    # the batch graph's k: n_neighbors itself with the paper's same_k (derived scales it down)
    with pytest.raises(ConfigError, match=r"n_neighbors 200: .*raise batch_size above 200"):
        small(n_neighbors=200, batch_graph="same_k").fit(X)


def test_pipeline_anchors_per_cluster_capped_with_a_warning_never_silently():
    with pytest.warns(SettingWarning, match=r"basis.anchors_per_cluster 1000 x 3 .* using 32"):
        m, l = plan_batch(64, 300, 2, 10, None, 1000, 3, PIPELINE)
    assert (m, l) == (64, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SettingWarning)
        assert plan_batch(64, 300, 2, 10, None, 10, 3, PIPELINE) == (64, 30)
    with pytest.raises(ConfigError, match=r"graph.n_components 64 .* raise basis.batch_size"):
        plan_batch(64, 1000, 64, 10, None, 25, 64, PIPELINE)
