"""File-based sources on tiny files the tests write: IDX, the torchvision sets through a mirror
(checksum tables patched so the tiny files verify, and mismatches that must fail), COIL zips.
Nothing here touches the network: downloads are replaced by functions that write files."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from basis_nmce.data import coil, fetch, load_prepared, load_raw, prepare, save_prepared
from basis_nmce.data import torchvision_sources as tvs
from basis_nmce.data.idx import idx_bytes, parse_idx, read_idx, write_idx
from basis_nmce.data.manifest import md5_bytes, md5_file
from basis_nmce.errors import ChecksumError, DataError

FMNIST_MIRROR = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------ IDX


@settings(max_examples=50, deadline=None)
@given(
    arr=hnp.arrays(
        dtype=st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    compress=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory, arr, compress):
    path = tmp_path_factory.mktemp("idx") / "a.idx"
    write_idx(path, arr, compress=compress)
    back = read_idx(path)
    assert back.shape == arr.shape and back.dtype == arr.dtype.newbyteorder("=")
    np.testing.assert_array_equal(back, arr)


def test_idx_header_layout():
    data = idx_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert data[:4] == bytes([0, 0, 0x08, 2]) and data[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert data[12:] == bytes(range(6))


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"\x01\x02\x08\x01" + b"\0" * 8, r"not an IDX file \(first bytes 01020801"),
        (b"", r"not an IDX file \(first bytes none"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", r"unknown IDX type code 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", r"truncated IDX header"),
        (b"\x00\x00\x08\x00", r"0 dimensions"),
    ],
)
def test_idx_corrupt_headers(data, pattern):
    with pytest.raises(DataError, match=pattern):
        parse_idx(data, "f.idx")


def test_idx_truncated_and_overlong_data(tmp_path):
    full = idx_bytes(np.zeros((4, 3, 3), np.uint8))
    with pytest.raises(
        DataError, match=r"t\.idx: IDX header declares shape \(4, 3, 3\).*truncated"
    ):
        parse_idx(full[:-5], "t.idx")
    with pytest.raises(DataError, match="longer than declared"):
        parse_idx(full + b"x", "t.idx")
    gz = tmp_path / "t.gz"
    gz.write_bytes(gzip.compress(full)[:-10])
    with pytest.raises(DataError, match=r"t\.gz: corrupt or truncated gzip"):
        read_idx(gz)


# ------------------------------------------------------------------ checksum tables


def test_checksum_tables_match_torchvision():
    import torchvision.datasets as tvd

    for source, cls in (("mnist", tvd.MNIST), ("fashion_mnist", tvd.FashionMNIST)):
        published = {name.removesuffix(".gz"): md5 for name, md5 in cls.resources}
        assert published == tvs.IDX_GZ_MD5[source]
    for source, cls in (("cifar10", tvd.CIFAR10), ("cifar100", tvd.CIFAR100)):
        files = dict(cls.train_list + cls.test_list)
        files[cls.meta["filename"]] = cls.meta["md5"]
        assert files == tvs.FILE_MD5[source]
        assert tvs.ARCHIVES[source] == (cls.filename, cls.tgz_md5)
    svhn = {v[1]: v[2] for k, v in tvd.SVHN.split_list.items() if k != "extra"}
    assert svhn == tvs.FILE_MD5["svhn"]
    stl = dict(tvd.STL10.train_list + tvd.STL10.test_list)
    stl.pop("unlabeled_X.bin")
    assert stl == tvs.FILE_MD5["stl10"]
    assert tvs.ARCHIVES["stl10"] == (tvd.STL10.filename, tvd.STL10.tgz_md5)


# ------------------------------------------------------------------ MNIST-style mirror


def _fake_idx_set(rng, n_train=12, n_test=5):
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }


@pytest.fixture
def mnist_mirror(tmp_path, monkeypatch):
    """A mirror with two gzipped and two plain IDX files; tables patched to their checksums."""
    arrays = _fake_idx_set(np.random.default_rng(0))
    mirror = tmp_path / "mirror" / "nested"
    mirror.mkdir(parents=True)
    gz_md5, content_md5 = {}, {}
    for i, (name, arr) in enumerate(arrays.items()):
        data = idx_bytes(arr)
        content_md5[name] = md5_bytes(data)
        if i % 2 == 0:
            gz = gzip.compress(data, mtime=0)
            (mirror / f"{name}.gz").write_bytes(gz)
            gz_md5[name] = md5_bytes(gz)
        else:
            (mirror / name).write_bytes(data)
            gz_md5[name] = "0" * 32  # the plain files can only match their content md5
    monkeypatch.setitem(tvs.IDX_GZ_MD5, "mnist", gz_md5)
    monkeypatch.setitem(tvs.IDX_CONTENT_MD5, "mnist", content_md5)
    return tmp_path / "mirror", arrays


def test_mnist_mirror_fetch_and_prepare(mnist_mirror, tmp_path):
    mirror, arrays = mnist_mirror
    spec = {"source": "mnist", "mirror": str(mirror)}
    raw = tmp_path / "raw" / "mnist"
    m = fetch("mnist", spec, raw)
    assert json.loads((raw / "manifest.json").read_text()) == m
    assert sorted(m["files"]) == sorted(
        [
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte",
        ]
    )
    verified = {e["role"]: e["verified"] for e in m["files"].values()}
    assert (
        "gzip" in verified["train-images-idx3-ubyte"]
        and "decompressed" in verified["train-labels-idx1-ubyte"]
    )
    assert m["origin"].startswith("mirror") and m["generated"] is False
    ds = prepare("mnist", spec, raw)
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert ds.x_train.dtype == np.uint8 and ds.is_image and ds.meta["split"] == "official"
    assert ds.n_classes == 10 and ds.meta["image_shape"] == [28, 28]
    save_prepared(tmp_path / "mnist.npz", ds)
    assert load_prepared(tmp_path / "mnist.npz").x_test.shape == (5, 28, 28)


def test_recompressed_gz_verifies_by_content(mnist_mirror, tmp_path, monkeypatch):
    mirror, _ = mnist_mirror
    path = mirror / "nested" / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=1, mtime=1))
    m = fetch("mnist", {"source": "mnist", "mirror": str(mirror)}, tmp_path / "raw")
    entry = m["files"]["train-images-idx3-ubyte.gz"]
    assert "decompressed content" in entry["verified"] and entry["md5"] == md5_file(path)


def test_mirror_checksum_mismatch_fails_and_writes_no_manifest(mnist_mirror, tmp_path, monkeypatch):
    mirror, _ = mnist_mirror
    monkeypatch.setitem(tvs.IDX_CONTENT_MD5["mnist"], "t10k-labels-idx1-ubyte", "f" * 32)
    raw = tmp_path / "raw"
    with pytest.raises(
        ChecksumError, match=r"t10k-labels-idx1-ubyte: checksum mismatch for mnist.*mirror"
    ):
        fetch("mnist", {"source": "mnist", "mirror": str(mirror)}, raw)
    assert not (raw / "manifest.json").exists()
    assert not (raw / "t10k-labels-idx1-ubyte").exists()  # the bad copy is removed


def test_corrupted_mirror_file_fails(mnist_mirror, tmp_path):
    mirror, _ = mnist_mirror
    path = mirror / "nested" / "train-images-idx3-ubyte.gz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"train-images-idx3-ubyte\.gz: checksum mismatch"):
        fetch("mnist", {"source": "mnist", "mirror": str(mirror)}, tmp_path / "raw")
    assert not (tmp_path / "raw" / "train-images-idx3-ubyte.gz").exists()


def test_mirror_with_two_candidates_takes_the_one_that_verifies(mnist_mirror, tmp_path):
    mirror, arrays = mnist_mirror
    decoy = mirror / "AAA_other_set"  # sorts first
    decoy.mkdir()
    write_idx(decoy / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    fetch("mnist", {"source": "mnist", "mirror": str(mirror)}, tmp_path / "raw")
    ds = load_raw("mnist", {"source": "mnist"}, tmp_path / "raw")
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])


def test_mirror_missing_file_names_the_mirror_key(mnist_mirror, tmp_path):
    mirror, _ = mnist_mirror
    (mirror / "nested" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(
        DataError,
        match=r"datasets\.mn\.mirror: .* holds no t10k-labels-idx1-ubyte\.gz / t10k-labels-idx1-ubyte",
    ):
        fetch("mn", {"source": "mnist", "mirror": str(mirror)}, tmp_path / "raw")
    with pytest.raises(DataError, match=r"datasets\.mn\.mirror: folder .* not found"):
        fetch("mn", {"source": "mnist", "mirror": str(tmp_path / "nowhere")}, tmp_path / "raw")


def test_load_raw_never_downloads_and_rechecks_files(mnist_mirror, tmp_path):
    mirror, _ = mnist_mirror
    spec = {"source": "mnist", "mirror": str(mirror)}
    raw = tmp_path / "raw"
    with pytest.raises(
        DataError,
        match=r"manifest\.json: no manifest.*never fetched; run `basis-nmce fetch --dataset mnist",
    ):
        load_raw("mnist", spec, raw)
    fetch("mnist", spec, raw)
    with pytest.raises(
        DataError,
        match=r"fetched for source 'mnist', but datasets\.mnist\.source is 'fashion_mnist'",
    ):
        load_raw("mnist", {"source": "fashion_mnist"}, raw)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"changed")
    with pytest.raises(
        ChecksumError, match=r"t10k-labels-idx1-ubyte: sha256 .* recorded at fetch time"
    ):
        load_raw("mnist", spec, raw)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match=r"listed in .* but missing"):
        load_raw("mnist", spec, raw)


def test_network_fetch_uses_torchvision_layout(tmp_path, monkeypatch):
    """No network: the download is replaced by one that lays files out as torchvision does."""
    arrays = _fake_idx_set(np.random.default_rng(1))
    gz_md5 = {}

    def fake_download(source, raw_dir):
        folder = raw_dir / "FashionMNIST" / "raw"
        folder.mkdir(parents=True)
        for name, arr in arrays.items():
            gz = gzip.compress(idx_bytes(arr), mtime=0)
            (folder / f"{name}.gz").write_bytes(gz)
            (folder / name).write_bytes(idx_bytes(arr))  # torchvision also extracts
            gz_md5[name] = md5_bytes(gz)

    monkeypatch.setattr(tvs, "_download", fake_download)
    monkeypatch.setitem(tvs.IDX_GZ_MD5, "fashion_mnist", gz_md5)
    raw = tmp_path / "raw"
    m = fetch("fm", {"source": "fashion_mnist"}, raw)
    assert all(rel.startswith("FashionMNIST/raw/") and rel.endswith(".gz") for rel in m["files"])
    ds = load_raw("fm", {"source": "fashion_mnist"}, raw)
    assert ds.meta["class_names"][0] == "T-shirt/top" and ds.x_train.shape == (12, 28, 28)


def test_idx_sanity_checks(tmp_path, monkeypatch):
    arrays = _fake_idx_set(np.random.default_rng(2))
    arrays["train-labels-idx1-ubyte"] = arrays["train-labels-idx1-ubyte"][:-1]
    mirror = tmp_path / "m"
    mirror.mkdir()
    table = {}
    for name, arr in arrays.items():
        write_idx(mirror / name, arr)
        table[name] = md5_file(mirror / name)
    monkeypatch.setitem(tvs.IDX_CONTENT_MD5, "mnist", table)
    spec = {"source": "mnist", "mirror": str(mirror)}
    fetch("mnist", spec, tmp_path / "raw")
    with pytest.raises(
        DataError, match=r"has 12 images but .*train-labels-idx1-ubyte has 11 labels"
    ):
        load_raw("mnist", spec, tmp_path / "raw")


# ------------------------------------------------------------------ CIFAR, SVHN, STL-10


def _pickle(path: Path, obj) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _cifar_files(folder: Path, source: str, n: int = 4) -> dict[str, np.ndarray]:
    """Tiny CIFAR batches; pixel value = channel * 100 + row so the layout can be checked."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.zeros((3, 32, 32), np.uint8) + (
        np.arange(3)[:, None, None] * 100 + np.arange(32)[None, :, None]
    ).astype(np.uint8)
    data = np.repeat(img.reshape(1, -1), n, axis=0)
    if source == "cifar10":
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            _pickle(folder / name, {"data": data, "labels": list(range(n)), "batch_label": "x"})
        _pickle(folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)]})
    else:
        for name in ("train", "test"):
            _pickle(
                folder / name,
                {
                    "data": data,
                    "fine_labels": [99, 0, 50, 7][:n],
                    "coarse_labels": [19, 4, 15, 7][:n],
                },
            )
        _pickle(
            folder / "meta",
            {
                "fine_label_names": [f"f{i}" for i in range(100)],
                "coarse_label_names": [f"k{i}" for i in range(20)],
            },
        )
    return {p.name: p for p in folder.iterdir()}


def _patch_md5(monkeypatch, source: str, files) -> None:
    monkeypatch.setitem(tvs.FILE_MD5, source, {name: md5_file(p) for name, p in files.items()})


def test_cifar10_loose_files_in_mirror(tmp_path, monkeypatch):
    files = _cifar_files(tmp_path / "mirror" / "cifar-10-batches-py", "cifar10")
    _patch_md5(monkeypatch, "cifar10", files)
    spec = {"source": "cifar10", "mirror": str(tmp_path / "mirror")}
    fetch("c10", spec, tmp_path / "raw")
    ds = prepare("c10", spec, tmp_path / "raw")
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (4, 32, 32, 3)
    assert ds.x_train.dtype == np.uint8 and ds.meta["image_shape"] == [32, 32, 3]
    # channels last: pixel (row 5, any column, channel 2) = 2 * 100 + 5
    assert ds.x_train[0, 5, 17, 2] == 205 and ds.x_train[0, 7, 0, 0] == 7
    assert ds.y_train.tolist() == [0, 1, 2, 3] * 5 and ds.n_classes == 10


def test_cifar100_from_the_archive_coarse_and_fine(tmp_path, monkeypatch):
    files = _cifar_files(tmp_path / "staging" / "cifar-100-python", "cifar100")
    _patch_md5(monkeypatch, "cifar100", files)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "staging" / "cifar-100-python", arcname="cifar-100-python")
    monkeypatch.setitem(tvs.ARCHIVES, "cifar100", ("cifar-100-python.tar.gz", md5_file(archive)))
    spec = {"source": "cifar100", "mirror": str(mirror)}
    m = fetch("c100", spec, tmp_path / "raw")
    assert sorted(m["files"]) == ["meta", "test", "train"]
    coarse = load_raw("c100", spec, tmp_path / "raw")
    assert coarse.n_classes == 20 and coarse.y_train.tolist() == [19, 4, 15, 7]
    assert coarse.meta["class_names"][4] == "k4"
    fine = load_raw("c100", {**spec, "options": {"labels": "fine"}}, tmp_path / "raw")
    assert fine.n_classes == 100 and fine.y_train.tolist() == [99, 0, 50, 7]
    with pytest.raises(
        DataError, match=r"datasets\.c100\.options\.labels: 'medium' is not one of coarse, fine"
    ):
        load_raw("c100", {**spec, "options": {"labels": "medium"}}, tmp_path / "raw")
    with pytest.raises(DataError, match=r"datasets\.c100\.options\.label: unknown option.*labels"):
        load_raw("c100", {**spec, "options": {"label": "fine"}}, tmp_path / "raw")


def test_archive_with_wrong_md5_is_refused(tmp_path, monkeypatch):
    _cifar_files(tmp_path / "staging" / "cifar-10-batches-py", "cifar10")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "staging" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    with pytest.raises(
        ChecksumError, match=r"cifar-10-python\.tar\.gz: md5 .* differs from the published c58f3010"
    ):
        fetch("c", {"source": "cifar10", "mirror": str(mirror)}, tmp_path / "raw")


def test_cifar_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(DataError, match=r"refusing to load global builtins\.print"):
        tvs.read_pickle(path)


def test_svhn_mat_files(tmp_path, monkeypatch):
    from scipy.io import savemat

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    x = np.zeros((32, 32, 3, 3), np.uint8)
    x[4, 9, 1, :] = [10, 20, 30]  # row 4, column 9, green
    for name in ("train_32x32.mat", "test_32x32.mat"):
        savemat(mirror / name, {"X": x, "y": np.array([[10], [1], [9]], np.uint8)})
    _patch_md5(monkeypatch, "svhn", {p.name: p for p in mirror.iterdir()})
    spec = {"source": "svhn", "mirror": str(mirror)}
    fetch("s", spec, tmp_path / "raw")
    ds = load_raw("s", spec, tmp_path / "raw")
    assert ds.x_train.shape == (3, 32, 32, 3) and ds.y_train.tolist() == [0, 1, 9]
    assert ds.x_train[:, 4, 9, 1].tolist() == [10, 20, 30]


def test_stl10_binary_layout(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror" / "stl10_binary"
    mirror.mkdir(parents=True)
    imgs = np.random.default_rng(0).integers(0, 256, (2, 96, 96, 3), dtype=np.uint8)  # (n, H, W, C)
    # on disk: channel by channel, each channel column-major
    (mirror / "train_X.bin").write_bytes(imgs.transpose(0, 3, 2, 1).tobytes())
    (mirror / "test_X.bin").write_bytes(imgs[:1].transpose(0, 3, 2, 1).tobytes())
    (mirror / "train_y.bin").write_bytes(bytes([1, 10]))
    (mirror / "test_y.bin").write_bytes(bytes([3]))
    _patch_md5(monkeypatch, "stl10", {p.name: p for p in mirror.iterdir()})
    spec = {"source": "stl10", "mirror": str(tmp_path / "mirror")}
    fetch("stl", spec, tmp_path / "raw")
    ds = load_raw("stl", spec, tmp_path / "raw")
    np.testing.assert_array_equal(ds.x_train, imgs)
    assert ds.y_train.tolist() == [0, 9] and ds.y_test.tolist() == [2]


# ------------------------------------------------------------------ COIL


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _coil_zip(path: Path, n_obj: int, n_view: int, rgb: bool, folder: str) -> None:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for obj in range(1, n_obj + 1):
            for view in range(n_view):
                shape = (8, 8, 3) if rgb else (8, 8)
                arr = np.full(shape, obj * 10, np.uint8) + rng.integers(0, 3, shape, dtype=np.uint8)
                zf.writestr(f"{folder}/obj{obj}__{view * 5}.png", _png(arr))
        zf.writestr(f"{folder}/convertGroupppm2png.pl", "#!/usr/bin/perl\n")


@pytest.fixture
def coil20_mirror(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _coil_zip(mirror / "coil-20-proc.zip", n_obj=3, n_view=4, rgb=False, folder="coil-20-proc")
    monkeypatch.setitem(coil.N_IMAGES, "coil20", 12)
    monkeypatch.setitem(coil.N_OBJECTS, "coil20", 3)
    return mirror


def test_coil20_zip(coil20_mirror, tmp_path):
    spec = {"source": "coil20", "mirror": str(coil20_mirror), "options": {"downsample": 1}}
    m = fetch("coil", spec, tmp_path / "raw")
    (entry,) = m["files"].values()
    assert entry["verified"].startswith("no published checksum") and len(entry["sha256"]) == 64
    ds = load_raw("coil", spec, tmp_path / "raw")
    assert ds.x_train.shape == (12, 8, 8) and ds.x_train.dtype == np.uint8 and ds.n_classes == 3
    assert ds.y_train.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert 10 <= ds.x_train[0].min() and ds.x_train[-1].max() <= 32
    assert ds.meta["split"] == "holdout"
    small = prepare("coil", {**spec, "options": {}}, tmp_path / "raw")  # default: 2x down-sampled
    assert small.x_train.shape[1:] == (4, 4) and len(small.x_test) == 2


def test_coil100_rgb_and_grey(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    _coil_zip(mirror / "coil-100.zip", n_obj=2, n_view=3, rgb=True, folder="coil-100")
    monkeypatch.setitem(coil.N_IMAGES, "coil100", 6)
    monkeypatch.setitem(coil.N_OBJECTS, "coil100", 2)
    spec = {
        "source": "coil100",
        "mirror": str(mirror),
        "options": {"grayscale": False, "downsample": 4},
    }
    fetch("c", spec, tmp_path / "raw")
    rgb = load_raw("c", spec, tmp_path / "raw")
    assert rgb.x_train.shape == (6, 2, 2, 3) and rgb.meta["image_shape"] == [2, 2, 3]
    grey = load_raw("c", {**spec, "options": {"grayscale": True}}, tmp_path / "raw")
    assert grey.x_train.shape == (6, 4, 4)
    with pytest.raises(
        DataError, match=r"datasets\.c\.options\.grayscale: unknown option for source 'coil20'"
    ):
        load_raw("c", {"source": "coil20", "options": {"grayscale": True}}, tmp_path / "raw")


def test_coil_known_checksum_mismatch_and_bad_archives(coil20_mirror, tmp_path, monkeypatch):
    spec = {"source": "coil20", "mirror": str(coil20_mirror)}
    monkeypatch.setitem(coil.KNOWN_SHA256, "coil-20-proc.zip", "0" * 64)
    with pytest.raises(ChecksumError, match=r"coil-20-proc\.zip: sha256 .* differs from the known"):
        fetch("coil", spec, tmp_path / "raw")
    assert not (tmp_path / "raw" / "manifest.json").exists()
    monkeypatch.delitem(coil.KNOWN_SHA256, "coil-20-proc.zip")
    monkeypatch.setitem(coil.N_IMAGES, "coil20", 1440)
    with pytest.raises(
        DataError, match=r"12 obj<N>__<view>\.png images, the coil20 archive has 1440"
    ):
        fetch("coil", spec, tmp_path / "raw")
    (coil20_mirror / "coil-20-proc.zip").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable zip archive"):
        fetch("coil", spec, tmp_path / "raw")
    (coil20_mirror / "coil-20-proc.zip").unlink()
    with pytest.raises(DataError, match=r"datasets\.coil\.mirror: .* holds no coil-20-proc\.zip"):
        fetch("coil", spec, tmp_path / "raw")


def test_coil_network_path_is_replaceable(tmp_path, monkeypatch, coil20_mirror):
    import torchvision.datasets.utils as tvu

    def fake_download_url(url, root, filename=None, md5=None):
        assert url == coil.URL["coil20"]
        (Path(root) / filename).write_bytes((coil20_mirror / "coil-20-proc.zip").read_bytes())

    monkeypatch.setattr(tvu, "download_url", fake_download_url)
    m = fetch("coil", {"source": "coil20"}, tmp_path / "raw")
    assert m["origin"].startswith("network") and "coil-20-proc.zip" in m["files"]


# ------------------------------------------------------------------ the real Fashion-MNIST mirror


@pytest.mark.slow
@pytest.mark.skipif(
    not FMNIST_MIRROR.is_dir(), reason="Debian package dataset-fashion-mnist not installed"
)
def test_real_fashion_mnist_debian_mirror(tmp_path):
    spec = {"source": "fashion_mnist", "mirror": str(FMNIST_MIRROR)}
    m = fetch("fmnist", spec, tmp_path / "raw")
    assert len(m["files"]) == 4
    ds = prepare("fmnist", spec, tmp_path / "raw")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.n_classes == 10
    assert np.bincount(ds.y_train).tolist() == [6000] * 10
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
