"""IDX reader and MNIST directory loader on small IDX files written here (no torch needed)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reservoir.spiking.idx import IDX_DTYPES, IDXError, load_mnist_dir, read_idx
from reservoir.tasks.base import TaskDataError


def idx_bytes(arr: np.ndarray, code: int) -> bytes:
    """Serialise ``arr`` by hand in IDX layout (independent of the reader)."""
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.dtype(IDX_DTYPES[code])).tobytes()


def test_reads_ubyte_images(tmp_path: Path) -> None:
    imgs = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "x-idx3-ubyte"
    p.write_bytes(idx_bytes(imgs, 0x08))
    out = read_idx(p)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, imgs)


def test_reads_big_endian_int_and_float_gzipped(tmp_path: Path) -> None:
    ints = np.array([1, -2, 70000, -(2**31)], dtype=np.int64)
    p = tmp_path / "i.gz"
    p.write_bytes(gzip.compress(idx_bytes(ints, 0x0C)))
    np.testing.assert_array_equal(read_idx(p), ints)
    fl = np.array([[0.5, -1.25], [3.0, 1e-3]])
    q = tmp_path / "f"
    q.write_bytes(idx_bytes(fl, 0x0E))
    got = read_idx(q)
    assert got.dtype.byteorder in ("=", "<", "|") or got.dtype.isnative
    np.testing.assert_array_equal(got, fl)


@given(
    code=st.sampled_from(sorted(IDX_DTYPES)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=3),
    seed=st.integers(0, 2**16),
)
def test_roundtrip_property(
    tmp_path_factory: pytest.TempPathFactory, code: int, shape: list[int], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    arr = rng.integers(-100, 100, size=shape).astype(np.dtype(IDX_DTYPES[code]).newbyteorder("="))
    if code == 0x08:
        arr = np.abs(arr).astype(np.uint8)
    p = tmp_path_factory.mktemp("idx") / "a"
    p.write_bytes(idx_bytes(arr, code))
    np.testing.assert_array_equal(read_idx(p), arr)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not an IDX file"),
        (b"\x01\x00\x08\x01", "not an IDX file"),
        (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "unknown IDX element type 0x07"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x02", "truncated header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02", "expected 11"),
    ],
)
def test_malformed_files_name_the_file(tmp_path: Path, data: bytes, message: str) -> None:
    p = tmp_path / "bad"
    p.write_bytes(data)
    with pytest.raises(IDXError, match=message) as info:
        read_idx(p)
    assert str(p) in str(info.value)
    assert isinstance(info.value, TaskDataError)


def _write_mnist(d: Path, n_train: int, n_test: int, gz: bool) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    arrays = (
        rng.integers(0, 256, (n_train, 5, 4)).astype(np.uint8),
        rng.integers(0, 10, n_train).astype(np.uint8),
        rng.integers(0, 256, (n_test, 5, 4)).astype(np.uint8),
        rng.integers(0, 10, n_test).astype(np.uint8),
    )
    names = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images.idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    for arr, name in zip(arrays, names):
        raw = idx_bytes(arr, 0x08)
        (d / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_dir(tmp_path: Path, gz: bool) -> None:
    tr_x, tr_y, te_x, te_y = _write_mnist(tmp_path, 7, 3, gz)
    X_train, y_train, X_test, y_test = load_mnist_dir(tmp_path)
    np.testing.assert_array_equal(y_train, tr_y)
    np.testing.assert_array_equal(X_test, te_x.reshape(3, 20))
    assert X_train.shape == (7, 20) and X_test.shape == (3, 20)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64
    np.testing.assert_array_equal(X_train, tr_x.reshape(7, 20))
    np.testing.assert_array_equal(y_test, te_y)


def test_load_mnist_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(IDXError, match="not a directory"):
        load_mnist_dir(tmp_path / "missing")
    with pytest.raises(IDXError, match="train-images-idx3-ubyte"):
        load_mnist_dir(tmp_path)
    _write_mnist(tmp_path, 4, 2, False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(5, dtype=np.uint8), 0x08))
    with pytest.raises(IDXError, match="do not match"):
        load_mnist_dir(tmp_path)
