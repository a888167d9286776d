"""Prometheus metrics: one custom collector that reads the board snapshots (:mod:`daemon.status`) and the
:class:`~daemon.state.DaemonState` counters at scrape time.

Naming (docs/architecture.md): prefix ``asicrc_``, base units in names, counters end ``_total``, labels
``board`` and
``chip``, plus two small closed sets: ``reason`` of ``asicrc_safety_trips_total`` (the safety envelope's trip
reasons: brownout, chip_overheat, regulator_overheat, overpower, ...; a sample appears with the first trip)
``reason`` of ``asicrc_bringup_failures_total`` (:data:`daemon.bringup.REASONS`, every reason exported from 0)
and ``result`` (accepted|refused) of ``asicrc_mqtt_commands_total``. Gate refusal reasons and per-subscriber
drops are in ``/status`` and the recording log, not in labels. ``asicrc_build_info`` carries ``version`` and
``python`` labels, as build-info metrics do. The ``asicrc_mqtt_*`` families exist only while the MQTT bridge
is configured.

Use :func:`make_registry` (its own :class:`CollectorRegistry`, never the global one) and :func:`render`.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from daemon.bringup import REASONS as BRINGUP_REASONS
from daemon.state import INTERARRIVAL_BUCKETS_S, DaemonState
from daemon.status import BoardSnapshot

if TYPE_CHECKING:
    from daemon.mqtt import MqttStats

#: Name of the pipeline subscriber whose queue drops are exported as ``asicrc_recorder_queue_dropped_rows``.
RECORDER_SUBSCRIBER = "recorder"

#: ``le`` label values of the inter-arrival histogram, +Inf last.
_LE = [repr(float(b)) for b in INTERARRIVAL_BUCKETS_S] + ["+Inf"]

#: (metric name without _total, help, BoardSnapshot attribute) of per-board counters.
_BOARD_COUNTERS = (
    ("asicrc_crc_errors", "Reply frames dropped for a bad CRC.", "crc_errors"),
    ("asicrc_dropped_bytes", "Bytes discarded by the frame decoder while resynchronising.", "dropped_bytes"),
    ("asicrc_reconnects", "Reconnections of the board link.", "reconnects"),
    ("asicrc_telemetry_errors", "Failed telemetry reads (the data link stays up).", "telemetry_errors"),
    (
        "asicrc_estimated_hashes",
        "Hashes estimated from valid nonces (ticket difficulty x 2^32).",
        "estimated_hashes",
    ),
)

#: (metric name, help, BoardSnapshot attribute, scale) of optional per-board gauges (absent while None).
_BOARD_GAUGES = (
    ("asicrc_chip_temperature_celsius", "Chip (ASIC) temperature.", "chip_temp_c", 1.0),
    ("asicrc_regulator_temperature_celsius", "Core voltage regulator temperature.", "vr_temp_c", 1.0),
    ("asicrc_power_watts", "Board input power.", "power_w", 1.0),
    ("asicrc_input_voltage_volts", "Board input voltage.", "vin_v", 1.0),
    ("asicrc_fan_speed_hertz", "Fan speed (revolutions per second).", "fan_rpm", 1.0 / 60.0),
    ("asicrc_fan_duty_ratio", "Fan PWM duty 0..1.", "fan_duty", 1.0),
)


class StateCollector(Collector):
    """Builds every ``asicrc_*`` family from ``state`` on each scrape (no state of its own)."""

    def __init__(self, state: DaemonState) -> None:
        self._state = state

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on the boards present; skip registry name checks

    def collect(self) -> Iterator[Metric]:
        st = self._state
        boards = list(st.snapshots().values())
        info = InfoMetricFamily("asicrc_build", "asicrc build information.")
        info.add_metric([], {"version": st.version, "python": platform.python_version()})
        yield info
        start = GaugeMetricFamily("asicrc_start_time_seconds", "Daemon start time, unix seconds.")
        start.add_metric([], st.started_unix_ns / 1e9)
        yield start
        yield from _per_chip(boards)
        yield from _per_board(boards)
        yield _histogram(boards)
        yield _trips(boards)
        yield _bringup_failures(boards)
        yield from _recorder(st)
        yield from _pipeline(st)
        if st.mqtt is not None:
            yield from _mqtt(st.mqtt)


def _per_chip(boards: list[BoardSnapshot]) -> Iterator[Metric]:
    nonces = CounterMetricFamily(
        "asicrc_nonces", "Nonces returned, by board and chip.", labels=["board", "chip"]
    )
    invalid = CounterMetricFamily(
        "asicrc_invalid_nonces",
        "Nonces failing the share check, by board and chip.",
        labels=["board", "chip"],
    )
    for b in boards:
        for fam, arr in ((nonces, b.nonces), (invalid, b.invalid)):
            name = fam.name + "_total"
            fam.samples.extend(
                Sample(name, {"board": b.name, "chip": str(i)}, float(v)) for i, v in enumerate(arr.tolist())
            )
    yield nonces
    yield invalid


def _per_board(boards: list[BoardSnapshot]) -> Iterator[Metric]:
    lab = ["board"]
    fams: list[Metric] = []
    up = GaugeMetricFamily("asicrc_board_up", "1 when the board link is connected.", labels=lab)
    chips = GaugeMetricFamily("asicrc_board_chips", "Chips on the board's chain.", labels=lab)
    freq = GaugeMetricFamily("asicrc_frequency_hertz", "Chip clock setpoint in force.", labels=lab)
    volt = GaugeMetricFamily("asicrc_core_voltage_volts", "Core voltage setpoint in force.", labels=lab)
    ticket = GaugeMetricFamily("asicrc_ticket_difficulty", "Ticket difficulty setpoint in force.", labels=lab)
    refused = CounterMetricFamily(
        "asicrc_safety_refusals", "Setpoints refused by the safety gate.", labels=lab
    )
    clamped = CounterMetricFamily("asicrc_safety_clamps", "Setpoints clamped by the safety gate.", labels=lab)
    plan_ratio = GaugeMetricFamily("asicrc_plan_progress_ratio", "Fraction of plan points done.", labels=lab)
    plan_point = GaugeMetricFamily("asicrc_plan_point", "Plan point index in force (0-based).", labels=lab)
    plan_points = GaugeMetricFamily("asicrc_plan_points", "Points in the running plan.", labels=lab)
    plan_eta = GaugeMetricFamily("asicrc_plan_eta_seconds", "Estimated time to plan end.", labels=lab)
    counters = [CounterMetricFamily(n, h, labels=lab) for n, h, _ in _BOARD_COUNTERS]
    gauges = [GaugeMetricFamily(n, h, labels=lab) for n, h, _, _ in _BOARD_GAUGES]
    for b in boards:
        key = [b.name]
        up.add_metric(key, 1.0 if b.connected else 0.0)
        chips.add_metric(key, float(b.chips))
        freq.add_metric(key, b.freq_mhz * 1e6)
        volt.add_metric(key, b.voltage_v)
        ticket.add_metric(key, b.ticket_diff)
        refused.add_metric(key, float(sum(c for (a, _), c in b.safety.items() if a == "refused")))
        clamped.add_metric(key, float(sum(c for (a, _), c in b.safety.items() if a == "clamped")))
        for fam, (_, _, attr) in zip(counters, _BOARD_COUNTERS):
            fam.add_metric(key, float(getattr(b, attr)))
        for gfam, (_, _, attr, scale) in zip(gauges, _BOARD_GAUGES):
            v = getattr(b, attr)
            if v is not None:
                gfam.add_metric(key, float(v) * scale)
        if b.plan is not None:
            plan_ratio.add_metric(key, b.plan.fraction)
            plan_point.add_metric(key, float(b.plan.i))
            plan_points.add_metric(key, float(b.plan.n))
            if b.plan.eta_s is not None:
                plan_eta.add_metric(key, b.plan.eta_s)
    fams += [up, chips, freq, volt, ticket, refused, clamped, *counters, *gauges]
    fams += [plan_ratio, plan_point, plan_points, plan_eta]
    yield from fams


def _trips(boards: list[BoardSnapshot]) -> Metric:
    fam = CounterMetricFamily(
        "asicrc_safety_trips",
        "Safety trips (board forced to its safe state), by board and reason.",
        labels=["board", "reason"],
    )
    for b in boards:
        for reason, n in sorted(b.trips.items()):
            fam.add_metric([b.name, reason], float(n))
    return fam


def _bringup_failures(boards: list[BoardSnapshot]) -> Metric:
    fam = CounterMetricFamily(
        "asicrc_bringup_failures",
        "Failed bring-up attempts (board not up: port, control channel, chips), by board and reason.",
        labels=["board", "reason"],
    )
    for b in boards:
        for reason in BRINGUP_REASONS:
            fam.add_metric([b.name, reason], float(b.bringup_failures.get(reason, 0)))
    return fam


def _mqtt(m: MqttStats) -> Iterator[Metric]:
    yield _gauge(
        "asicrc_mqtt_connected", "1 while the MQTT bridge is connected to its broker.", float(m.connected)
    )
    yield _counter(
        "asicrc_mqtt_reconnects", "MQTT connection attempts after a loss or failure.", m.reconnects
    )
    yield _counter(
        "asicrc_mqtt_published_messages",
        "MQTT messages taken by the broker (events, status...).",
        m.published,
    )
    yield _counter(
        "asicrc_mqtt_dropped_messages", "MQTT messages dropped from the full outage buffer.", m.dropped
    )
    cmds = CounterMetricFamily("asicrc_mqtt_commands", "MQTT commands by result.", labels=["result"])
    cmds.add_metric(["accepted"], float(m.commands_accepted))
    cmds.add_metric(["refused"], float(m.commands_refused))
    yield cmds


def _histogram(boards: list[BoardSnapshot]) -> Metric:
    hist = HistogramMetricFamily(
        "asicrc_nonce_interval_seconds", "Time between consecutive nonces of a board.", labels=["board"]
    )
    for b in boards:
        cum = b.hist_counts.cumsum().tolist()
        hist.add_metric([b.name], [(le, float(c)) for le, c in zip(_LE, cum)], b.hist_sum_s)
    return hist


def _counter(name: str, doc: str, value: float) -> Metric:
    fam = CounterMetricFamily(name, doc)
    fam.add_metric([], value)
    return fam


def _gauge(name: str, doc: str, value: float) -> Metric:
    fam = GaugeMetricFamily(name, doc)
    fam.add_metric([], value)
    return fam


def _recorder(st: DaemonState) -> Iterator[Metric]:
    r = st.recorder
    yield _gauge(
        "asicrc_recorder_up", "1 while the recorder writes without errors.", 1.0 if r.healthy else 0.0
    )
    yield _counter("asicrc_recorder_rows", "Event rows written to recordings.", r.rows)
    yield _counter("asicrc_recorder_log_rows", "Log rows written to recordings.", r.log_rows)
    yield _counter("asicrc_recorder_written_bytes", "Bytes written to recordings.", r.bytes)
    yield _counter("asicrc_recorder_segments", "Segments opened.", r.segments)
    yield _counter(
        "asicrc_recorder_recovered_segments", "Torn segments recovered at start.", r.recovered_segments
    )
    yield _counter("asicrc_recorder_write_errors", "Write errors (disk full, read-only...).", r.write_errors)
    yield _counter(
        "asicrc_recorder_error_dropped_rows", "Event rows dropped by write errors.", r.error_dropped_rows
    )
    yield _counter(
        "asicrc_recorder_error_dropped_log_rows",
        "Log rows dropped by write errors.",
        r.error_dropped_log_rows,
    )
    yield _counter("asicrc_recorder_rejected_rows", "Rows in neither recording schema.", r.rejected_rows)
    p = st.pipeline
    sub = p.stats().get(RECORDER_SUBSCRIBER) if p is not None else None
    yield _counter(
        "asicrc_recorder_queue_dropped_rows",
        "Rows dropped because the recorder queue was full.",
        float(sub.dropped_rows) if sub is not None else 0.0,
    )


def _pipeline(st: DaemonState) -> Iterator[Metric]:
    p = st.pipeline
    pub = float(p.published_rows) if p is not None else 0.0
    drop = float(p.dropped_rows) if p is not None else 0.0
    yield _counter("asicrc_pipeline_published_rows", "Event rows published to the pipeline.", pub)
    yield _counter("asicrc_pipeline_dropped_rows", "Rows dropped by full subscriber queues (all).", drop)


def make_registry(state: DaemonState, registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """``registry`` (a new one by default) with a :class:`StateCollector` for ``state`` registered."""
    reg = registry if registry is not None else CollectorRegistry(auto_describe=False)
    reg.register(StateCollector(state))
    return reg


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text exposition of ``registry``."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
