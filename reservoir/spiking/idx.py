"""IDX file reader for MNIST / Fashion-MNIST files the user already has (nothing is downloaded).

IDX (LeCun et al.): bytes 0-1 zero, byte 2 the element type, byte 3 the number of dimensions, then one
big-endian uint32 per dimension, then the data in big-endian C order. Files may be gzip-compressed
(``.gz``). This module does not need torch.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from reservoir.tasks.base import TaskDataError

# IDX element types -> numpy big-endian dtypes (yann.lecun.com/exdb/mnist, "THE IDX FILE FORMAT").
IDX_DTYPES: dict[int, str] = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# File name stems in the MNIST / Fashion-MNIST distributions (both "-idx3-ubyte" and ".idx3-ubyte" spellings).
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


class IDXError(TaskDataError):
    """An IDX file is missing or malformed; the message names the file."""


def read_idx(path: str | Path) -> NDArray[np.generic]:
    """Read one IDX file (optionally gzip-compressed) into a native-endian numpy array."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise IDXError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise IDXError(f"{path}: corrupt gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXError(f"{path}: not an IDX file (magic {raw[:4].hex() or 'empty'})")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise IDXError(f"{path}: unknown IDX element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{path}: truncated header ({len(raw)} bytes, need {header})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[code])
    count = int(np.prod(dims, dtype=np.int64))
    need = header + count * dtype.itemsize
    if len(raw) != need:
        raise IDXError(f"{path}: {len(raw)} bytes, expected {need} for shape {tuple(dims)} of {dtype}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _find(directory: Path, stems: tuple[str, ...]) -> Path:
    for stem in stems:
        for name in (stem, stem + ".gz"):
            if (directory / name).is_file():
                return directory / name
    raise IDXError(f"{directory}: no {stems[0]}[.gz] (expected the four MNIST / Fashion-MNIST IDX files)")


def load_mnist_dir(
    directory: str | Path,
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """The four MNIST-layout files of a directory as (X_train, y_train, X_test, y_test).

    Images are flattened to (n, rows * cols) float64 with the raw 0-255 intensities; labels are int64.
    """
    d = Path(directory)
    if not d.is_dir():
        raise IDXError(f"{d}: not a directory")
    out = {key: read_idx(_find(d, stems)) for key, stems in MNIST_FILES.items()}
    for split in ("train", "test"):
        images, labels = out[f"{split}_images"], out[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise IDXError(
                f"{d}: {split} images {images.shape} and labels {labels.shape} do not match "
                "(need (n, rows, cols) and (n,))"
            )
    return (
        out["train_images"].reshape(out["train_images"].shape[0], -1).astype(np.float64),
        out["train_labels"].astype(np.int64),
        out["test_images"].reshape(out["test_images"].shape[0], -1).astype(np.float64),
        out["test_labels"].astype(np.int64),
    )
