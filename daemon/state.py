"""The daemon's live counters: boards, recorder, pipeline (frozen per-board views: :mod:`daemon.status`).

Board supervisors write setpoints, sensor readings and link counters straight into their :class:`BoardState`;
nonce counters, estimated hashes and the inter-arrival histogram are updated from event batches by
:meth:`DaemonState.update_from_events` (vectorised), which is meant to be registered as a pipeline listener::

    pipeline.add_listener("state", state.update_from_events)

Everything here is plain data on one event loop: no locks, no I/O. Readers (``/status``, MQTT, metrics,
the status line) take :meth:`DaemonState.snapshots` rather than reading these objects.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from daemon.events import EVENT_SCHEMA, Pipeline
from daemon.status import BoardSession, BoardSnapshot, daemon_status, snapshot_board

if TYPE_CHECKING:  # the bridge (and aiomqtt) is only imported when MQTT is enabled
    from daemon.mqtt import MqttStats

#: Inter-arrival histogram upper bounds in seconds: 1-2-5 steps from 100 us to 100 s (docs/architecture.md).
INTERARRIVAL_BUCKETS_S: tuple[float, ...] = (
    *(round(m * 10.0**e, 12) for e in range(-4, 2) for m in (1.0, 2.0, 5.0)),
    100.0,
)

#: Bucket bounds in integer ns (the fold compares integers: no float conversion per event).
_BUCKETS_NS = np.array([round(b * 1e9) for b in INTERARRIVAL_BUCKETS_S], np.int64)

#: Column positions in EVENT_SCHEMA (lookup by index is cheaper than by name on the hot path).
_COL_T = EVENT_SCHEMA.get_field_index("t_ns")
_COL_CHIP = EVENT_SCHEMA.get_field_index("chip")
_COL_VALID = EVENT_SCHEMA.get_field_index("valid")
_COL_TICKET = EVENT_SCHEMA.get_field_index("ticket_diff")

#: Window over which /status computes the nonce rate (s); long enough to average a few job rotations.
RATE_WINDOW_NS = 10_000_000_000

#: Hashes represented by one share at difficulty 1 (2^32, the Bitcoin difficulty-1 target).
HASHES_PER_DIFF1 = float(2**32)

#: Board status values; ``failed`` boards make /healthz report 503 when every board is failed.
BOARD_STATUSES = ("starting", "connected", "reconnecting", "safe", "overheat", "failed", "stopped")


@dataclass(slots=True)
class PlanProgress:
    """Progress of the plan running on a board: point ``i`` (0-based) of ``n``; ``eta_s`` seconds left."""

    name: str
    kind: str = "sweep"
    i: int = 0
    n: int = 0
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        """Completed fraction 0..1 (points done / points)."""
        return 0.0 if self.n <= 0 else min(1.0, max(0.0, self.i / self.n))

    def to_status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "point": self.i,
            "points": self.n,
            "fraction": self.fraction,
            "eta_s": self.eta_s,
        }


@dataclass(slots=True)
class BoardState:
    """One board: identity, link state, setpoints in force, per-chip counters, sensors, safety counts.

    Units: volts, MHz, degrees Celsius, watts, seconds. Counters only grow (the supervisor accumulates link
    counters across reconnects).
    """

    name: str
    kind: str = "unknown"
    chips: int = 1
    connected: bool = False
    status: str = "starting"
    link: str = ""
    # setpoints in force
    voltage_v: float = 0.0
    freq_mhz: float = 0.0
    ticket_diff: float = 0.0
    # per-chip counters (length >= chips; grow when a higher chip index shows up)
    nonces: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    invalid: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    estimated_hashes: float = 0.0
    # inter-arrival histogram of all nonces of the board: counts per bucket, last entry is +Inf
    hist_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(INTERARRIVAL_BUCKETS_S) + 1, np.int64)
    )
    hist_sum_s: float = 0.0
    hist_count: int = 0
    last_t_ns: int | None = None
    # sensors (None until read)
    chip_temp_c: float | None = None
    vr_temp_c: float | None = None
    power_w: float | None = None
    vin_v: float | None = None
    fan_rpm: float | None = None
    fan_duty: float | None = None
    # link counters
    crc_errors: int = 0
    dropped_bytes: int = 0
    reconnects: int = 0
    telemetry_errors: int = 0  # failed sensor reads (the data link stays up: docs/drivers.md)
    # safety gate actions: (action "refused"|"clamped", reason) -> count
    safety: dict[tuple[str, str], int] = field(default_factory=dict)
    # safety trips (board forced to its safe state): reason ("brownout", "chip_overheat", ...) -> count
    trips: dict[str, int] = field(default_factory=dict)
    plan: PlanProgress | None = None
    # bring-up (daemon/bringup.py): came up at least once; failed attempts by reason; the latest reason
    # while the board is not up; since when it has been waiting to come up (clock ns; None once up)
    ever_up: bool = False
    bringup_failures: dict[str, int] = field(default_factory=dict)
    bringup_error: str | None = None
    not_up_since_ns: int | None = None
    # the board session (supervisor) whose link and envelope counters snapshots include; set by
    # DaemonState.attach_session once the supervisor exists (it is built with this BoardState)
    session: BoardSession | None = None
    _rate: deque[tuple[int, int]] = field(default_factory=deque)
    _total: int = 0

    def __post_init__(self) -> None:
        if len(self.nonces) < self.chips:
            self._grow(self.chips)

    def _grow(self, n: int) -> None:
        for attr in ("nonces", "invalid"):
            old = getattr(self, attr)
            new = np.zeros(n, np.int64)
            new[: len(old)] = old
            setattr(self, attr, new)

    def set_setpoint(self, voltage_v: float, freq_mhz: float, ticket_diff: float) -> None:
        """Record the setpoint in force (after the safety gate)."""
        self.voltage_v, self.freq_mhz, self.ticket_diff = (
            float(voltage_v),
            float(freq_mhz),
            float(ticket_diff),
        )

    def count_safety(self, action: str, reason: str, n: int = 1) -> None:
        """Count a safety-gate action (``refused`` or ``clamped``) for ``reason`` (e.g. ``freq_max``)."""
        key = (action, reason)
        self.safety[key] = self.safety.get(key, 0) + n

    def set_trips(self, trips: Mapping[str, int]) -> None:
        """Record the safety-envelope trip counts by reason (cumulative; copied from the envelope)."""
        self.trips = {str(k): int(v) for k, v in trips.items() if v}

    @property
    def nonces_total(self) -> int:
        return int(self.nonces.sum())

    @property
    def invalid_total(self) -> int:
        return int(self.invalid.sum())

    def update(self, batch: pa.RecordBatch) -> None:
        """Add one event batch of this board to the counters and the histogram (vectorised)."""
        n = batch.num_rows
        if n == 0:
            return
        chip = batch.column(_COL_CHIP).to_numpy()
        valid = batch.column(_COL_VALID).to_numpy(zero_copy_only=False)
        t_ns = batch.column(_COL_T).to_numpy()
        lo, hi = int(chip.min()), int(chip.max())
        if hi >= len(self.nonces):
            self._grow(hi + 1)
        size = len(self.nonces)
        # one bincount for both counters: slot 2*chip holds valid, 2*chip+1 invalid nonces
        key = chip.astype(np.intp) * 2 + ~valid
        if lo < 0:
            key = key[chip >= 0]
        both = np.bincount(key, minlength=2 * size).reshape(size, 2)
        self.nonces += both[:, 0] + both[:, 1]
        self.invalid += both[:, 1]
        self._total += len(key)
        ticket = batch.column(_COL_TICKET).to_numpy()
        self.estimated_hashes += float(ticket[valid].sum(dtype=np.float64)) * HASHES_PER_DIFF1
        # inter-arrival times across batches on integer ns edges; out-of-order stamps count as 0
        if self.last_t_ns is None:
            dt_ns = t_ns[1:] - t_ns[:-1]
        else:
            dt_ns = np.empty(n, np.int64)
            dt_ns[0] = t_ns[0] - self.last_t_ns
            np.subtract(t_ns[1:], t_ns[:-1], out=dt_ns[1:])
        self.last_t_ns = int(t_ns[-1])
        if len(dt_ns):
            np.maximum(dt_ns, 0, out=dt_ns)
            idx = np.searchsorted(_BUCKETS_NS, dt_ns, side="left")
            self.hist_counts += np.bincount(idx, minlength=len(self.hist_counts))
            self.hist_sum_s += int(dt_ns.sum()) * 1e-9
            self.hist_count += len(dt_ns)
        # rate window
        self._rate.append((self.last_t_ns, self._total))
        while len(self._rate) > 2 and self._rate[-1][0] - self._rate[1][0] >= RATE_WINDOW_NS:
            self._rate.popleft()

    @property
    def nonce_rate_hz(self) -> float:
        """Nonces per second over the last :data:`RATE_WINDOW_NS` of event time (0 until two batches)."""
        if len(self._rate) < 2:
            return 0.0
        (t0, c0), (t1, c1) = self._rate[0], self._rate[-1]
        return 0.0 if t1 <= t0 else (c1 - c0) * 1e9 / (t1 - t0)

    def snapshot(self) -> BoardSnapshot:
        """A frozen copy of this board plus its attached session's link and envelope counters."""
        return snapshot_board(self, self.session)

    def to_status(self) -> dict[str, Any]:
        """JSON-able summary of the board for ``/status`` (from :meth:`snapshot`)."""
        return self.snapshot().to_status()


@dataclass(slots=True)
class RecorderStats:
    """Counters the recorder keeps (read by metrics and /status). Rows are event rows unless named log."""

    path: str = ""
    rows: int = 0
    log_rows: int = 0
    bytes: int = 0
    batches: int = 0
    segments: int = 0
    recovered_segments: int = 0
    recovered_rows: int = 0
    write_errors: int = 0
    error_dropped_rows: int = 0  # event rows lost to write errors
    error_dropped_log_rows: int = 0  # log rows lost to write errors
    rejected_rows: int = 0  # rows of batches in neither the event nor the log schema
    healthy: bool = True
    last_error: str | None = None

    def to_status(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "rows": self.rows,
            "log_rows": self.log_rows,
            "bytes": self.bytes,
            "batches": self.batches,
            "segments": self.segments,
            "recovered_segments": self.recovered_segments,
            "recovered_rows": self.recovered_rows,
            "write_errors": self.write_errors,
            "error_dropped_rows": self.error_dropped_rows,
            "error_dropped_log_rows": self.error_dropped_log_rows,
            "rejected_rows": self.rejected_rows,
            "healthy": self.healthy,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class DaemonState:
    """Everything the daemon exposes: boards, recorder counters, pipeline counters, build and start time."""

    version: str = "0.0.0"
    host: str = ""
    boards: dict[str, BoardState] = field(default_factory=dict)
    recorder: RecorderStats = field(default_factory=RecorderStats)
    pipeline: Pipeline | None = None
    mqtt: MqttStats | None = None  # the MQTT bridge's counters while the bridge is configured
    started_unix_ns: int = field(default_factory=time.time_ns)
    clock: Callable[[], int] = time.monotonic_ns
    heartbeat_ns: int | None = None
    stopping: bool = False
    #: A board not up this long after start makes :meth:`health` fail (s; 0 = no bound).
    startup_timeout_s: float = 0.0

    def add_board(self, name: str, kind: str = "unknown", chips: int = 1, link: str = "") -> BoardState:
        """Register a board (idempotent: returns the existing one, updating kind/chips/link)."""
        b = self.boards.get(name)
        if b is None:
            b = self.boards[name] = BoardState(name=name, kind=kind, chips=chips, link=link)
        else:
            b.kind, b.link = kind, link or b.link
            if chips > b.chips:
                b.chips = chips
                b._grow(max(chips, len(b.nonces)))
        return b

    def update_from_events(self, board: str, batch: pa.RecordBatch) -> None:
        """Pipeline listener: fold an event batch of ``board`` into its counters (adds unknown boards)."""
        b = self.boards.get(board)
        if b is None:
            b = self.add_board(board)
        b.update(batch)

    def heartbeat(self) -> None:
        """Mark the event loop alive (call from a periodic task)."""
        self.heartbeat_ns = self.clock()

    def health(self, max_heartbeat_age_s: float | None = None) -> tuple[bool, str]:
        """(healthy, reason): unhealthy when every board is failed, when a board has not come up within
        :attr:`startup_timeout_s` of start (the reason names it and why), or the heartbeat is too old."""
        if self.boards and all(b.status == "failed" for b in self.boards.values()):
            return False, "all boards failed"
        late = self.boards_not_up()
        if late:
            return False, "; ".join(late)
        if max_heartbeat_age_s is not None and self.heartbeat_ns is not None:
            age = (self.clock() - self.heartbeat_ns) / 1e9
            if age > max_heartbeat_age_s:
                return False, f"event loop heartbeat {age:.1f} s old"
        return True, "ok"

    def boards_not_up(self) -> list[str]:
        """One line per board that has never come up and has waited longer than the start-up window."""
        if self.startup_timeout_s <= 0:
            return []
        now = self.clock()
        out = []
        for b in self.boards.values():
            since = b.not_up_since_ns
            if b.ever_up or since is None or b.status == "stopped":
                continue
            waited = (now - since) / 1e9
            if waited >= self.startup_timeout_s:
                why = b.bringup_error or "no bring-up attempt finished"
                out.append(f"board {b.name} not up after {waited:.0f} s ({why})")
        return out

    def attach_session(self, name: str, session: BoardSession) -> None:
        """Let board ``name``'s snapshots include ``session``'s link counters and envelope counts."""
        self.boards[name].session = session

    def snapshots(self) -> dict[str, BoardSnapshot]:
        """One frozen :class:`~daemon.status.BoardSnapshot` per board, by name."""
        return {name: b.snapshot() for name, b in self.boards.items()}

    def to_status(self) -> dict[str, Any]:
        """JSON-able snapshot for ``/status`` (:func:`daemon.status.daemon_status`)."""
        return daemon_status(self)
