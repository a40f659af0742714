"""Evaluation metrics of the BASiS paper (Sec. 5.1, Eqs. 16-20) and the NMCE paper (Sec. 4.2).

Embedding quality (BASiS)
    * :func:`grassmann_distance` -- squared Grassmann (projection) distance, Eq. 16.
    * :func:`orthogonality` -- d_perp, Eq. 17, in the sqrt(n) convention of ``SEEDS.md``:
      ``|| Y^T Y / n - I ||_F^2`` (Eq. 17 applied to ``Y / sqrt(n)``).
    * :func:`orthogonality_authors` -- the authors' code's d_perp (unit columns, not squared).
    * :func:`nmi`, :func:`cluster_accuracy`, :func:`ari` of k-means clusters, Eqs. 18-19.
    * :func:`linear_probe_accuracy` -- one linear layer trained with cross-entropy, Eq. 20.

Feature quality (NMCE Table 2, protocol of MCR^2, Yu et al. 2020)
    * :func:`svm_accuracy`, :func:`knn_accuracy` (cosine), :func:`nearest_subspace_accuracy`.

Conventions
-----------
* Embeddings may be numpy arrays or torch tensors (any device, ``requires_grad`` is fine); they
  are copied to float64 numpy. A 1-D embedding is one column. Empty or non-finite input, and
  mismatched lengths, raise :class:`~basis_nmce.errors.DataError` (a ``ValueError``).
* Labels are integers (integer-valued floats are accepted). **-1 means unlabelled**: such points
  are left out of every label-based score (clustering scores and the four supervised
  accuracies), on the train side (not used for fitting) and on the test side (not scored).
* **NMI is normalised by max{H(c), H(c_hat)}** (BASiS Eq. 18; sklearn
  ``average_method="max"``) everywhere in this package. sklearn's default (and, most likely, the
  MCR^2 / NMCE code) uses the arithmetic mean, which is >= the max-normalised value; pass
  ``average_method="arithmetic"`` to :func:`nmi` / :func:`clustering_scores` to compare with
  such numbers, and name the normalisation beside them.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy.linalg import qr
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from basis_nmce.errors import DataError

__all__ = [
    "UNLABELLED",
    "ari",
    "circular_correlation",
    "cluster_accuracy",
    "clustering_scores",
    "embedding_angle",
    "embedding_metrics",
    "grassmann_distance",
    "kmeans_labels",
    "knn_accuracy",
    "linear_probe_accuracy",
    "nearest_subspace_accuracy",
    "nmi",
    "orthogonality",
    "orthogonality_authors",
    "svm_accuracy",
]

UNLABELLED = -1
"""Label value of an unlabelled point; excluded from every label-based score."""

NmiAverage = Literal["max", "arithmetic", "geometric", "min"]
ProbeOptimizer = Literal["lbfgs", "adam"]

# Largest number of float64 entries of a (test chunk x train) or (test chunk x d) block.
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- input checks


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.bfloat16, torch.float16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _matrix(x: Any, name: str) -> np.ndarray:
    """``x`` as a finite, non-empty float64 ``(n, d)`` array (1-D input is one column)."""
    try:
        a = np.array(_to_numpy(x), dtype=np.float64)  # a copy: callers' arrays are never touched
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"{name}: expected a numeric array, got {type(x).__name__} ({exc})"
        ) from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataError(f"{name}: expected a 2-D (n, d) array, got shape {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise DataError(f"{name}: empty array of shape {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise DataError(f"{name}: {bad} non-finite entries (NaN or inf); clean the input first")
    return a


def _labels(y: Any, name: str) -> np.ndarray:
    """``y`` as a non-empty 1-D int64 array (integer-valued floats accepted)."""
    a = _to_numpy(y)
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise DataError(f"{name}: expected a 1-D label array, got shape {a.shape}")
    if a.size == 0:
        raise DataError(f"{name}: empty label array")
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)):
            raise DataError(f"{name}: labels contain NaN or inf")
        if not np.all(a == np.round(a)):
            raise DataError(f"{name}: labels must be integers, got non-integral floats")
        return a.astype(np.int64)
    raise DataError(f"{name}: labels must be integers, got dtype {a.dtype}")


def _same_length(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if len(a) != len(b):
        raise DataError(f"{name_a} has {len(a)} rows but {name_b} has {len(b)}; they must match")


def _supervised(
    z_train: Any, y_train: Any, z_test: Any, y_test: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validated float64 features and int64 labels with unlabelled (-1) points dropped."""
    ztr, zte = _matrix(z_train, "z_train"), _matrix(z_test, "z_test")
    ytr, yte = _labels(y_train, "y_train"), _labels(y_test, "y_test")
    _same_length(ztr, ytr, "z_train", "y_train")
    _same_length(zte, yte, "z_test", "y_test")
    if ztr.shape[1] != zte.shape[1]:
        raise DataError(
            f"z_train has {ztr.shape[1]} features but z_test has {zte.shape[1]}; they must match"
        )
    keep_tr, keep_te = ytr != UNLABELLED, yte != UNLABELLED
    if not keep_tr.any():
        raise DataError("y_train: every point is unlabelled (-1); nothing to fit")
    if not keep_te.any():
        raise DataError("y_test: every point is unlabelled (-1); nothing to score")
    return ztr[keep_tr], ytr[keep_tr], zte[keep_te], yte[keep_te]


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- BASiS Eqs. 16-17


def _orthonormal_basis(a: np.ndarray, name: str) -> np.ndarray:
    """Orthonormal basis of span(a) by (column-pivoted) QR; rank-deficient columns are dropped."""
    q, r, _ = qr(a, mode="economic", pivoting=True)
    diag = np.abs(np.diag(r))
    tol = max(a.shape) * np.finfo(np.float64).eps * (diag[0] if diag.size else 0.0)
    rank = int(np.count_nonzero(diag > tol)) if diag.size and diag[0] > 0 else 0
    if rank < a.shape[1]:
        warnings.warn(
            f"{name}: rank {rank} < {a.shape[1]} columns; the missing directions count as "
            "orthogonal (cos theta = 0) in the Grassmann distance",
            RuntimeWarning,
            stacklevel=3,
        )
    return q[:, :rank]


def grassmann_distance(y1: Any, y2: Any) -> float:
    """Squared Grassmann (projection) distance ``d_G = K - sum_i cos^2(theta_i)`` (BASiS Eq. 16).

    ``theta_i`` are the principal angles between span(y1) and span(y2), both ``(n, K)`` with the
    same ``n`` rows and ``K`` columns. Each basis is orthonormalised by QR first, so ``d_G``
    depends only on the column spaces (invariant to any invertible ``K x K`` map of either
    input). ``sum cos^2 = ||Q1^T Q2||_F^2``. Range ``[0, K]``: 0 for the same space, ``K`` for
    orthogonal spaces. A rank-deficient input (e.g. a dead output unit) keeps its rank-``r``
    span and the ``K - r`` missing directions count as orthogonal, with a ``RuntimeWarning``.
    """
    a, b = _matrix(y1, "y1"), _matrix(y2, "y2")
    _same_length(a, b, "y1", "y2")
    n, k = a.shape
    if b.shape[1] != k:
        raise DataError(f"y1 has K={k} columns but y2 has K={b.shape[1]}; d_G needs the same K")
    if n < k:
        raise DataError(f"y1, y2: {n} rows < K={k} columns; pass (n points, K) arrays, n >= K")
    q1, q2 = _orthonormal_basis(a, "y1"), _orthonormal_basis(b, "y2")
    cos2 = float(np.sum((q1.T @ q2) ** 2))
    return float(min(max(k - cos2, 0.0), float(k)))


def orthogonality(y: Any) -> float:
    """``d_perp = || Y^T Y / n - I ||_F^2`` for ``Y`` of shape ``(n, K)`` (BASiS Eq. 17).

    Eq. 17 is ``||Y^T Y - I||_F^2`` for unit-norm columns; with the sqrt(n) scaling used in this
    package (``SEEDS.md``: eigenvectors times sqrt(n), so ``Y^T Y / n = I``) the ``/ n`` makes it
    0 for exact eigenvectors, i.e. this is Eq. 17 applied to ``Y / sqrt(n)``.
    """
    a = _matrix(y, "y")
    n, k = a.shape
    g = a.T @ a / n - np.eye(k)
    return float(np.sum(g * g))


def orthogonality_authors(y: Any) -> float:
    """The BASiS authors' code's d_perp: ``|| Y^T Y - I ||_F`` with *unit-norm columns*, not
    squared (Eq. 17 says squared; SEEDS.md, "The authors' own code"). At most ``sqrt(K^2 - K)``
    (all columns parallel): Table 1's SpecNet2 9.486 = sqrt(90) at K = 10 is that maximum, so
    Table 1 was computed this way. Zero columns count as orthogonal to everything."""
    a = _matrix(y, "y")
    norms = np.linalg.norm(a, axis=0)
    u = a / np.where(norms > 0, norms, 1.0)
    g = u.T @ u - np.diag((norms > 0).astype(np.float64))
    return float(np.sqrt(np.sum(g * g)))


# --------------------------------------------------------------------------- BASiS Eqs. 18-19


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_length(t, p, "y_true", "y_pred")
    return t, p


def cluster_accuracy(y_true: Any, y_pred: Any) -> float:
    """Unsupervised clustering accuracy (BASiS Eq. 19), ``max_pi 1/n sum 1{c_i = pi(c_hat_i)}``.

    The best one-to-one map from clusters to classes is found with the Kuhn-Munkres (Hungarian)
    algorithm, ``scipy.optimize.linear_sum_assignment`` on the contingency table. The table
    may be rectangular: with more clusters than classes the surplus clusters match no class
    and their points count as errors (and vice versa). All points are scored, -1 included; use
    :func:`clustering_scores` to leave unlabelled points out.
    """
    t, p = _pair(y_true, y_pred)
    _, ti = np.unique(t, return_inverse=True)
    _, pi = np.unique(p, return_inverse=True)
    table = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(table, (ti, pi), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(t))


def nmi(y_true: Any, y_pred: Any, *, average_method: NmiAverage = "max") -> float:
    """Normalised mutual information ``I(c, c_hat) / max{H(c), H(c_hat)}`` (BASiS Eq. 18).

    sklearn's ``normalized_mutual_info_score`` with ``average_method="max"`` by default, as in
    Eq. 18; ``"arithmetic"`` gives sklearn's default (compare with MCR^2 / NMCE numbers).
    """
    if average_method not in ("max", "arithmetic", "geometric", "min"):
        raise DataError(
            f"average_method must be max|arithmetic|geometric|min, got {average_method!r}"
        )
    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p, average_method=average_method))


def ari(y_true: Any, y_pred: Any) -> float:
    """Adjusted Rand index (sklearn ``adjusted_rand_score``; NMCE Sec. 4.2.2)."""
    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


def clustering_scores(
    y_true: Any, y_pred: Any, *, average_method: NmiAverage = "max"
) -> dict[str, float | None]:
    """``{"nmi", "acc", "ari"}`` (BASiS Eqs. 18-19, NMCE) over the labelled points only.

    Points with ``y_true == -1`` are left out; when no point is labelled every value is None.
    """
    t, p = _pair(y_true, y_pred)
    keep = t != UNLABELLED
    if not keep.any():
        return {"nmi": None, "acc": None, "ari": None}
    t, p = t[keep], p[keep]
    return {
        "nmi": nmi(t, p, average_method=average_method),
        "acc": cluster_accuracy(t, p),
        "ari": ari(t, p),
    }


def kmeans_labels(y: Any, n_clusters: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means (sklearn ``KMeans``, k-means++, ``n_init`` restarts) cluster index per row, int64.

    BASiS Sec. 5.1 clusters the spectral embedding with K-Means, K = number of clusters;
    deterministic for a ``seed``.
    """
    a = _matrix(y, "y")
    k = _positive_int(n_clusters, "n_clusters")
    if k > len(a):
        raise DataError(f"n_clusters={k} exceeds the number of points ({len(a)})")
    km = KMeans(n_clusters=k, n_init=_positive_int(n_init, "n_init"), random_state=int(seed))
    return km.fit_predict(a).astype(np.int64)


# --------------------------------------------------------------------------- BASiS Eq. 20


def _whitening(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, per-feature scale and projection that standardise then whiten ``x`` (train rows)."""
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale <= 1e-12 * max(1.0, float(np.abs(mean).max()))] = 1.0
    xs = (x - mean) / scale
    w, v = np.linalg.eigh(xs.T @ xs / len(xs))
    w_max = float(w.max())
    keep = w > 1e-10 * w_max if w_max > 0 else np.zeros(len(w), dtype=bool)
    return mean, scale, v[:, keep] / np.sqrt(w[keep])


def _fit_probe(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    epochs: int,
    lr: float,
    seed: int,
    optimizer: str,
) -> torch.nn.Linear:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(x.shape[1], n_classes, dtype=torch.float64)
    params = list(layer.parameters())
    if optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr)
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(layer(x), y).backward()
            opt.step()
        return layer
    opt = torch.optim.LBFGS(
        params,
        lr=lr,
        max_iter=epochs,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(layer(x), y)
        loss.backward()
        return loss

    opt.step(closure)
    return layer


def linear_probe_accuracy(
    z_train: Any,
    y_train: Any,
    z_test: Any,
    y_test: Any,
    *,
    epochs: int = 300,
    lr: float = 0.05,
    seed: int = 0,
    optimizer: ProbeOptimizer = "lbfgs",
) -> float:
    """Test accuracy (BASiS Eq. 20) of one linear layer trained with cross-entropy on the train split.

    Features are standardised with the train mean / std and then whitened with the train
    covariance (directions with no train variance dropped). A linear layer's optimum is
    unchanged by an invertible affine map of its input, so this changes only the conditioning:
    without it, correlated outputs (large d_perp, e.g. SpecNet) left Adam at 300 epochs
    15-20 points below the optimum. Full-batch ``torch.nn.Linear`` in float64, no weight
    decay. ``optimizer="lbfgs"`` (default): ``epochs`` LBFGS iterations with a strong-Wolfe
    line search and ``lr`` as its step scale. It reaches sklearn's unregularised optimum
    whatever ``lr`` (0.05-1) or ``seed``, in about 0.2 s for 10k x 10. ``"adam"``: ``epochs``
    Adam steps at ``lr``. The seed sets the initialisation (global RNG state untouched).
    Unlabelled (-1) points are dropped from both splits. A test class unseen in training is
    always wrong.
    """
    epochs = _positive_int(epochs, "epochs")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise DataError(f"lr must be a positive finite number, got {lr!r}")
    if optimizer not in ("lbfgs", "adam"):
        raise DataError(f"optimizer must be 'lbfgs' or 'adam', got {optimizer!r}")
    ztr, ytr, zte, yte = _supervised(z_train, y_train, z_test, y_test)
    classes, ytr_idx = np.unique(ytr, return_inverse=True)
    mean, scale, proj = _whitening(ztr)
    if len(classes) == 1 or proj.shape[1] == 0:
        # Nothing to learn: one class, or constant train features -> the majority class.
        pred = np.full(len(yte), classes[np.argmax(np.bincount(ytr_idx))])
        return float(np.mean(pred == yte))
    xtr = torch.from_numpy(((ztr - mean) / scale) @ proj)
    xte = torch.from_numpy(((zte - mean) / scale) @ proj)
    target = torch.from_numpy(ytr_idx.astype(np.int64))
    layer = _fit_probe(xtr, target, len(classes), epochs, float(lr), int(seed), optimizer)
    if not all(bool(torch.isfinite(p).all()) for p in layer.parameters()):
        raise RuntimeError("linear probe diverged (non-finite weights); lower lr")
    with torch.no_grad():
        pred = classes[layer(xte).argmax(dim=1).numpy()]
    return float(np.mean(pred == yte))


# --------------------------------------------------------------------------- NMCE Table 2


def knn_accuracy(z_train: Any, y_train: Any, z_test: Any, y_test: Any, *, k: int = 11) -> float:
    """Accuracy of a k-nearest-neighbour vote under cosine similarity (NMCE Table 2, MCR^2).

    Rows are put on the unit sphere (zero rows stay zero, similarity 0 to everything); each test
    point takes the majority label of its ``k`` most similar train points (``k`` capped at the
    train size); a tie goes to the smallest label (``torch.mode``, as in the MCR^2 code).
    """
    ztr, ytr, zte, yte = _supervised(z_train, y_train, z_test, y_test)
    k = min(_positive_int(k, "k"), len(ztr))
    classes, ytr_idx = np.unique(ytr, return_inverse=True)

    def unit(a: np.ndarray) -> np.ndarray:
        norm = np.linalg.norm(a, axis=1, keepdims=True)
        return a / np.where(norm > 0, norm, 1.0)

    utr, ute = unit(ztr), unit(zte)
    pred = np.empty(len(ute), dtype=np.int64)
    step = max(1, _BLOCK_ELEMENTS // len(utr))
    for start in range(0, len(ute), step):
        sim = ute[start : start + step] @ utr.T
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(sim), len(classes)), dtype=np.int64)
        np.add.at(votes, (np.arange(len(sim))[:, None], ytr_idx[nearest]), 1)
        pred[start : start + step] = votes.argmax(axis=1)
    return float(np.mean(classes[pred] == yte))


def svm_accuracy(
    z_train: Any,
    y_train: Any,
    z_test: Any,
    y_test: Any,
    *,
    seed: int = 0,
    standardize: bool = True,
) -> float:
    """Accuracy of a linear SVM (sklearn ``LinearSVC``, C = 1, one-vs-rest; NMCE Table 2).

    ``standardize``: features standardised with the train mean / std (sklearn
    ``StandardScaler``) first; False fits the SVM on the features as they are, as the MCR^2 /
    NMCE evaluation code does with its unit-sphere features.
    """
    ztr, ytr, zte, yte = _supervised(z_train, y_train, z_test, y_test)
    classes = np.unique(ytr)
    if len(classes) == 1:
        return float(np.mean(yte == classes[0]))
    if standardize:
        scaler = StandardScaler().fit(ztr)
        ztr, zte = scaler.transform(ztr), scaler.transform(zte)
    svm = LinearSVC(C=1.0, random_state=int(seed), max_iter=10_000)
    svm.fit(ztr, ytr)
    return float(np.mean(svm.predict(zte) == yte))


def nearest_subspace_accuracy(
    z_train: Any, y_train: Any, z_test: Any, y_test: Any, *, n_components: int = 30
) -> float:
    """Accuracy of the nearest-subspace classifier (NMCE Table 2 "NearSub", MCR^2 protocol).

    Per class ``j``: ``U_j`` = the top ``r_j`` right singular vectors of the class's train
    features, uncentred (as ``TruncatedSVD`` in the MCR^2 code), ``r_j = min(n_components,
    rank)``. A test point goes to the class of smallest residual ``||(I - U_j U_j^T) z||``.
    When a class's subspace fills the whole feature space its residuals are all 0 and the
    classifier degenerates; that gives a ``RuntimeWarning`` (lower ``n_components``).
    """
    ztr, ytr, zte, yte = _supervised(z_train, y_train, z_test, y_test)
    n_components = _positive_int(n_components, "n_components")
    classes = np.unique(ytr)
    d = ztr.shape[1]
    bases: list[np.ndarray] = []
    full = []
    for c in classes:
        zc = ztr[ytr == c]
        _, s, vt = np.linalg.svd(zc, full_matrices=False)
        tol = max(zc.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0)
        rank = int(np.count_nonzero(s > tol))
        r = min(n_components, rank)
        bases.append(vt[:r].T)
        if r >= d:
            full.append(int(c))
    if full:
        warnings.warn(
            f"nearest subspace: the subspaces of classes {full} span all {d} feature dimensions "
            f"(n_components={n_components}); their residuals are 0 and the classifier degenerates",
            RuntimeWarning,
            stacklevel=2,
        )
    residual = np.empty((len(zte), len(classes)))
    step = max(1, _BLOCK_ELEMENTS // max(d, 1))
    for start in range(0, len(zte), step):
        z = zte[start : start + step]
        for j, u in enumerate(bases):
            residual[start : start + step, j] = np.linalg.norm(z - (z @ u) @ u.T, axis=1)
    return float(np.mean(classes[residual.argmin(axis=1)] == yte))


# --------------------------------------------------------------------------- one embedding


def _is_labelled(y: np.ndarray | None) -> bool:
    return y is not None and bool(np.any(y != UNLABELLED))


def embedding_metrics(
    train: Any,
    test: Any,
    y_train: Any,
    y_test: Any,
    *,
    reference_test: Any | None = None,
    n_clusters: int,
    seed: int = 0,
    kmeans_n_init: int = 10,
    probe_epochs: int = 300,
    probe_lr: float = 0.05,
) -> dict[str, float | None]:
    """The BASiS Table 1 metrics of one embedding, on the held-out split (Sec. 5.1).

    Keys: ``grassmann`` (Eq. 16, test vs ``reference_test``; None without a reference),
    ``orthogonality`` (Eq. 17, test; ``orthogonality_authors`` the authors' code's), ``nmi`` / ``acc`` / ``ari`` (Eqs. 18-19, k-means with
    ``n_clusters`` on the test embedding, unlabelled points excluded) and ``linear_acc``
    (Eq. 20, probe fitted on train, scored on test). Label metrics are None when the labels
    are None or all -1 (``linear_acc`` needs labels on both splits).
    """
    ztr, zte = _matrix(train, "train"), _matrix(test, "test")
    if ztr.shape[1] != zte.shape[1]:
        raise DataError(f"train has {ztr.shape[1]} columns but test has {zte.shape[1]}")
    ytr = None if y_train is None else _labels(y_train, "y_train")
    yte = None if y_test is None else _labels(y_test, "y_test")
    if ytr is not None:
        _same_length(ztr, ytr, "train", "y_train")
    if yte is not None:
        _same_length(zte, yte, "test", "y_test")
    out: dict[str, float | None] = {
        "grassmann": None if reference_test is None else grassmann_distance(zte, reference_test),
        "orthogonality": orthogonality(zte),
        "orthogonality_authors": orthogonality_authors(zte),
        "nmi": None,
        "acc": None,
        "ari": None,
        "linear_acc": None,
    }
    if _is_labelled(yte):
        clusters = kmeans_labels(zte, n_clusters, seed=seed, n_init=kmeans_n_init)
        out.update(clustering_scores(yte, clusters))
        if _is_labelled(ytr):
            out["linear_acc"] = linear_probe_accuracy(
                ztr, ytr, zte, yte, epochs=probe_epochs, lr=probe_lr, seed=seed
            )
    return out


def embedding_angle(y: Any) -> np.ndarray:
    """The angle (radians) of each point of a 2-D embedding around its centre, after whitening
    (centre, then the inverse square root of the covariance): an ellipse traced at constant
    speed becomes a circle, so the angle is read without the axes' scales or shear."""
    a = _matrix(y, "y")
    if a.shape[1] != 2:
        raise DataError(f"y: expected a 2-D embedding (n, 2), got shape {a.shape}")
    c = a - a.mean(axis=0)
    w, v = np.linalg.eigh(np.cov(c.T))
    if w.min() <= 1e-12 * max(w.max(), 1e-300):
        raise DataError("y: the embedding is degenerate (all points on a line); no angle to read")
    z = c @ v / np.sqrt(w)
    return np.arctan2(z[:, 1], z[:, 0])


def circular_correlation(alpha: Any, beta: Any) -> float:
    """Fisher and Lee's (1983) circular correlation rho_T of two angle samples:

        sum_{i<j} sin(a_i - a_j) sin(b_i - b_j) / sqrt(sum sin^2(a_i - a_j) sum sin^2(b_i - b_j))

    It is invariant to rotating either sample, defined for uniformly spread angles (where the
    mean-based coefficient is not), +1 for ``b = a + c`` and -1 for a reflection ``b = -a + c``.
    Computed in O(n): with ``s, c = sin, cos`` of one sample and ``t, d`` of the other,
    ``sin(a_i - a_j) = s_i c_j - c_i s_j`` and the pair sum expands to
    ``(sum s t)(sum c d) - (sum s d)(sum c t)`` (no n x n matrix)."""
    a = np.asarray(alpha, dtype=np.float64).ravel()
    b = np.asarray(beta, dtype=np.float64).ravel()
    if a.shape != b.shape or len(a) < 2:
        raise DataError(
            f"alpha and beta: two samples of the same size >= 2, got {a.shape}, {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise DataError("alpha and beta must be finite angles (radians)")

    def pair_sum(u: np.ndarray, v: np.ndarray) -> float:
        s, c, t, d = np.sin(u), np.cos(u), np.sin(v), np.cos(v)
        return float((s * t).sum() * (c * d).sum() - (s * d).sum() * (c * t).sum())

    num = pair_sum(a, b)
    den = np.sqrt(pair_sum(a, a) * pair_sum(b, b))
    if den <= 0:
        raise DataError(
            "alpha and beta: a sample with all angles equal (mod pi) has no correlation"
        )
    return float(num / den)
