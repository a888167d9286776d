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
  end (equal to the single-process fit to rounding: the statistics merge exactly).

A task's exception is raised here with its own type and message, as the serial run raises it; a task lost
with a killed worker is re-run by the scheduler (up to ``distributed.scheduler.allowed-failures`` times).
Dask is imported only by :func:`connect`: without a cluster nothing here loads it.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import uuid
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
from numpy.typing import NDArray

from reservoir.bench import SeedMapper, SeedOutcome, bench_seed
from reservoir.readout import RidgeReadout, RidgeStats
from reservoir.tasks import Task

#: Bound on connecting to a scheduler and on waiting for the first worker (s).
CONNECT_TIMEOUT_S = 30.0
#: ``tcp://host:port``, ``tls://host:port`` or ``host:port``.
_ADDRESS = re.compile(r"^(?:(?:tcp|tls)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")

#: A loader run on a worker: shard descriptor -> features X (n, d) and targets y (n,) or (n, k).
ShardLoader = Callable[[Any], tuple[NDArray[Any], NDArray[Any]]]


class ClusterError(RuntimeError):
    """The cluster cannot be used: unreachable, no workers, or a worker with another asicrc version."""


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``local`` -> ("local", None); ``local:N`` -> ("local", N); an address -> (address, None).

    :class:`ValueError` (one line) on anything else.
    """
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        _, _, n = spec.partition(":")
        if not n:
            return "local", None
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster local:N needs N >= 1 workers, got {spec!r}")
        return "local", int(n)
    if not _ADDRESS.match(spec):
        raise ValueError(f"--cluster expects local, local:N or tcp://HOST:PORT, got {spec!r}")
    return spec, None


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


def _gather(client: Any, futures: Any) -> Any:
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
            return list(_gather(client, futures))
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
                out.append(_gather(client, f))
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
    return _gather(client, total)  # type: ignore[no-any-return]


def fit_sharded(
    client: Any,
    shards: Sequence[Hashable],
    readout: RidgeReadout,
    load: ShardLoader = load_npz,
    workers: Sequence[str | None] | None = None,
) -> RidgeReadout:
    """Fit ``readout`` (a float alpha or ``"gcv"``) once on the tree-summed statistics of the shards."""
    if readout.alpha == "cv":
        raise ValueError("fit_sharded: alpha='cv' needs per-fold statistics; use a float alpha or 'gcv'")
    return readout.fit_stats(sharded_stats(client, shards, load, workers))
