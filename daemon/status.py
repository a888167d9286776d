"""Status: one frozen :class:`BoardSnapshot` per board, the only thing the status readers see.

``/status`` (HTTP), the MQTT ``status`` topic, ``status.json``, the Prometheus collector and the periodic
status line all read a :class:`BoardSnapshot` built by :func:`snapshot_board` from three sources: the board's
:class:`~daemon.state.BoardState` (setpoints, nonce counters, sensors), and, once the board session is
attached (:meth:`~daemon.state.DaemonState.attach_session`), its link counters and safety-envelope counts.
No reader reaches into the supervisor or the envelope itself.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from daemon.state import BoardState, DaemonState, PlanProgress


class EnvelopeView(Protocol):
    """What a snapshot reads from a board's safety envelope (counters by reason, post-trip caps)."""

    @property
    def refusals(self) -> Mapping[str, int]: ...

    @property
    def clamps(self) -> Mapping[str, int]: ...

    @property
    def trips(self) -> Mapping[str, int]: ...

    @property
    def caps(self) -> tuple[float, float]: ...


class BoardSession(Protocol):
    """What a snapshot reads from a board session (the supervisor): link counters and its envelope."""

    @property
    def counters(self) -> Any:  # a dataclass instance (LinkCounters)
        ...

    @property
    def envelope(self) -> EnvelopeView: ...


@dataclass(frozen=True, slots=True)
class EnvelopeCounts:
    """Safety-envelope counts by reason and the caps in force (volts, MHz)."""

    refusals: Mapping[str, int]
    clamps: Mapping[str, int]
    trips: Mapping[str, int]
    caps: tuple[float, float]


@dataclass(frozen=True, slots=True)
class BoardSnapshot:
    """One board at one instant. Units: volts, MHz, degrees Celsius, watts, seconds, ns for clocks.

    ``nonces``/``invalid``/``hist_counts`` are private copies; ``link_counters`` and ``envelope`` are None
    until a board session is attached.
    """

    name: str
    kind: str
    chips: int
    link: str
    connected: bool
    status: str
    voltage_v: float
    freq_mhz: float
    ticket_diff: float
    nonces: np.ndarray
    invalid: np.ndarray
    nonces_total: int
    invalid_total: int
    nonce_rate_hz: float
    estimated_hashes: float
    hist_counts: np.ndarray
    hist_sum_s: float
    hist_count: int
    chip_temp_c: float | None
    vr_temp_c: float | None
    power_w: float | None
    vin_v: float | None
    fan_rpm: float | None
    fan_duty: float | None
    crc_errors: int
    dropped_bytes: int
    reconnects: int
    telemetry_errors: int
    safety: Mapping[tuple[str, str], int]
    trips: Mapping[str, int]
    plan: PlanProgress | None
    ever_up: bool
    bringup_failures: Mapping[str, int]
    bringup_error: str | None
    link_counters: Mapping[str, Any] | None = None
    envelope: EnvelopeCounts | None = None

    def to_status(self) -> dict[str, Any]:
        """JSON-able summary of the board for ``/status`` and the MQTT ``status`` topic."""
        nonces, invalid = self.nonces_total, self.invalid_total
        return {
            "name": self.name,
            "kind": self.kind,
            "chips": self.chips,
            "link": self.link,
            "connected": self.connected,
            "status": self.status,
            "setpoint": {
                "voltage_v": self.voltage_v,
                "freq_mhz": self.freq_mhz,
                "ticket_diff": self.ticket_diff,
            },
            "nonces": nonces,
            "invalid": invalid,
            "invalid_fraction": invalid / nonces if nonces else 0.0,
            "nonce_rate_hz": self.nonce_rate_hz,
            "estimated_hashes": self.estimated_hashes,
            "nonces_per_chip": self.nonces.tolist(),
            "interarrival_mean_s": self.hist_sum_s / self.hist_count if self.hist_count else None,
            "temperature_c": {"chip": _num(self.chip_temp_c), "vr": _num(self.vr_temp_c)},
            "power_w": _num(self.power_w),
            "vin_v": _num(self.vin_v),
            "fan": {"rpm": _num(self.fan_rpm), "duty": _num(self.fan_duty)},
            "crc_errors": self.crc_errors,
            "dropped_bytes": self.dropped_bytes,
            "reconnects": self.reconnects,
            "telemetry_errors": self.telemetry_errors,
            "safety": [{"action": a, "reason": r, "count": c} for (a, r), c in sorted(self.safety.items())],
            "trips": dict(sorted(self.trips.items())),
            "plan": self.plan.to_status() if self.plan else None,
            "bringup": {
                "ever_up": self.ever_up,
                "error": self.bringup_error,
                "failures": dict(sorted(self.bringup_failures.items())),
            },
        }

    def session_status(self) -> dict[str, Any] | None:
        """Link counters plus envelope counts (``status.json`` "supervisors"); None without a session."""
        if self.link_counters is None:
            return None
        out = dict(self.link_counters)
        if self.envelope is not None:
            e = self.envelope
            out |= {"refusals": dict(e.refusals), "clamps": dict(e.clamps), "trips": dict(e.trips)}
            out["caps"] = list(e.caps)
        return out

    def status_line(self) -> str:
        """One human line for the periodic status log and systemd ``STATUS=``."""
        if self.bringup_error is not None and not self.connected:
            n = sum(self.bringup_failures.values())
            return f"{self.name}: not up, {n} failed attempt(s): {self.bringup_error}"
        plan = f" | plan {self.plan.name} {self.plan.i}/{self.plan.n}" if self.plan is not None else ""
        temp = f" | {self.chip_temp_c:.1f} C" if self.chip_temp_c is not None else ""
        return (
            f"{self.name}: {self.status} {self.voltage_v:.2f} V {self.freq_mhz:.0f} MHz"
            f" diff {self.ticket_diff:g}"
            f" | {self.nonces_total} nonces, {self.nonce_rate_hz:.1f}/s, invalid {self.invalid_total}"
            f"{temp}{plan}"
        )


def snapshot_board(b: BoardState, session: BoardSession | None = None) -> BoardSnapshot:
    """Freeze ``b`` (and ``session``'s link counters and envelope counts when given) into a snapshot."""
    link_counters: dict[str, Any] | None = None
    envelope: EnvelopeCounts | None = None
    if session is not None:
        link_counters = dataclasses.asdict(session.counters)
        env = session.envelope
        envelope = EnvelopeCounts(
            refusals=dict(env.refusals), clamps=dict(env.clamps), trips=dict(env.trips), caps=env.caps
        )
    plan = dataclasses.replace(b.plan) if b.plan is not None else None
    return BoardSnapshot(
        name=b.name,
        kind=b.kind,
        chips=b.chips,
        link=b.link,
        connected=b.connected,
        status=b.status,
        voltage_v=b.voltage_v,
        freq_mhz=b.freq_mhz,
        ticket_diff=b.ticket_diff,
        nonces=b.nonces.copy(),
        invalid=b.invalid.copy(),
        nonces_total=b.nonces_total,
        invalid_total=b.invalid_total,
        nonce_rate_hz=b.nonce_rate_hz,
        estimated_hashes=b.estimated_hashes,
        hist_counts=b.hist_counts.copy(),
        hist_sum_s=b.hist_sum_s,
        hist_count=b.hist_count,
        chip_temp_c=b.chip_temp_c,
        vr_temp_c=b.vr_temp_c,
        power_w=b.power_w,
        vin_v=b.vin_v,
        fan_rpm=b.fan_rpm,
        fan_duty=b.fan_duty,
        crc_errors=b.crc_errors,
        dropped_bytes=b.dropped_bytes,
        reconnects=b.reconnects,
        telemetry_errors=b.telemetry_errors,
        safety=dict(b.safety),
        trips=dict(b.trips),
        plan=plan,
        ever_up=b.ever_up,
        bringup_failures=dict(b.bringup_failures),
        bringup_error=b.bringup_error,
        link_counters=link_counters,
        envelope=envelope,
    )


def _num(x: float | None) -> float | None:
    """JSON-safe float: None for missing or non-finite values."""
    return None if x is None or not math.isfinite(x) else float(x)


def pipeline_status(state: DaemonState) -> dict[str, Any]:
    """Published and dropped rows per subscriber (empty without a pipeline)."""
    p = state.pipeline
    if p is None:
        return {}
    return {
        "published_rows": p.published_rows,
        "published_batches": p.published_batches,
        "log_rows": p.log_rows,
        "subscribers": {
            name: {
                "delivered_rows": s.delivered_rows,
                "dropped_rows": s.dropped_rows,
                "dropped_batches": s.dropped_batches,
                "queued": s.queued,
                "maxsize": s.maxsize,
            }
            for name, s in p.stats().items()
        },
    }


def mqtt_status(state: DaemonState) -> dict[str, Any] | None:
    """The MQTT bridge's counters (no settings, so no secrets); None without a bridge."""
    m = state.mqtt
    if m is None:
        return None
    return {
        "connected": m.connected,
        "published": m.published,
        "dropped": m.dropped,
        "reconnects": m.reconnects,
        "commands_accepted": m.commands_accepted,
        "commands_refused": m.commands_refused,
        "last_error": m.last_error or None,
    }


def daemon_status(state: DaemonState, snapshots: Mapping[str, BoardSnapshot] | None = None) -> dict[str, Any]:
    """JSON-able snapshot for ``/status``, the MQTT ``status`` topic and ``status.json``."""
    snaps = state.snapshots() if snapshots is None else snapshots
    ok, reason = state.health()
    return {
        "version": state.version,
        "host": state.host,
        "started_unix_ns": state.started_unix_ns,
        "healthy": ok,
        "health": reason,
        "stopping": state.stopping,
        "boards": {name: s.to_status() for name, s in snaps.items()},
        "recorder": state.recorder.to_status(),
        "pipeline": pipeline_status(state),
        "mqtt": mqtt_status(state),
    }
