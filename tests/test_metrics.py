"""Evaluation metrics: invariances (hypothesis) and independent reference routes."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import subspace_angles
from sklearn.linear_model import LogisticRegression

from basis_nmce.errors import DataError
from basis_nmce.evaluation.metrics import (
    ari,
    cluster_accuracy,
    clustering_scores,
    embedding_metrics,
    grassmann_distance,
    kmeans_labels,
    knn_accuracy,
    linear_probe_accuracy,
    nearest_subspace_accuracy,
    nmi,
    orthogonality,
    orthogonality_authors,
    svm_accuracy,
)

FAST = settings(max_examples=40, deadline=None)
seeds = st.integers(0, 2**32 - 1)

# --------------------------------------------------------------------------- helpers


def orthogonal(k: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(k, k)))
    return q * np.sign(np.diag(r))


def well_conditioned(k: int, rng: np.random.Generator) -> np.ndarray:
    """A random invertible K x K map with singular values in [0.1, 10]."""
    s = np.exp(rng.uniform(np.log(0.1), np.log(10.0), size=k))
    return orthogonal(k, rng) @ np.diag(s) @ orthogonal(k, rng)


def relabel(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``y`` with its label values mapped by a random bijection onto arbitrary integers."""
    values = np.unique(y)
    targets = rng.permutation(np.arange(100, 100 + 3 * len(values)))[: len(values)]
    return targets[np.searchsorted(values, y)]


def brute_force_acc(t: np.ndarray, p: np.ndarray) -> float:
    """Eq. 19 by enumeration: the best injective map of clusters onto classes (or onto nothing)."""
    classes, ti = np.unique(t, return_inverse=True)
    clusters, pi = np.unique(p, return_inverse=True)
    slots = max(len(classes), len(clusters))  # slots >= len(classes) stand for "no class"
    best = 0
    for perm in itertools.permutations(range(slots), len(clusters)):
        best = max(best, int(np.sum(np.asarray(perm)[pi] == ti)))
    return best / len(t)


def reference_nmi_max(t: np.ndarray, p: np.ndarray) -> float:
    """I(c, c_hat) / max{H(c), H(c_hat)} from the contingency table (BASiS Eq. 18)."""
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    joint = np.zeros((ti.max() + 1, pi.max() + 1))
    np.add.at(joint, (ti, pi), 1.0)
    joint /= joint.sum()
    pt, pp = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pt, pp)[nz])))
    h = max(-float(np.sum(pt * np.log(pt))), -float(np.sum(pp * np.log(pp))))
    return 1.0 if h == 0 else mi / h


def blobs(n: int, d: int, classes: int, rng: np.random.Generator, spread: float = 0.3):
    """Classes around well-separated centres at radius 10 in distinct directions."""
    centres = 10.0 * orthogonal(d, rng)[:classes]
    y = rng.integers(0, classes, size=n)
    return centres[y] + spread * rng.normal(size=(n, d)), y


labels = st.lists(st.integers(0, 5), min_size=1, max_size=60).map(np.array)


# --------------------------------------------------------------------------- ACC / NMI / ARI


@FAST
@given(t=labels, p_seed=seeds)
def test_acc_invariant_to_relabelling_predictions(t, p_seed):
    rng = np.random.default_rng(p_seed)
    p = rng.integers(0, 7, size=len(t))
    assert cluster_accuracy(t, relabel(p, rng)) == pytest.approx(cluster_accuracy(t, p))
    assert cluster_accuracy(t, relabel(t, rng)) == 1.0


@FAST
@given(
    t=st.lists(st.integers(0, 3), min_size=1, max_size=25).map(np.array),
    p=st.lists(st.integers(0, 4), min_size=25, max_size=25).map(np.array),
)
def test_acc_matches_brute_force_over_permutations(t, p):
    p = p[: len(t)]  # #clusters and #classes differ freely (up to 5 and 4)
    assert cluster_accuracy(t, p) == pytest.approx(brute_force_acc(t, p), abs=1e-12)


@FAST
@given(t=labels, p_seed=seeds)
def test_nmi_ari_invariant_to_relabelling(t, p_seed):
    rng = np.random.default_rng(p_seed)
    p = rng.integers(0, 7, size=len(t))
    q = relabel(p, rng)
    assert nmi(t, q) == pytest.approx(nmi(t, p), abs=1e-12)
    assert ari(t, q) == pytest.approx(ari(t, p), abs=1e-12)
    assert nmi(relabel(t, rng), p) == pytest.approx(nmi(t, p), abs=1e-12)


@FAST
@given(t=labels, p_seed=seeds)
def test_nmi_is_max_normalised_eq18(t, p_seed):
    p = np.random.default_rng(p_seed).integers(0, 7, size=len(t))
    assert nmi(t, p) == pytest.approx(reference_nmi_max(t, p), abs=1e-10)
    assert nmi(t, p) <= nmi(t, p, average_method="arithmetic") + 1e-12


def test_clustering_scores_perfect_and_keys():
    t = np.repeat(np.arange(4), 5)
    scores = clustering_scores(t, (t + 1) % 4)
    assert set(scores) == {"nmi", "acc", "ari"}
    assert scores["acc"] == 1.0
    assert scores["nmi"] == pytest.approx(1.0)
    assert scores["ari"] == pytest.approx(1.0)


@FAST
@given(t=labels, seed=seeds)
def test_clustering_scores_ignore_unlabelled(t, seed):
    rng = np.random.default_rng(seed)
    p = rng.integers(0, 5, size=len(t))
    hidden = rng.random(len(t)) < 0.4
    t_missing = np.where(hidden, -1, t)
    p_noisy = np.where(hidden, rng.integers(0, 50, size=len(t)), p)  # garbage where unlabelled
    got = clustering_scores(t_missing, p_noisy)
    if hidden.all():
        assert got == {"nmi": None, "acc": None, "ari": None}
    else:
        want = clustering_scores(t[~hidden], p[~hidden])
        assert got == pytest.approx(want)


def test_cluster_accuracy_surplus_clusters_count_as_errors():
    t = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0, 0, 2, 2, 1, 1, 3, 3])  # 4 clusters for 2 classes
    assert cluster_accuracy(t, p) == 0.5
    assert cluster_accuracy(p, t) == 0.5


# --------------------------------------------------------------------------- Grassmann


@st.composite
def bases(draw):
    k = draw(st.integers(1, 5))
    n = draw(st.integers(k, 30))
    rng = np.random.default_rng(draw(seeds))
    return rng, rng.normal(size=(n, k)), rng.normal(size=(n, k))


@FAST
@given(bases())
def test_grassmann_invariances_and_range(b):
    rng, y1, y2 = b
    k = y1.shape[1]
    d = grassmann_distance(y1, y2)
    assert 0.0 <= d <= k
    assert grassmann_distance(y2, y1) == pytest.approx(d, abs=1e-9)
    assert grassmann_distance(y1 @ orthogonal(k, rng), y2) == pytest.approx(d, abs=1e-8)
    assert grassmann_distance(y1, y2 @ well_conditioned(k, rng)) == pytest.approx(d, abs=1e-8)
    assert grassmann_distance(y1 @ well_conditioned(k, rng), y2) == pytest.approx(d, abs=1e-8)
    assert grassmann_distance(y1, y1 @ well_conditioned(k, rng)) == pytest.approx(0.0, abs=1e-8)
    # independent route: principal angles from scipy
    want = k - float(np.sum(np.cos(subspace_angles(y1, y2)) ** 2))
    assert d == pytest.approx(want, abs=1e-8)


@FAST
@given(k=st.integers(1, 5), extra=st.integers(0, 10), seed=seeds)
def test_grassmann_is_k_for_orthogonal_spaces(k, extra, seed):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(2 * k + extra, 2 * k)))
    y1 = q[:, :k] @ well_conditioned(k, rng)
    y2 = 3.0 * q[:, k:]
    assert grassmann_distance(y1, y2) == pytest.approx(k, abs=1e-8)


def test_grassmann_known_angle():
    theta = 0.3
    y1 = np.array([[1.0], [0.0], [0.0]])
    y2 = np.array([[math.cos(theta)], [math.sin(theta)], [0.0]])
    assert grassmann_distance(y1, y2) == pytest.approx(math.sin(theta) ** 2, abs=1e-12)


def test_grassmann_accepts_torch_and_rejects_bad_input():
    rng = np.random.default_rng(0)
    y1, y2 = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    t1 = torch.tensor(y1, dtype=torch.float32, requires_grad=True)
    assert grassmann_distance(t1, y2) == pytest.approx(
        grassmann_distance(y1.astype(np.float32), y2), abs=1e-12
    )
    with pytest.raises(ValueError, match="same K"):
        grassmann_distance(y1, y2[:, :2])
    with pytest.raises(ValueError, match="rows"):
        grassmann_distance(y1, y2[:10])
    y_nan = y1.copy()
    y_nan[3, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        grassmann_distance(y_nan, y2)
    with pytest.raises(ValueError, match="empty"):
        grassmann_distance(np.zeros((0, 3)), np.zeros((0, 3)))


def test_grassmann_rank_deficient_counts_missing_direction_as_orthogonal():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(40, 3))
    dead = y.copy()
    dead[:, 2] = 0.0  # a dead output unit
    with pytest.warns(RuntimeWarning, match="rank 2"):
        d = grassmann_distance(dead, y)
    assert d == pytest.approx(1.0, abs=1e-8)


# --------------------------------------------------------------------------- orthogonality


@FAST
@given(k=st.integers(1, 6), extra=st.integers(0, 40), seed=seeds)
def test_orthogonality_zero_for_scaled_orthonormal_columns(k, extra, seed):
    rng = np.random.default_rng(seed)
    n = k + extra
    q, _ = np.linalg.qr(rng.normal(size=(n, k)))
    assert orthogonality(math.sqrt(n) * q) == pytest.approx(0.0, abs=1e-10)
    # scaled by c: Y^T Y / n = c^2 I, so d_perp = K (c^2 - 1)^2 exactly
    c = 1.5
    assert orthogonality(c * math.sqrt(n) * q) == pytest.approx(k * (c * c - 1) ** 2, rel=1e-9)
    if k > 1:  # shear two columns: no longer orthogonal
        shear = np.eye(k)
        shear[0, 1] = 0.5
        assert orthogonality(math.sqrt(n) * q @ shear) > 0.01


@FAST
@given(k=st.integers(1, 6), extra=st.integers(0, 40), seed=seeds, scales=st.integers(0, 2**31))
def test_authors_orthogonality_ignores_column_scales_and_is_not_squared(k, extra, seed, scales):
    """Independent route: the cosines of the angles between columns."""
    rng = np.random.default_rng(seed)
    n = k + 1 + extra
    y = rng.normal(size=(n, k))
    scaled = y * np.random.default_rng(scales).uniform(0.1, 10.0, size=k)
    cos = np.array(
        [[y[:, i] @ y[:, j] / np.linalg.norm(y[:, i]) / np.linalg.norm(y[:, j]) for j in range(k)]
         for i in range(k)]
    )  # fmt: skip
    expected = math.sqrt(float(np.sum((cos - np.eye(k)) ** 2)))
    assert orthogonality_authors(y) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert orthogonality_authors(scaled) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    q, _ = np.linalg.qr(y)
    assert orthogonality_authors(5.0 * q) == pytest.approx(0.0, abs=1e-10)


def test_authors_orthogonality_maximum_is_table1_specnet2():
    """All ten columns parallel: sqrt(K^2 - K) = sqrt(90) = 9.487, Table 1's SpecNet2 figure."""
    y = np.outer(np.arange(1.0, 51.0), np.arange(1.0, 11.0))
    assert orthogonality_authors(y) == pytest.approx(math.sqrt(90), rel=1e-12)


# --------------------------------------------------------------------------- classifiers


def test_nearest_subspace_perfect_on_random_subspaces():
    rng = np.random.default_rng(0)
    d, dim, classes, n = 30, 3, 5, 600
    frames = [np.linalg.qr(rng.normal(size=(d, dim)))[0] for _ in range(classes)]
    y = rng.integers(0, classes, size=n)
    z = np.stack([frames[c] @ rng.normal(size=dim) for c in y])
    half = n // 2
    for n_components in (dim, 30):  # 30 is capped at each class's rank (3)
        acc = nearest_subspace_accuracy(
            z[:half], y[:half], z[half:], y[half:], n_components=n_components
        )
        assert acc == 1.0


def test_nearest_subspace_warns_when_subspace_fills_the_space():
    rng = np.random.default_rng(1)
    z, y = blobs(200, 4, 2, rng)
    with pytest.warns(RuntimeWarning, match="degenerates"):
        nearest_subspace_accuracy(z[:100], y[:100], z[100:], y[100:], n_components=30)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_and_svm_perfect_on_separable_blobs(seed):
    rng = np.random.default_rng(seed)
    z, y = blobs(600, 8, 4, rng)
    assert knn_accuracy(z[:300], y[:300], z[300:], y[300:], k=11) == 1.0
    assert svm_accuracy(z[:300], y[:300], z[300:], y[300:], seed=seed) == 1.0


def test_knn_is_cosine_and_breaks_ties_to_smallest_label():
    ztr = np.array([[1.0, 0.0], [100.0, 1.0], [0.0, 1.0], [0.0, 50.0]])
    ytr = np.array([0, 0, 1, 1])
    zte = np.array([[0.01, 0.0], [0.0, 3.0], [1.0, 1.0]])
    # scale does not matter; [1, 1] is equally close to both classes: a tie -> 0
    assert knn_accuracy(ztr, ytr, zte, np.array([0, 1, 0]), k=1) == 1.0
    assert knn_accuracy(ztr, ytr, zte, np.array([0, 1, 0]), k=4) == pytest.approx(2 / 3)


def test_linear_probe_separable_random_and_deterministic():
    rng = np.random.default_rng(0)
    z, y = blobs(1000, 10, 5, rng, spread=2.0)
    acc = linear_probe_accuracy(z[:500], y[:500], z[500:], y[500:], seed=3)
    assert acc >= 0.99
    state = torch.random.get_rng_state()
    again = linear_probe_accuracy(z[:500], y[:500], z[500:], y[500:], seed=3)
    assert again == acc
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched

    noise = rng.normal(size=(4000, 10))
    labels5 = rng.integers(0, 5, size=4000)
    chance = linear_probe_accuracy(noise[:2000], labels5[:2000], noise[2000:], labels5[2000:])
    assert abs(chance - 0.2) < 0.05


def test_linear_probe_matches_logistic_regression_and_is_affine_invariant():
    """Independent route (sklearn, near-unregularised); ill-conditioned inputs give the same."""
    rng = np.random.default_rng(5)
    n = 3000
    y = rng.integers(0, 4, size=n)
    z = 0.6 * rng.normal(size=(n, 6))
    z[np.arange(n), y] += 1.0
    ztr, ytr, zte, yte = z[:2000], y[:2000], z[2000:], y[2000:]
    ref = LogisticRegression(C=1e6, max_iter=5000).fit(ztr, ytr)
    want = float(np.mean(ref.predict(zte) == yte))
    got = linear_probe_accuracy(ztr, ytr, zte, yte)
    assert got == pytest.approx(want, abs=0.005)
    q = orthogonal(6, rng)
    a = q @ np.diag(np.logspace(0, -5, 6)) @ q.T  # condition number 1e5, as correlated outputs
    bent = linear_probe_accuracy(ztr @ a + 7.0, ytr, zte @ a + 7.0, yte)
    assert bent == pytest.approx(got, abs=0.005)
    adam = linear_probe_accuracy(ztr @ a, ytr, zte @ a, yte, optimizer="adam", epochs=300)
    assert adam == pytest.approx(got, abs=0.01)


def test_supervised_scores_drop_unlabelled_points():
    rng = np.random.default_rng(2)
    z, y = blobs(400, 6, 3, rng)
    y_missing = y.copy()
    y_missing[::3] = -1
    wrong = np.where(y_missing == -1, (y + 1) % 3, y)  # would be errors if scored
    for f in (knn_accuracy, svm_accuracy, linear_probe_accuracy):
        assert (
            f(z[:200], y_missing[:200], z[200:], np.where(y_missing == -1, -1, wrong)[200:]) == 1.0
        )


def test_single_class_and_constant_features():
    z = np.ones((10, 3))
    y = np.zeros(10, dtype=int)
    assert linear_probe_accuracy(z, y, z, y) == 1.0
    assert svm_accuracy(z, y, z, y) == 1.0
    two = np.array([0, 1] * 5)
    assert linear_probe_accuracy(z, two, z, two) == 0.5  # constant features: majority class


@pytest.mark.parametrize(
    "f", [knn_accuracy, svm_accuracy, linear_probe_accuracy, nearest_subspace_accuracy]
)
def test_classifier_input_errors(f):
    z = np.random.default_rng(0).normal(size=(20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match="rows"):
        f(z, y[:-1], z, y)
    with pytest.raises(ValueError, match="features"):
        f(z, y, z[:, :2], y)
    with pytest.raises(ValueError, match="non-finite"):
        f(np.where(np.eye(20, 3) > 0, np.inf, z), y, z, y)
    with pytest.raises(ValueError, match="unlabelled"):
        f(z, np.full(20, -1), z, y)


# --------------------------------------------------------------------------- k-means / all


def test_kmeans_labels_recover_blobs_deterministically():
    rng = np.random.default_rng(4)
    z, y = blobs(300, 5, 4, rng)
    a = kmeans_labels(torch.tensor(z), 4, seed=7)
    assert a.dtype == np.int64
    assert cluster_accuracy(y, a) == 1.0
    assert np.array_equal(a, kmeans_labels(z, 4, seed=7))
    with pytest.raises(ValueError, match="n_clusters"):
        kmeans_labels(z[:3], 4)


def test_embedding_metrics_keys_and_unlabelled():
    rng = np.random.default_rng(6)
    z, y = blobs(400, 4, 4, rng)
    tr, te = z[:200], z[200:]
    out = embedding_metrics(
        tr, te, y[:200], y[200:], reference_test=te @ orthogonal(4, rng), n_clusters=4
    )
    assert set(out) == {
        "grassmann",
        "orthogonality",
        "orthogonality_authors",
        "nmi",
        "acc",
        "ari",
        "linear_acc",
    }
    assert out["grassmann"] == pytest.approx(0.0, abs=1e-8)
    assert out["orthogonality"] == pytest.approx(orthogonality(te))
    assert out["acc"] == 1.0 and out["linear_acc"] == 1.0
    none = embedding_metrics(tr, te, np.full(200, -1), np.full(200, -1), n_clusters=4)
    assert none["grassmann"] is None
    assert [none[k] for k in ("nmi", "acc", "ari", "linear_acc")] == [None] * 4
    test_only = embedding_metrics(tr, te, None, y[200:], n_clusters=4)
    assert test_only["acc"] == 1.0 and test_only["linear_acc"] is None
    with pytest.raises(ValueError, match="rows"):
        embedding_metrics(tr, te, y[:200], y[:100], n_clusters=4)


def test_no_warnings_on_clean_input():
    rng = np.random.default_rng(8)
    z, y = blobs(300, 6, 3, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grassmann_distance(z[:100], z[100:200])
        svm_accuracy(z[:150], y[:150], z[150:], y[150:])
        nearest_subspace_accuracy(z[:150], y[:150], z[150:], y[150:], n_components=2)
