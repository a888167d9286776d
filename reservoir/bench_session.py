"""One ``asicrc bench`` run as a library call: the task (``mnist:DIR`` too), :func:`reservoir.bench.run_bench`
with progress notes, and a JSON-safe summary with the spiking reservoirs' ``reservoir_info`` (docs/bench.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from reservoir.bench import NULL_DRAWS, BenchResult, Progress, SeedMapper, run_bench
from reservoir.progress import listening
from reservoir.tasks.base import Task
from reservoir.tasks.mnist import is_mnist, mnist_task

#: Reservoirs whose info() carries a branching factor, reported as summary["reservoir_info"].
SPIKING = ("lsm", "lsm-stdp", "nalsm")


def json_safe(x: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers, tuples -> lists, recursively."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return json_safe(x.item())
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    return x


def reservoir_info(infos: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Mean branching factor and liquid rate over the seeds' ``info()`` dicts, plus each of them (None
    without any)."""
    if not infos:
        return None

    def mean(key: str) -> float:
        vals = [float(d[key]) for d in infos if d.get(key) is not None and math.isfinite(float(d[key]))]
        return float(np.mean(vals)) if vals else math.nan

    return {
        "branching_factor": mean("branching_factor"),
        "branching_factor_per_seed": [d.get("branching_factor") for d in infos],
        "mean_rate_hz": mean("mean_rate_hz"),
        "per_seed": infos,
    }


def bench_task(task: str, task_options: dict[str, Any]) -> str | Task:
    """``task`` as :func:`run_bench` takes it: ``classify`` with ``data="mnist:DIR"`` becomes the IDX task."""
    data = task_options.get("data")
    if task == "classify" and is_mnist(data):
        return mnist_task(str(data), task_options.get("n_train"), task_options.get("n_test"))
    return task


def run_session(
    task: str,
    reservoir: str,
    *,
    size: int | None,
    seeds: int,
    options: dict[str, Any],
    task_options: dict[str, Any],
    with_null: bool = True,
    null_draws: int = NULL_DRAWS,
    map_seeds: SeedMapper | None = None,
    progress: Progress | None = None,
    detail: Callable[[str], None] = lambda _s: None,
    long_run: Any = None,
) -> tuple[BenchResult, dict[str, Any]]:
    """:func:`run_bench` for ``asicrc bench``: the result and its JSON-safe summary (with ``reservoir_info``
    for spiking kinds). ``detail`` receives the inner notes (batches, stage-1 samples). ``long_run``: the
    command's namespace when it may ask a liquid's long run (checkpoints, feature cache, resumable seeds,
    :func:`reservoir.spiking.longrun.long_run`); ValueError when its flags do not apply."""
    the_task = bench_task(task, task_options)
    go = None
    if long_run is not None:
        from reservoir.spiking.longrun import long_run as plan_long_run  # torch only once a liquid is built

        go = plan_long_run(long_run, the_task, task_options, SPIKING)
    with listening(detail):
        if go is not None:
            result = go(options, progress)
        else:
            result = run_bench(
                the_task,
                reservoir,
                size=size,
                seeds=seeds,
                options=options,
                task_options=task_options,
                progress=progress,
                with_null=with_null,
                map_seeds=map_seeds,
                null_draws=null_draws,
            )
    info = reservoir_info(result.extra.get("reservoir_info") or [] if reservoir in SPIKING else [])
    return result, json_safe({**result.summary, "reservoir_info": info} if info else result.summary)
