"""Files of long liquid runs: stage-1 checkpoints and cached features (docs/spiking.md, "Long runs").

Both are ``.npz`` archives with a format ``version`` and the JSON ``params`` they were made with (liquid
kind, size, seed, stage-1 and presentation settings, digests of the data). Loading checks both and refuses a
file made for other settings with one line naming the first differing parameters, so a checkpoint can never be
applied to the wrong run silently. Writes go to a temporary file renamed into place: a run killed while
writing leaves the previous file (or none), never a truncated one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: Format of both file kinds; bump when their content changes meaning.
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint or feature file that is missing, unreadable or made with other parameters."""


def digest(*arrays: NDArray[Any]) -> str:
    """Short SHA-256 of arrays (shape, dtype and bytes): identifies a data split in ``params``."""
    h = hashlib.sha256()
    for a in arrays:
        c = np.ascontiguousarray(a)
        h.update(f"{c.shape}{c.dtype.str}".encode())
        h.update(c.tobytes())
    return h.hexdigest()[:16]


def liquid_path(directory: Path, kind: str, size: int, seed: int) -> Path:
    """Stage-1 checkpoint file of one seed in ``directory``."""
    return directory / f"liquid-{kind}-N{size}-seed{seed}.npz"


def features_path(directory: Path, kind: str, size: int, seed: int) -> Path:
    """Cached features of one seed in ``directory``."""
    return directory / f"features-{kind}-N{size}-seed{seed}.npz"


def _write(path: Path, params: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        _write_file(path, tmp, params, arrays)
    except OSError as exc:
        raise CheckpointError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_file(path: Path, tmp: Path, params: dict[str, Any], arrays: dict[str, NDArray[Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        payload: dict[str, Any] = {
            "version": np.int64(VERSION),
            "params": np.array(json.dumps(params, sort_keys=True)),
            **arrays,
        }
        np.savez(f, **payload)
    os.replace(tmp, path)


def _read(path: Path, params: dict[str, Any], what: str) -> dict[str, NDArray[Any]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise CheckpointError(f"{what} {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{what} {path}: not a readable .npz ({exc})") from None
    if "version" not in data or "params" not in data:
        raise CheckpointError(f"{what} {path}: not an asicrc {what} (no version/params)")
    version = int(data.pop("version"))
    if version != VERSION:
        raise CheckpointError(f"{what} {path}: format version {version}, this build reads {VERSION}")
    made = json.loads(str(data.pop("params")))
    diff = [k for k in sorted(set(made) | set(params)) if made.get(k) != params.get(k)]
    if diff:
        shown = ", ".join(f"{k}={made.get(k)!r} (this run {params.get(k)!r})" for k in diff[:3])
        more = f" and {len(diff) - 3} more" if len(diff) > 3 else ""
        raise CheckpointError(f"{what} {path} was made with other parameters: {shown}{more}")
    return data


def save_liquid(path: Path, params: dict[str, Any], w_init: NDArray[np.float32], scale: float) -> None:
    """Write the stage-1 state of a liquid: weights (n_syn,) and the input scale."""
    _write(path, params, {"w_init": np.asarray(w_init), "scale": np.array(float(scale))})


def load_liquid(path: Path, params: dict[str, Any]) -> tuple[NDArray[np.float32], float]:
    """(weights, input scale) of a checkpoint made with ``params``; :class:`CheckpointError` otherwise."""
    data = _read(path, params, "liquid checkpoint")
    return data["w_init"], float(data["scale"])


def save_features(
    path: Path,
    params: dict[str, Any],
    train: NDArray[np.float64],
    test: NDArray[np.float64],
    info: dict[str, Any],
) -> None:
    """Write one seed's features (train and test rows) and the liquid's ``info()`` (JSON-able). Spike counts
    (whole numbers below 65536) are stored as uint16: a quarter of float64 (140 MB for 70,000 x 1000)."""
    info_json = np.array(json.dumps(info, default=_jsonable))
    _write(path, params, {"train": _compact(train), "test": _compact(test), "info": info_json})


def load_features(
    path: Path, params: dict[str, Any]
) -> tuple[NDArray[np.float64], NDArray[np.float64], dict[str, Any]]:
    """(train features, test features, info) cached with ``params``; :class:`CheckpointError` otherwise."""
    data = _read(path, params, "feature cache")
    train, test = (np.asarray(data[k], dtype=np.float64) for k in ("train", "test"))
    return train, test, json.loads(str(data["info"]))


def _compact(a: NDArray[np.float64]) -> NDArray[Any]:
    """uint16 when that is exact (spike counts), else the array as it is."""
    if a.size and np.all(a >= 0) and np.all(a < 65536) and np.array_equal(a, np.floor(a)):
        return a.astype(np.uint16)
    return a


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    return str(x)
