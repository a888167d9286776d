"""Work across processes and hosts on Dask distributed (docs/cluster.md).

* :func:`connect` opens a :class:`Cluster` session on ``local[:N]`` (a :class:`distributed.LocalCluster`
  of N single-threaded worker processes on 127.0.0.1, no dashboard) or on a running scheduler
  (``tcp://HOST:8786``), after checking that every worker runs the same asicrc version as this process;
* :func:`seed_mapper` runs the seeds of :func:`reservoir.bench.run_bench` as one task each; a seed's
  result does not depend on where it runs, so the summary equals the serial one for the same seeds;
* :func:`map_calls`: any picklable function over a list of arguments, one task each (``asicrc analyze``
  computes its streams' statistics so; the multiple-testing correction stays on the client);
* :func:`sharded_stats` / :func:`fit_sharded`: :class:`reservoir.readout.RidgeStats` of feature shards
  computed on the workers (where the data lives), summed pairwise in a tree on the cluster, one fit at the
  end (equal to the single-process fit to rounding: the statistics merge exactly); ``alpha="cv"`` sums
  per-fold statistics (:func:`sharded_fold_stats`) and picks the alpha here;
* :func:`call_mapper` / :func:`iter_calls`: the points of a grid (e.g. the dose-response benchmark) as tasks.

A task's exception is raised here with its own type and message, as the serial run raises it; a task lost
with a killed worker is re-run by the scheduler (up to ``distributed.scheduler.allowed-failures`` times).
Dask is imported only by :func:`connect`: without a cluster nothing here loads it.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import os
import uuid
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reservoir.bench import SeedMapper, SeedOutcome, bench_seed
from reservoir.cluster_spec import parse_spec
from reservoir.readout import RidgeReadout, RidgeStats
from reservoir.tasks import Task

#: Bound on connecting to a scheduler and on waiting for the first worker (s).
CONNECT_TIMEOUT_S = 30.0

#: A loader run on a worker: shard descriptor -> features X (n, d) and targets y (n,) or (n, k).
ShardLoader = Callable[[Any], tuple[NDArray[Any], NDArray[Any]]]
#: ``run(fn, calls)`` of :func:`call_mapper`: ``fn(*args, **kwargs)`` per ``(args, kwargs)``, in order.
CallMapper = Callable[[Callable[..., Any], Sequence[tuple[tuple[Any, ...], dict[str, Any]]]], Iterator[Any]]


class ClusterError(RuntimeError):
    """The cluster cannot be used: unreachable, no workers, or a worker with another asicrc version."""


def asicrc_version() -> str:
    """The installed asicrc distribution's version (what :func:`connect` compares across workers)."""
    try:
        return importlib.metadata.version("asicrc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


@dataclass
class Cluster:
    """An open client (and the LocalCluster it owns, for ``local``); a context manager closing both."""

    client: Any  # distributed.Client
    spec: str
    local: Any = None  # distributed.LocalCluster, owned
    workers: dict[str, str] = field(default_factory=dict)  # address -> asicrc version

    def close(self) -> None:
        """Close the client, then the local cluster (its worker processes end)."""
        self.client.close()
        if self.local is not None:
            self.local.close()
            self.local = None

    def __enter__(self) -> Cluster:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(spec: str, timeout_s: float | None = None) -> Cluster:
    """Open ``spec`` (see :func:`parse_spec`), wait for a worker and check every worker's asicrc version.

    ``timeout_s`` bounds the connection and the wait for a worker (default :data:`CONNECT_TIMEOUT_S`).

    :class:`ValueError` for a malformed spec, :class:`ClusterError` when the cluster cannot be used.
    """
    address, n = parse_spec(spec)
    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    import logging

    dist: Any = importlib.import_module("distributed")  # untyped constructors: keep them Any
    Client, LocalCluster = dist.Client, dist.LocalCluster

    local = None
    try:
        if address == "local":
            local = LocalCluster(
                n_workers=n or max(os.cpu_count() or 1, 1),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(local, set_as_default=False)
        else:
            client = Client(address, timeout=timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        if local is not None:
            local.close()
        raise ClusterError(f"cannot connect to the cluster at {spec}: {exc}") from exc
    except RuntimeError as exc:  # "Nanny failed to start": e.g. a script without an ``if __name__`` guard
        raise ClusterError(f"cannot start the local cluster {spec}: {exc}") from exc
    cluster = Cluster(client, spec, local)
    try:
        client.wait_for_workers(1, timeout=timeout_s)
        cluster.workers = check_versions(client)
    except BaseException as exc:
        cluster.close()
        if isinstance(exc, (TimeoutError, OSError)):
            raise ClusterError(f"cluster {spec}: no worker joined within {timeout_s:g} s") from exc
        raise
    return cluster


def check_versions(client: Any, expected: str | None = None) -> dict[str, str]:
    """asicrc version per worker; :class:`ClusterError` if a worker cannot import asicrc or its version
    differs from ``expected`` (default: this process's)."""
    mine = asicrc_version() if expected is None else expected
    try:
        versions: dict[str, str] = client.run(asicrc_version)
    except (ImportError, AttributeError) as exc:
        raise ClusterError(f"a worker cannot import asicrc ({exc}); install it on every worker") from exc
    bad = {w: v for w, v in versions.items() if v != mine}
    if bad:
        listed = ", ".join(f"{w} has {v}" for w, v in sorted(bad.items()))
        raise ClusterError(f"worker asicrc version differs from this one ({mine}): {listed}")
    return versions


def gather(client: Any, futures: Any) -> Any:
    """``client.gather``; a task's own exception passes unchanged, a cluster failure becomes ClusterError."""
    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    try:
        return client.gather(futures)
    except KilledWorker as exc:
        raise ClusterError(f"a task lost its worker too often, giving up: {exc}") from exc
    except CommClosedError as exc:
        raise ClusterError(f"lost the connection to the scheduler: {exc}") from exc


def _key(prefix: str) -> str:
    return f"asicrc-{prefix}-{uuid.uuid4().hex[:12]}"


def seed_mapper(client: Any, with_info: bool = True) -> SeedMapper:
    """A ``map_seeds`` for :func:`reservoir.bench.run_bench`: one :func:`bench_seed` task per seed."""

    def run(
        tk: Task, reservoir: str, size: int | None, seeds: list[int], options: dict[str, Any] | None
    ) -> list[SeedOutcome]:
        batch = _key(f"bench-{reservoir}")
        futures = [
            client.submit(bench_seed, tk, reservoir, size, seed, options, with_info, key=f"{batch}-{seed}")
            for seed in seeds
        ]
        try:
            return list(gather(client, futures))
        finally:
            client.cancel(futures)

    return run


def map_calls(
    client: Any,
    fn: Callable[..., Any],
    calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]],
    catch: tuple[type[BaseException], ...] = (),
) -> list[Any]:
    """``fn(*args, **kwargs)`` for every ``(args, kwargs)`` of ``calls`` as one task each; results in order.

    An exception of a type in ``catch`` is returned in its call's place (the caller decides, as its serial
    loop would); any other task exception is raised unchanged.
    """
    batch = _key(getattr(fn, "__name__", "call"))
    futures = [client.submit(fn, *a, key=f"{batch}-{i}", **kw) for i, (a, kw) in enumerate(calls)]
    out: list[Any] = []
    try:
        for f in futures:
            try:
                out.append(gather(client, f))
            except catch as exc:
                out.append(exc)
    finally:
        client.cancel(futures)
    return out


def load_npz(path: str | os.PathLike[str]) -> tuple[NDArray[Any], NDArray[Any]]:
    """Shard loader: arrays ``X`` and ``y`` of a .npz file on the worker's file system."""
    with np.load(path) as z:
        return np.asarray(z["X"]), np.asarray(z["y"])


def shard_stats(load: ShardLoader, shard: Any) -> RidgeStats:
    """:class:`RidgeStats` of one shard, computed where it is loaded."""
    X, y = load(shard)
    return RidgeStats.from_arrays(X, y)


def _add(*parts: RidgeStats) -> RidgeStats:
    total = parts[0]
    for p in parts[1:]:
        total = total + p
    return total


def tree_sum(client: Any, futures: Sequence[Any], fan_in: int = 2, keep: list[Any] | None = None) -> Any:
    """Sum futures of :class:`RidgeStats` on the cluster in a tree of ``fan_in``-ary additions; a future.

    ``keep`` receives every intermediate future: hold them until the result is gathered.
    """
    if not futures:
        raise ValueError("tree_sum needs at least one shard")
    if fan_in < 2:
        raise ValueError(f"fan_in must be >= 2, got {fan_in}")
    level, depth = list(futures), 0
    batch = _key("sum")
    while len(level) > 1:
        groups = [level[i : i + fan_in] for i in range(0, len(level), fan_in)]
        level = [
            g[0] if len(g) == 1 else client.submit(_add, *g, key=f"{batch}-{depth}-{j}")
            for j, g in enumerate(groups)
        ]
        if keep is not None:
            keep.extend(level)
        depth += 1
    return level[0]


def sharded_stats(
    client: Any,
    shards: Sequence[Hashable],
    load: ShardLoader = load_npz,
    workers: Sequence[str | None] | None = None,
    fan_in: int = 2,
) -> RidgeStats:
    """Statistics of every shard (``load(shard)`` on a worker), tree-summed on the cluster.

    ``workers``: per shard, the worker address holding its data (None: any worker); a pinned shard runs only
    there.
    """
    if workers is not None and len(workers) != len(shards):
        raise ValueError(f"workers has {len(workers)} entries for {len(shards)} shards")
    batch = _key("shard")
    futures = []
    for i, shard in enumerate(shards):
        where = None if workers is None else workers[i]
        pin: dict[str, Any] = {} if where is None else {"workers": [where], "allow_other_workers": False}
        futures.append(client.submit(shard_stats, load, shard, key=f"{batch}-{i}", **pin))
    held: list[Any] = []
    total = tree_sum(client, futures, fan_in, held)
    return gather(client, total)  # type: ignore[no-any-return]


def _rows(data: tuple[NDArray[Any], NDArray[Any]]) -> int:
    return int(data[0].shape[0])


def fold_bounds(n_rows: int, n_folds: int) -> NDArray[np.int64]:
    """Global row index bounds of ``n_folds`` contiguous folds, as :class:`RidgeReadout` cuts them."""
    return np.linspace(0, n_rows, n_folds + 1).astype(np.int64)


def fold_stats(
    data: tuple[NDArray[Any], NDArray[Any]], offset: int, bounds: NDArray[Any]
) -> list[RidgeStats]:
    """Per-fold :class:`RidgeStats` of one shard whose first row is global row ``offset`` (a fold the shard
    does not reach is empty)."""
    X, y = np.asarray(data[0], dtype=np.float64), np.asarray(data[1], dtype=np.float64)
    k = y.shape[1] if y.ndim == 2 else 1
    out = []
    for a, b in itertools.pairwise(bounds):
        lo, hi = max(int(a) - offset, 0), min(int(b) - offset, X.shape[0])
        out.append(RidgeStats.from_arrays(X[lo:hi], y[lo:hi]) if hi > lo else RidgeStats.empty(X.shape[1], k))
    return out


def _add_folds(*parts: list[RidgeStats]) -> list[RidgeStats]:
    return [_add(*fold) for fold in zip(*parts, strict=True)]


def sharded_fold_stats(
    client: Any,
    shards: Sequence[Hashable],
    n_folds: int,
    load: ShardLoader = load_npz,
    workers: Sequence[str | None] | None = None,
    fan_in: int = 2,
) -> list[RidgeStats]:
    """Per-fold statistics of the shards taken in order as one sequence of rows (folds cut by global row
    index, as :meth:`RidgeReadout.fit` cuts one array): each shard is loaded once on a worker and kept
    there while its row count travels here; its folds' statistics are summed fold by fold in a tree."""
    if workers is not None and len(workers) != len(shards):
        raise ValueError(f"workers has {len(workers)} entries for {len(shards)} shards")
    if not shards:
        raise ValueError("sharded_fold_stats needs at least one shard")
    batch = _key("cv")
    held: list[Any] = []
    for i, shard in enumerate(shards):
        where = None if workers is None else workers[i]
        pin: dict[str, Any] = {} if where is None else {"workers": [where], "allow_other_workers": False}
        held.append(client.submit(load, shard, key=f"{batch}-load-{i}", **pin))
    counts = [client.submit(_rows, d, key=f"{batch}-rows-{i}") for i, d in enumerate(held)]
    rows = [int(r) for r in gather(client, counts)]
    bounds = fold_bounds(sum(rows), n_folds)
    offsets = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(int)
    parts = [
        client.submit(fold_stats, d, int(o), bounds, key=f"{batch}-folds-{i}")
        for i, (d, o) in enumerate(zip(held, offsets, strict=True))
    ]
    level, depth = parts, 0
    while len(level) > 1:  # tree of fold-wise sums, as tree_sum
        groups = [level[i : i + fan_in] for i in range(0, len(level), fan_in)]
        level = [
            g[0] if len(g) == 1 else client.submit(_add_folds, *g, key=f"{batch}-sum-{depth}-{j}")
            for j, g in enumerate(groups)
        ]
        held.extend(level)
        depth += 1
    try:
        return list(gather(client, level[0]))
    finally:
        client.cancel([*held, *counts, *parts])


def fit_sharded(
    client: Any,
    shards: Sequence[Hashable],
    readout: RidgeReadout,
    load: ShardLoader = load_npz,
    workers: Sequence[str | None] | None = None,
) -> RidgeReadout:
    """Fit ``readout`` once on the tree-summed statistics of the shards (taken in order as one sequence).

    ``alpha="cv"``: the per-fold statistics (:func:`sharded_fold_stats`, ``readout.n_folds`` contiguous folds
    by global row index) are summed on the cluster and the alpha is chosen here from them, as
    :meth:`RidgeReadout.fit` chooses it on the concatenated shards.
    """
    if readout.alpha == "cv":
        return readout.fit_stats(sharded_fold_stats(client, shards, int(readout.n_folds), load, workers))
    return readout.fit_stats(sharded_stats(client, shards, load, workers))


def iter_calls(
    client: Any, fn: Callable[..., Any], calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
) -> Iterator[Any]:
    """``fn(*args, **kwargs)`` of every call as one task, all submitted at once; results yielded in order
    as they are ready (a task's exception is raised at its turn, unchanged)."""
    batch = _key(getattr(fn, "__name__", "call"))
    futures = [client.submit(fn, *a, key=f"{batch}-{i}", **kw) for i, (a, kw) in enumerate(calls)]
    try:
        for f in futures:
            yield gather(client, f)
    finally:
        client.cancel(futures)


def map_grid(spec: str | None, fn: Callable[..., Any], points: Sequence[tuple[Any, ...]]) -> Iterator[Any]:
    """``fn(*point)`` for every point, yielded in order: here without ``spec``, else as tasks on the cluster
    ``spec``, open while the iterator is consumed (closed when it is exhausted or closed)."""
    with call_mapper(spec) as run:
        yield from run(fn, [(tuple(p), {}) for p in points])


@contextmanager
def call_mapper(spec: str | None) -> Iterator[CallMapper]:
    """A ``run(fn, calls)`` yielding ``fn(*args, **kwargs)`` per call in order: here, one after the other,
    when ``spec`` is None (Dask is then not imported); else as tasks on the cluster ``spec`` (see
    :func:`connect`), which stays open for the block. For grids of independent points (benchmarks)."""
    if spec is None:
        yield lambda fn, calls: (fn(*a, **kw) for a, kw in calls)
        return
    with connect(spec) as cluster:
        yield lambda fn, calls: iter_calls(cluster.client, fn, calls)
