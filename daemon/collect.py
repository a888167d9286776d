"""Fleet collector: many hosts' MQTT event batches -> one central recording, and their readout statistics
summed into one fitted readout (``asicrc collect``; topics and formats in ``docs/mqtt.md``).

- ``<root>/<host>/events/<board>``: Arrow IPC stream in ``EVENT_SCHEMA`` (``daemon.mqtt.encode_events``).
  Rows are recorded with the :class:`~daemon.recorder.Recorder` under the board name ``<host>/<board>``.
- ``<root>/<host>/readout/stats``: that host's running :class:`~reservoir.readout.RidgeStats` (``.npz``
  bytes of ``RidgeStats.to_bytes`` or the JSON of ``RidgeStats.to_dict``). The latest message per host
  replaces the previous one (hosts publish running totals, retained), so QoS-1 redeliveries never double
  count; the hosts' statistics are summed into one :class:`~reservoir.readout.RidgeReadout` saved as
  ``<out>/readout.npz`` (:func:`save_readout`).

A malformed message (bad topic, not an Arrow stream, wrong schema, undecodable or mis-shaped statistics) is
counted by reason and logged once per reason; nothing a host sends can stop the collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from daemon.event_format import LEGACY_NAMES, upgrade_events
from daemon.events import EVENT_SCHEMA, Subscription
from daemon.mqtt import decode_events
from daemon.mqtt_link import MqttLink, MqttSettings
from daemon.recorder import Recorder, RecorderPolicy
from reservoir.readout import RidgeReadout, RidgeStats

log = logging.getLogger(__name__)

#: Batches waiting for the recorder (one MQTT message = one batch); beyond this they are dropped, counted.
RECORDER_QUEUE = 4096
#: Version tag of the readout file written by :func:`save_readout`.
READOUT_FORMAT = "asicrc-readout/1"
#: Statistics keys inside a readout file (``stats_<key>``), as in ``RidgeStats.to_dict``.
STATS_KEYS = ("n", "rows", "x_mean", "y_mean", "cxx", "cxy", "cyy")

OnMessage = Callable[[str, bytes], object]


# --------------------------------------------------------------------------------------------- parsing


def parse_topic(topic: str, root: str) -> tuple[str, str, str] | None:
    """``(host, kind, rest)`` of ``<root>/<host>/events/<board>`` (kind ``events``, rest the board) or
    ``<root>/<host>/readout/stats`` (kind ``stats``, rest ``""``); None for anything else."""
    parts = topic.split("/")
    want = root.split("/")
    n = len(want)
    if parts[:n] != want or len(parts) != n + 3 or not parts[n]:
        return None
    host, kind, rest = parts[n], parts[n + 1], parts[n + 2]
    if kind == "events" and rest:
        return host, "events", rest
    if kind == "readout" and rest == "stats":
        return host, "stats", ""
    return None


def relabel_events(table: pa.Table, host: str) -> list[pa.RecordBatch]:
    """Batches of ``table`` (must be in :data:`EVENT_SCHEMA`) with every board renamed ``<host>/<board>``.

    Raises ``ValueError`` naming the difference when the schema is not the event schema (an older format's
    is upgraded, :func:`daemon.event_format.upgrade_events`).
    """
    if tuple(table.schema.names) == LEGACY_NAMES:
        table = upgrade_events(table)
    if not table.schema.equals(EVENT_SCHEMA):
        got = {f.name: str(f.type) for f in table.schema}
        want = {f.name: str(f.type) for f in EVENT_SCHEMA}
        diff = sorted(set(got.items()) ^ set(want.items()))
        raise ValueError(f"not the event schema; differing columns: {diff[:6]}")
    out: list[pa.RecordBatch] = []
    for batch in table.to_batches():
        if batch.num_rows == 0:
            continue
        col = batch.column(2)
        names = [f"{host}/{b}" for b in col.dictionary.to_pylist()]
        board = pa.DictionaryArray.from_arrays(col.indices, pa.array(names, pa.string()))
        out.append(batch.set_column(2, EVENT_SCHEMA.field(2), board))
    return out


def decode_stats(payload: bytes) -> RidgeStats:
    """:class:`RidgeStats` from ``.npz`` bytes (``to_bytes``) or JSON (``to_dict``); else ``ValueError``."""
    try:
        if payload[:2] == b"PK":  # a zip archive: np.savez
            stats = RidgeStats.from_bytes(payload)
        else:
            obj = json.loads(payload.decode("utf-8"))
            if not isinstance(obj, dict):
                raise ValueError("JSON statistics must be an object")
            stats = RidgeStats.from_dict(obj)
    except ValueError:
        raise
    except Exception as exc:  # zip/npz/unicode/shape errors of hostile payloads
        raise ValueError(f"undecodable statistics: {type(exc).__name__}: {exc}") from exc
    arrays = (stats.x_mean, stats.y_mean, stats.cxx, stats.cxy, stats.cyy)
    if not (stats.n >= 0 and stats.rows >= 0 and all(np.isfinite(a).all() for a in arrays)):
        raise ValueError("statistics hold negative counts or non-finite values")
    if stats.x_mean.size == 0 or stats.y_mean.size == 0:
        raise ValueError("statistics have no features or no targets")
    return stats


# --------------------------------------------------------------------------------------------- summing


class StatsSum:
    """The latest :class:`RidgeStats` of each host and their sum; every host must have the same shape."""

    def __init__(self) -> None:
        self.by_host: dict[str, RidgeStats] = {}

    @property
    def shape(self) -> tuple[int, int] | None:
        """(features, targets) of the statistics held, None when empty."""
        for s in self.by_host.values():
            return int(s.x_mean.size), int(s.y_mean.size)
        return None

    def update(self, host: str, stats: RidgeStats) -> None:
        """Replace ``host``'s statistics; ``ValueError`` when the shape differs from the other hosts'."""
        shape = (int(stats.x_mean.size), int(stats.y_mean.size))
        others = {h: s for h, s in self.by_host.items() if h != host}
        for h, s in others.items():
            if (int(s.x_mean.size), int(s.y_mean.size)) != shape:
                raise ValueError(
                    f"statistics of {host} have {shape[0]} features x {shape[1]} targets but {h} has "
                    f"{s.x_mean.size} x {s.y_mean.size}"
                )
        self.by_host[host] = stats

    def total(self) -> RidgeStats:
        """Sum over hosts (``ValueError`` when empty)."""
        if not self.by_host:
            raise ValueError("no readout statistics received")
        items = [self.by_host[h] for h in sorted(self.by_host)]
        total = items[0]
        for s in items[1:]:
            total = total + s
        return total

    def fit(self, alpha: float | str = "gcv") -> RidgeReadout:
        """One readout from the summed statistics; ``alpha="cv"`` uses each host as a fold (>= 2 hosts)."""
        if alpha == "cv":
            folds = [self.by_host[h] for h in sorted(self.by_host)]
            return RidgeReadout(alpha="cv", n_folds=len(folds)).fit_stats(folds)
        return RidgeReadout(alpha=alpha).fit_stats(self.total())


# --------------------------------------------------------------------------------------------- readout file


def save_readout(
    path: Path, readout: RidgeReadout, *, hosts: Sequence[str] = (), meta: Mapping[str, Any] | None = None
) -> None:
    """Write a fitted readout as ``.npz`` (no pickles), atomically (temp file, fsync, rename).

    Keys: ``format`` (:data:`READOUT_FORMAT`), ``coef`` (k, d), ``intercept`` (k,), ``alpha``, ``y_1d``,
    ``fit_intercept``, ``stats_<n|rows|x_mean|y_mean|cxx|cxy|cyy>`` (the summed sufficient statistics),
    ``hosts`` (str array) and ``meta`` (a JSON object as a string, e.g. the live reservoir's parameters).
    """
    stats: RidgeStats = readout.stats_
    coef = np.atleast_2d(np.asarray(readout.coef_, dtype=np.float64))
    arrays: dict[str, Any] = {
        "format": np.array(READOUT_FORMAT),
        "coef": coef,
        "intercept": np.atleast_1d(np.asarray(readout.intercept_, dtype=np.float64)),
        "alpha": np.array(float(readout.alpha_)),
        "y_1d": np.array(bool(np.ndim(readout.coef_) == 1)),
        "fit_intercept": np.array(bool(readout.fit_intercept)),
        "hosts": np.array(list(hosts), dtype=np.str_),
        "meta": np.array(json.dumps(dict(meta or {}), sort_keys=True)),
    }
    for k, v in stats.to_dict().items():
        arrays[f"stats_{k}"] = np.asarray(v)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass(frozen=True)
class ReadoutFile:
    """What :func:`load_readout` returns: the refitted readout, the hosts and the meta object."""

    readout: RidgeReadout
    hosts: tuple[str, ...]
    meta: dict[str, Any]


def load_readout(path: Path) -> ReadoutFile:
    """Read :func:`save_readout`'s file; the readout is refitted from its statistics at the stored alpha
    (identical coefficients) so it can also be extended with ``partial_fit``. ``ValueError`` if invalid."""
    with np.load(Path(path), allow_pickle=False) as z:
        files = set(z.files)
        if "format" not in files or str(z["format"]) != READOUT_FORMAT:
            raise ValueError(f"{path}: not an {READOUT_FORMAT} file")
        stats = RidgeStats.from_dict({k: z[f"stats_{k}"] for k in STATS_KEYS})
        alpha = float(z["alpha"])
        y_1d = bool(z["y_1d"])
        fit_intercept = bool(z["fit_intercept"])
        hosts = tuple(str(h) for h in z["hosts"].tolist())
        meta = json.loads(str(z["meta"]))
    readout = RidgeReadout(alpha=alpha, fit_intercept=fit_intercept).fit_stats(stats, y_1d=y_1d)
    return ReadoutFile(readout, hosts, meta)


# --------------------------------------------------------------------------------------------- collector


@dataclass
class CollectStats:
    """What the collector has seen: messages, rows, hosts, malformed messages by reason."""

    event_messages: int = 0
    event_rows: int = 0
    stats_messages: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    hosts: set[str] = field(default_factory=set)

    @property
    def malformed_total(self) -> int:
        return sum(self.malformed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "event_messages": self.event_messages,
            "event_rows": self.event_rows,
            "stats_messages": self.stats_messages,
            "malformed": dict(sorted(self.malformed.items())),
            "malformed_total": self.malformed_total,
            "hosts": sorted(self.hosts),
        }


class Collector:
    """Routes broker messages to the recorder (events) and the statistics sum (readout stats).

    :meth:`handle` is synchronous and never raises; :meth:`start` / :meth:`finish` run the recorder task
    and write ``readout.npz``. ``alpha``: float, ``"gcv"`` or ``"cv"`` (hosts as folds).
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        topic_root: str = "asicrc",
        alpha: float | str = "gcv",
        policy: RecorderPolicy | None = None,
        meta: Mapping[str, Any] | None = None,
        queue: int = RECORDER_QUEUE,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.topic_root = topic_root
        self.alpha = alpha
        self.stats = CollectStats()
        self.sums = StatsSum()
        self.recorder = Recorder(
            self.out_dir, policy=policy, meta={"collector": True, "topic_root": topic_root, **(meta or {})}
        )
        self.sub = Subscription("collect", queue, logs=False)
        self.saved_readout: Path | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def topics(self) -> list[str]:
        """Subscriptions: every host's events and readout statistics."""
        r = self.topic_root
        return [f"{r}/+/events/+", f"{r}/+/readout/stats"]

    @property
    def readout_path(self) -> Path:
        return self.out_dir / "readout.npz"

    def _malformed(self, reason: str, topic: str, detail: object) -> None:
        n = self.stats.malformed.get(reason, 0)
        if n == 0:
            log.warning("collect: malformed message on %s (%s): %s", topic, reason, detail)
        self.stats.malformed[reason] = n + 1

    def handle(self, topic: str, payload: bytes) -> None:
        """One broker message. Malformed ones are counted by reason (logged once per reason)."""
        parsed = parse_topic(topic, self.topic_root)
        if parsed is None:
            self._malformed("topic", topic, "not <root>/<host>/events/<board> or <root>/<host>/readout/stats")
            return
        host, kind, _ = parsed
        if kind == "stats":
            try:
                self.sums.update(host, decode_stats(payload))
            except ValueError as exc:
                self._malformed("stats", topic, exc)
                return
            self.stats.stats_messages += 1
            self.stats.hosts.add(host)
            return
        try:
            batches = relabel_events(decode_events(payload), host)
        except (ValueError, pa.ArrowException) as exc:
            self._malformed("events", topic, exc)
            return
        self.stats.event_messages += 1
        self.stats.hosts.add(host)
        for b in batches:
            self.stats.event_rows += b.num_rows
            self.sub.offer(b)

    @property
    def dropped_rows(self) -> int:
        """Event rows dropped because the recorder fell behind."""
        return self.sub.stats.dropped_rows

    def start(self) -> None:
        """Start the recorder task (call from the running loop)."""
        self._task = asyncio.create_task(self.recorder.run(self.sub), name="collect-recorder")

    async def finish(self) -> Path | None:
        """Close the recording (flush, finish segments) and save ``readout.npz`` when statistics arrived;
        returns the readout path or None."""
        self.sub.close()
        if self._task is not None:
            await self._task
            self._task = None
        if not self.sums.by_host:
            return None
        try:
            readout = await asyncio.to_thread(self.sums.fit, self.alpha)
        except ValueError as exc:
            log.error("collect: cannot fit the summed readout: %s", exc)
            return None
        hosts = sorted(self.sums.by_host)
        meta = {"hosts": hosts, "rows": int(readout.stats_.rows), "created_unix_ns": time.time_ns()}
        await asyncio.to_thread(save_readout, self.readout_path, readout, hosts=hosts, meta=meta)
        log.info("collect: readout of %d host(s) saved to %s", len(hosts), self.readout_path)
        self.saved_readout = self.readout_path
        return self.readout_path


async def run_collector(
    collector: Collector,
    settings: MqttSettings,
    stop: asyncio.Event,
    *,
    identifier: str,
    ready: Callable[[], None] | None = None,
) -> MqttLink:
    """Run ``collector`` on ``settings``' broker until ``stop`` is set, then finish it (recording closed,
    readout saved). ``ready`` is called once the subscriptions are in place. Returns the loop (its stats)."""
    loop = MqttLink(settings, collector.topics, collector.handle, identifier=identifier)
    collector.start()
    task = asyncio.create_task(loop.run(), name="collect-mqtt")
    try:
        if ready is not None:
            waiter = asyncio.create_task(loop.subscribed.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, stopper):
                t.cancel()
            await asyncio.gather(waiter, stopper, return_exceptions=True)
            if loop.subscribed.is_set():
                ready()
        await stop.wait()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await collector.finish()
    return loop
