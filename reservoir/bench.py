"""Benchmark runner: task x reservoir x seeds -> one result dict with a t-interval over seeds.

The data (and its split) are fixed per task; the seeds vary the reservoir (its random matrices, mask or
noise). Inputs are scaled from the training split only; state columns are standardised from the training
rows only; the readout is :class:`reservoir.readout.RidgeReadout` (``alpha="cv"``: 5 contiguous folds of the
training rows, grid DEFAULT_ALPHAS) or its classifier wrapper.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats
from numpy.typing import NDArray

from reservoir.readout import RidgeClassifierReadout, RidgeReadout
from reservoir.registry import make_reservoir
from reservoir.spec import ReservoirSpec, SampleReservoir, SeriesReservoir, UnsupportedTask
from reservoir.tasks import (
    ClassificationTask,
    MinMaxScaler,
    SeriesTask,
    Task,
    accuracy,
    make_task,
    memory_capacity,
    nmse,
)

F64 = NDArray[np.float64]
Progress = Callable[[str], None]

#: Teacher-forced steps between free-run trials (re-synchronises the reservoir to the true series).
RESYNC_STEPS = 100
#: Poisson realisations per seed averaged into the matched null (:func:`_matched_null`).
NULL_DRAWS = 5


@dataclass
class BenchResult:
    """``summary``: the JSON-able result; ``y_test``/``y_pred``: test targets and first-seed predictions."""

    summary: dict[str, Any]
    y_test: NDArray[Any]
    y_pred: NDArray[Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedOutcome:
    """What one seed contributes: metric ``value``, test predictions, per-seed extras, the state size, the
    noise totals (asic) or floor, and ``info()`` of the reservoir when asked (spiking kinds)."""

    value: float
    pred: NDArray[Any]
    extra: dict[str, Any]
    state_dim: int
    noise_stats: Any = None
    noise_floor: dict[str, float] | None = None
    info: dict[str, Any] | None = None


#: (task, reservoir, size, seeds, options) -> one :class:`SeedOutcome` per seed, in seed order.
SeedMapper = Callable[[Task, str, "int | None", list[int], "dict[str, Any] | None"], Sequence[SeedOutcome]]


class _Std:
    """Column standardisation fitted on training rows (constant columns pass through centred)."""

    def __init__(self, train: F64) -> None:
        self.mean = train.mean(axis=0)
        sd = train.std(axis=0)
        self.sd = np.where(sd > 0, sd, 1.0)

    def __call__(self, S: F64) -> F64:
        return np.asarray((S - self.mean) / self.sd, dtype=np.float64)


def ci95(
    values: Sequence[float], bounds: tuple[float, float] = (-np.inf, np.inf)
) -> tuple[float, float] | None:
    """Student-t 95 % interval of the mean over seeds, clipped to the metric's range ``bounds``.

    None for a single seed. Clipping keeps an accuracy interval inside [0, 1] (a mean of 0.97 with a wide
    spread over 3 seeds would otherwise reach past 1).
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return None
    half = float(scipy.stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size))
    m = float(v.mean())
    lo, hi = bounds
    return (float(np.clip(m - half, lo, hi)), float(np.clip(m + half, lo, hi)))


def metric_bounds(metric: str, n_outputs: int = 1) -> tuple[float, float]:
    """Range of a metric: accuracy [0, 1]; memory capacity [0, number of delays]; NMSE [0, inf)."""
    if metric == "accuracy":
        return (0.0, 1.0)
    if metric == "mc":
        return (0.0, float(n_outputs))
    return (0.0, np.inf)


def _ci_list(values: Sequence[float], bounds: tuple[float, float] = (-np.inf, np.inf)) -> list[float] | None:
    ci = ci95(values, bounds)
    return None if ci is None else [ci[0], ci[1]]


def _readout() -> RidgeReadout:
    return RidgeReadout(alpha="cv")


def _series_seed(
    task: SeriesTask, res: object, u: F64
) -> tuple[float, F64, dict[str, Any], RidgeReadout, _Std]:
    if not isinstance(res, SeriesReservoir):
        raise UnsupportedTask(
            f"reservoir {type(res).__name__} has no reset()/run(): it cannot do series tasks"
        )
    res.reset()
    S = res.run(u[: task.test.stop])
    std = _Std(S[task.train])
    y = task.y[:, 0] if task.y.shape[1] == 1 else task.y
    ro = _readout().fit(std(S[task.train]), y[task.train])
    y_pred = ro.predict(std(S[task.test]))
    y_true = y[task.test]
    extra: dict[str, Any] = {"alpha": ro.alpha_}
    if task.metric == "mc":
        value, r2 = memory_capacity(y_pred, y_true)
        extra["r2_per_delay"] = r2.tolist()
    else:
        value = nmse(y_pred, y_true)
        extra["nrmse"] = float(np.sqrt(value))
    return value, np.asarray(y_pred), extra, ro, std


def free_run_nrmse(
    task: SeriesTask, res: SeriesReservoir, readout: RidgeReadout, std: _Std, scaler: MinMaxScaler
) -> float:
    """NRMSE at step ``task.free_run`` of closed-loop runs started every RESYNC_STEPS in the test split.

    A fed-back prediction is clipped to the training range of the series (as a physical input would be
    clipped to its setpoint range), so one diverging trial cannot blow the score up to astronomic values.
    """
    horizon = task.free_run
    u = scaler.transform(task.u)
    lo, hi = float(task.y[task.train, 0].min()), float(task.y[task.train, 0].max())
    res.reset()
    res.run(u[: task.test.start])
    t, errs = task.test.start, []
    while t + RESYNC_STEPS + horizon <= task.test.stop:
        S = res.run(u[t : t + RESYNC_STEPS])
        t += RESYNC_STEPS
        pred = float(np.clip(readout.predict(std(S[-1:])), lo, hi)[0])  # ~ x(t), one step ahead
        for _ in range(horizon - 1):
            S1 = res.run(scaler.transform(np.array([[pred]])))
            pred = float(np.clip(readout.predict(std(S1)), lo, hi)[0])
        errs.append(pred - float(task.y[t - 1 + horizon - 1, 0]))
    var = float(np.var(task.y[task.test, 0]))
    return float(np.sqrt(np.mean(np.square(errs)) / var)) if errs else float("nan")


def run_bench(
    task: str | Task,
    reservoir: str,
    size: int | None = None,
    seeds: int | Sequence[int] = 1,
    options: dict[str, Any] | None = None,
    task_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    with_null: bool = False,
    map_seeds: SeedMapper | None = None,
    null_draws: int = NULL_DRAWS,
) -> BenchResult:
    """Run ``reservoir`` on ``task`` for each seed; ``value`` is the mean metric over seeds.

    ``options`` go to the reservoir factory (e.g. ``substrate`` for asic, ESN hyper-parameters);
    ``task_options`` to :func:`reservoir.tasks.make_task` (``series``, ``horizon``, ``data``, sizes).
    ``with_null``: for a reservoir reporting a noise floor (asic), also run ``poisson-null`` with the same
    seeds, size and slot layout at the mean event rate it measured, and add it as ``summary["null"]``;
    ``null_draws`` Poisson realisations per seed are averaged (:func:`_matched_null`).
    ``map_seeds``: runs :func:`bench_seed` for every seed elsewhere (docs/cluster.md); None runs them here.
    """
    t0 = time.perf_counter()
    tk = make_task(task, **(task_options or {})) if isinstance(task, str) else task
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise ValueError("need at least one seed")
    values: list[float] = []
    extras: list[dict[str, Any]] = []
    first_pred: NDArray[Any] = np.zeros(0)
    state_dim = 0
    noise: dict[str, float] | None = None
    stats: Any = None  # reservoir.asic.NoiseStats, summed over seeds
    floors: list[dict[str, float]] = []  # reservoirs with a floor but no totals: plain mean over seeds
    if map_seeds is None:
        outcomes = []
        for i, seed in enumerate(seed_list):
            if progress:
                progress(f"{tk.name} x {reservoir}: seed {seed} ({i + 1}/{len(seed_list)})")
            outcomes.append(bench_seed(tk, reservoir, size, seed, options, with_info=True))
    else:  # e.g. reservoir.distributed.seed_mapper: one task per seed, results in seed order
        if progress:
            progress(f"{tk.name} x {reservoir}: {len(seed_list)} seed(s) as tasks")
        outcomes = list(map_seeds(tk, reservoir, size, seed_list, options))
    for i, out in enumerate(outcomes):
        if out.noise_stats is not None:  # totals add over seeds: the floor and the null's rate by slots
            stats = out.noise_stats if stats is None else stats + out.noise_stats
            noise = stats.floor()
        elif out.noise_floor is not None:
            floors.append(out.noise_floor)
        values.append(out.value)
        extras.append(out.extra)
        state_dim = out.state_dim
        if i == 0:
            first_pred = out.pred
    if noise is None and floors:
        noise = {k: float(np.mean([f[k] for f in floors])) for k in floors[0]}
    metric = tk.metric if isinstance(tk, SeriesTask) else "accuracy"
    bounds = metric_bounds(metric, tk.y.shape[1] if isinstance(tk, SeriesTask) else 1)
    summary: dict[str, Any] = {
        "task": tk.name,
        "reservoir": reservoir,
        "metric": metric,
        "value": float(np.mean(values)),
        "ci95": _ci_list(values, bounds),
        "seeds": seed_list,
        "per_seed": values,
        "n_train": tk.n_train if isinstance(tk, SeriesTask) else len(tk.y_train),
        "n_test": tk.n_test if isinstance(tk, SeriesTask) else len(tk.y_test),
        "washout": tk.washout if isinstance(tk, SeriesTask) else 0,
        "state_dim": state_dim,
        "size": size,
        "alpha": [e.get("alpha") for e in extras],
        "elapsed_s": round(time.perf_counter() - t0, 3),
    }
    if metric == "nmse":
        summary["nrmse"] = float(np.mean([e["nrmse"] for e in extras]))
    if metric == "mc":  # mean over seeds of r^2 per delay k = 1..K (the report plots it)
        summary["r2_per_delay"] = np.mean([e["r2_per_delay"] for e in extras], axis=0).tolist()
    fr = [k for k in extras[0] if k.startswith("free_run_nrmse")]
    for k in fr:
        summary[k] = float(np.mean([e[k] for e in extras]))
    if isinstance(tk, ClassificationTask):
        summary["n_classes"] = tk.n_classes
        summary["chance"] = float(np.max(np.bincount(tk.y_test)) / len(tk.y_test))
    if noise is not None:
        summary["noise_floor"] = noise
        if with_null and reservoir != "poisson-null":
            summary["null"] = _matched_null(
                tk, size, seed_list, options, noise, stats, progress, map_seeds, null_draws
            )
    y_test: NDArray[Any]
    if isinstance(tk, SeriesTask):
        y_test = tk.y[tk.test, 0] if tk.y.shape[1] == 1 else tk.y[tk.test]
    else:
        y_test = tk.y_test
    infos = [o.info for o in outcomes if o.info is not None]
    extra_out: dict[str, Any] = {"per_seed": extras}
    if infos:
        extra_out["reservoir_info"] = infos
    return BenchResult(summary, np.asarray(y_test), first_pred, extra_out)


def bench_seed(
    tk: Task,
    reservoir: str,
    size: int | None,
    seed: int,
    options: dict[str, Any] | None,
    with_info: bool = False,
) -> SeedOutcome:
    """One seed of :func:`run_bench` (a self-contained, picklable unit of work: a cluster task)."""
    if isinstance(tk, SeriesTask):
        scaler = MinMaxScaler.fit(tk.u[tk.train])
        u = scaler.transform(tk.u)
        spec = ReservoirSpec(tk.u.shape[1], seed, size, "series", dict(options or {}))
        res = make_reservoir(reservoir, spec)
        value, pred, extra, ro, std = _series_seed(tk, res, u)
        if tk.free_run and isinstance(res, SeriesReservoir):
            extra[f"free_run_nrmse_{tk.free_run}"] = free_run_nrmse(tk, res, ro, std, scaler)
        state_dim = int(getattr(res, "state_dim", pred.shape[-1] if pred.ndim > 1 else 0))
    else:
        value, pred, extra, state_dim, res = _classify_seed(tk, reservoir, size, seed, options)
    ns = getattr(res, "noise_stats", None)
    nf = getattr(res, "noise_floor", None)
    info = getattr(res, "info", None) if with_info else None
    return SeedOutcome(
        value,
        np.asarray(pred),
        extra,
        state_dim,
        ns() if callable(ns) else None,
        None if callable(ns) or not callable(nf) else nf(),
        info() if callable(info) else None,
    )


def _matched_null(
    tk: Task,
    size: int | None,
    seeds: list[int],
    options: dict[str, Any] | None,
    noise: dict[str, float],
    stats: Any,
    progress: Progress | None,
    map_seeds: SeedMapper | None = None,
    draws: int = NULL_DRAWS,
) -> dict[str, Any]:
    """poisson-null matched to the asic run: same seeds (so the same input masks), size, slot layout and
    number of chips, at the mean event rate and invalid fraction per chip the run measured (``stats``, a
    ``reservoir.asic.NoiseStats``, when the reservoir keeps totals).

    Each seed's null value is the mean over ``draws`` Poisson realisations (``draw`` 0..draws-1 of
    ``poisson-null``): the null is a distribution, and one draw per seed adds its full sampling noise to the
    paired asic - null difference (memory capacity at 200 test samples: ~0.05 per draw); the mean of K draws
    has 1/sqrt(K) of it. ``per_draw`` keeps every draw (draw 0 is the single-draw null of earlier runs).
    """
    from reservoir.asic import SLOT_NS

    if draws < 1:
        raise ValueError(f"null draws must be >= 1, got {draws}")
    opts = {k: v for k, v in (options or {}).items() if k != "substrate"}
    slot_s = float(opts.get("slot_ns", SLOT_NS)) / 1e9
    rate = noise["mean_count_per_slot"] / slot_s
    opts["rate_hz"] = rate
    if stats is not None:
        opts["n_chips"] = int(stats.n_chips)
        opts["invalid_p"] = float(stats.n_invalid / max(stats.n_events, 1))
    per_draw: list[list[float]] = []
    s: dict[str, Any] = {}
    for k in range(draws):
        if progress and draws > 1:
            progress(f"{tk.name} x poisson-null: draw {k + 1}/{draws}")
        s = run_bench(
            tk, "poisson-null", size, seeds, {**opts, "draw": k}, progress=progress, map_seeds=map_seeds
        ).summary
        per_draw.append(s["per_seed"])
    per_seed = np.mean(per_draw, axis=0).tolist()
    metric = s["metric"]
    bounds = metric_bounds(metric, tk.y.shape[1] if isinstance(tk, SeriesTask) else 1)
    return {
        "value": float(np.mean(per_seed)),
        "ci95": _ci_list(per_seed, bounds),
        "per_seed": per_seed,
        "rate_hz": rate,
        "n_chips": int(opts.get("n_chips", 1)),
        "invalid_p": float(opts.get("invalid_p", 0.01)),
        "state_dim": s["state_dim"],
        "draws": draws,
        "per_draw": per_draw,
    }


def _classify_seed(
    tk: ClassificationTask, reservoir: str, size: int | None, seed: int, options: dict[str, Any] | None
) -> tuple[float, NDArray[Any], dict[str, Any], int, object]:
    scaler = MinMaxScaler.fit(tk.X_train, 0.0, 1.0)
    Xtr, Xte = scaler.transform(tk.X_train), scaler.transform(tk.X_test)
    spec = ReservoirSpec(tk.X_train.shape[1], seed, size, "samples", dict(options or {}))
    res = make_reservoir(reservoir, spec)
    if not isinstance(res, SampleReservoir):
        raise UnsupportedTask(
            f"reservoir {reservoir!r} has no fit_transform()/transform(): no classification"
        )
    Ftr = res.fit_transform(Xtr)
    Fte = res.transform(Xte)
    std = _Std(Ftr)
    clf = RidgeClassifierReadout(alpha="cv").fit(std(Ftr), tk.y_train)
    pred = clf.predict(std(Fte))
    return accuracy(pred, tk.y_test), np.asarray(pred), {"alpha": clf.alpha_}, int(Ftr.shape[1]), res
