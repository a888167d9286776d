"""Benchmark tasks with fixed, documented splits (see docs/bench.md).

=============== ======= ======== ====== ===== ================================================
task            washout train    test   metric notes
=============== ======= ======== ====== ===== ================================================
narma10         200     4000     1000   NMSE  u ~ U[0, 0.5], data seed 0
memory-capacity 200     4000     4000   MC    u ~ U[-1, 1], delays 1..50
mackey-glass    200     4000     1000   NMSE  one-step; free-run NRMSE at step 84 as extra
digits          -       1347     450    acc   sklearn load_digits, stratified split, seed 0
forecast        10 %    70 %     rest   NMSE  user series, target u(t + horizon)
classify        -       n_train  rest   acc   user X, y (n_train / train_fraction in the file)
=============== ======= ======== ====== ===== ================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from reservoir.tasks.base import (
    F64,
    ClassificationTask,
    MinMaxScaler,
    SeriesTask,
    Task,
    TaskDataError,
    accuracy,
    check_finite,
    memory_capacity,
    nmse,
    nrmse,
)
from reservoir.tasks.generators import delayed_targets, mackey_glass, memory_input, narma10_series

__all__ = [
    "TASKS",
    "ClassificationTask",
    "MinMaxScaler",
    "SeriesTask",
    "Task",
    "TaskDataError",
    "accuracy",
    "classify_task",
    "digits_task",
    "forecast_task",
    "load_series",
    "mackey_glass_task",
    "make_task",
    "memory_capacity",
    "memory_capacity_task",
    "narma10_task",
    "nmse",
    "nrmse",
]

#: Default split sizes (washout, train, test) of the generated series tasks.
WASHOUT, N_TRAIN, N_TEST = 200, 4000, 1000
#: Memory capacity: longest delay and test length (long, since the r^2 bias grows like kmax / n_test).
MC_KMAX, MC_TEST = 50, 4000
#: Mackey-Glass free-run horizon (Jaeger & Haas 2004).
MG_FREE_RUN = 84
#: Minimum usable length of a user series after the horizon shift.
MIN_SERIES = 50


def narma10_task(
    n_train: int = N_TRAIN, n_test: int = N_TEST, washout: int = WASHOUT, seed: int = 0
) -> SeriesTask:
    """NARMA10 one-step regression; data seed fixed per task so every reservoir sees the same series."""
    T = washout + n_train + n_test
    u, y = narma10_series(T, seed)
    return SeriesTask(
        "narma10", u[:, None], y[:, None], washout, n_train, n_test, "nmse", info={"seed": seed}
    )


def memory_capacity_task(
    n_train: int = N_TRAIN, n_test: int = MC_TEST, washout: int = WASHOUT, kmax: int = MC_KMAX, seed: int = 0
) -> SeriesTask:
    """Linear memory capacity: targets u(t-1) .. u(t-kmax); value = sum of test r^2."""
    if washout < kmax:
        raise ValueError(f"washout ({washout}) must be >= kmax ({kmax})")
    u = memory_input(washout + n_train + n_test, seed)
    info = {"seed": seed, "kmax": kmax}
    return SeriesTask(
        "memory-capacity", u[:, None], delayed_targets(u, kmax), washout, n_train, n_test, "mc", info=info
    )


def mackey_glass_task(n_train: int = N_TRAIN, n_test: int = N_TEST, washout: int = WASHOUT) -> SeriesTask:
    """Mackey-Glass (tau=17, sampled every 1 time unit): one-step prediction, 84-step free run as an extra."""
    x = mackey_glass(washout + n_train + n_test + 1)
    return SeriesTask(
        "mackey-glass", x[:-1, None], x[1:, None], washout, n_train, n_test, "nmse", free_run=MG_FREE_RUN
    )


def digits_task(test_size: float = 0.25, seed: int = 0) -> ClassificationTask:
    """scikit-learn's 8x8 digits (1797 samples), stratified split with a fixed seed."""
    d = load_digits()
    Xtr, Xte, ytr, yte = train_test_split(
        d.data.astype(np.float64),
        d.target.astype(np.int64),
        test_size=test_size,
        random_state=seed,
        stratify=d.target,
    )
    return ClassificationTask("digits", Xtr, ytr, Xte, yte, info={"image_shape": [8, 8]})


def load_series(path: str | Path) -> F64:
    """A one-column series from .npy (shape (T,) or (T, 1)) or .csv (one numeric column, optional header)."""
    p = Path(path)
    if not p.exists():
        raise TaskDataError(f"{p}: file not found")
    try:
        if p.suffix == ".npy":
            a = np.load(p, allow_pickle=False)
        elif p.suffix in (".csv", ".txt"):
            lines = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
            try:
                float(lines[0].split(",")[0])
            except (ValueError, IndexError):
                lines = lines[1:]  # header
            rows = [ln.split(",") for ln in lines]
            if any(len(r) != 1 for r in rows):
                raise TaskDataError(
                    f"{p}: expected one column, found rows with {max(len(r) for r in rows)} columns"
                )
            a = np.array([float(r[0]) for r in rows])
        else:
            raise TaskDataError(f"{p}: unsupported extension {p.suffix!r} (use .npy or .csv)")
    except TaskDataError:
        raise
    except ValueError as exc:
        raise TaskDataError(f"{p}: cannot parse as numbers: {exc}") from exc
    a = np.asarray(a)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise TaskDataError(f"{p}: expected a one-column series of shape (T,) or (T, 1), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise TaskDataError(f"{p}: expected numbers, got dtype {a.dtype}")
    a = a.astype(np.float64)
    check_finite(str(p), a)
    return a


def forecast_task(series: F64 | str | Path, horizon: int = 1, name: str = "forecast") -> SeriesTask:
    """Forecast x(t + horizon) from x(..t) of a user series: washout 10 %, train 70 %, test the rest."""
    x = load_series(series) if isinstance(series, (str, Path)) else np.asarray(series, dtype=np.float64)
    if horizon < 1:
        raise TaskDataError(f"horizon must be >= 1, got {horizon}")
    T = x.size - horizon
    if T < MIN_SERIES:
        raise TaskDataError(
            f"series too short: {x.size} values for horizon {horizon} (need >= {MIN_SERIES + horizon})"
        )
    washout = max(1, T // 10)
    n_train = int(0.7 * T)
    n_test = T - washout - n_train
    info = {"horizon": horizon, "length": int(x.size)}
    return SeriesTask(name, x[:T, None], x[horizon:, None], washout, n_train, n_test, "nmse", info=info)


def classify_task(path: str | Path, train_fraction: float = 0.75, seed: int = 0) -> ClassificationTask:
    """A user classification set from .npz with arrays X (n, ...) and y (n,).

    Split: the first ``n_train`` rows when the file holds ``n_train``; otherwise a stratified split with
    ``train_fraction`` (from the file if present, else the argument) and a fixed seed.
    """
    p = Path(path)
    if not p.exists():
        raise TaskDataError(f"{p}: file not found")
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise TaskDataError(f"{p}: not a readable .npz file ({exc})") from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise TaskDataError(f"{p}: one array (.npy); --data needs an .npz holding arrays X and y")
    with z:
        missing = [k for k in ("X", "y") if k not in z.files]
        if missing:
            raise TaskDataError(f"{p}: missing array(s) {missing}; found {sorted(z.files)}")
        X, y = np.asarray(z["X"]), np.asarray(z["y"])
        n_train = int(z["n_train"]) if "n_train" in z.files else None
        if "train_fraction" in z.files:
            train_fraction = float(z["train_fraction"])
    if X.ndim < 2:
        raise TaskDataError(f"{p}: X must have shape (n_samples, n_features...), got {X.shape}")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise TaskDataError(f"{p}: y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if not np.issubdtype(X.dtype, np.number):
        raise TaskDataError(f"{p}: X must be numeric, got dtype {X.dtype}")
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    check_finite(f"{p}: X", X)
    _, yi = np.unique(y, return_inverse=True)
    yi = yi.astype(np.int64)
    if np.unique(yi).size < 2:
        raise TaskDataError(f"{p}: y needs at least 2 classes")
    if n_train is not None:
        if not 0 < n_train < X.shape[0]:
            raise TaskDataError(f"{p}: n_train={n_train} must be in 1..{X.shape[0] - 1}")
        return ClassificationTask(p.stem, X[:n_train], yi[:n_train], X[n_train:], yi[n_train:])
    if not 0.0 < train_fraction < 1.0:
        raise TaskDataError(f"{p}: train_fraction={train_fraction} must be in (0, 1)")
    try:
        Xtr, Xte, ytr, yte = train_test_split(
            X, yi, train_size=train_fraction, random_state=seed, stratify=yi
        )
    except ValueError:
        Xtr, Xte, ytr, yte = train_test_split(X, yi, train_size=train_fraction, random_state=seed)
    return ClassificationTask(p.stem, Xtr, ytr, Xte, yte)


#: Task names accepted by make_task / ``asicrc bench``.
TASKS: tuple[str, ...] = ("narma10", "memory-capacity", "mackey-glass", "digits", "forecast", "classify")


def make_task(name: str, **options: Any) -> Task:
    """Build a task by name. ``forecast`` needs ``series=`` (path or array) and takes ``horizon=``;
    ``classify`` needs ``data=`` (path); the generated tasks accept ``n_train=``, ``n_test=``."""
    opts = {k: v for k, v in options.items() if v is not None}
    if name == "narma10":
        return narma10_task(**_pick(opts, "n_train", "n_test", "washout"))
    if name == "memory-capacity":
        return memory_capacity_task(**_pick(opts, "n_train", "n_test", "washout", "kmax"))
    if name == "mackey-glass":
        return mackey_glass_task(**_pick(opts, "n_train", "n_test", "washout"))
    if name == "digits":
        return digits_task()
    if name == "forecast":
        if "series" not in opts:
            raise TaskDataError("task 'forecast' needs --series FILE (one-column .npy or .csv)")
        return forecast_task(opts["series"], int(opts.get("horizon", 1)))
    if name == "classify":
        if "data" not in opts:
            raise TaskDataError("task 'classify' needs --data FILE.npz (arrays X, y)")
        return classify_task(opts["data"])
    raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")


def _pick(opts: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: int(opts[k]) for k in keys if k in opts}
