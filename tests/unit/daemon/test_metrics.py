"""The metrics collector: naming rules, values read from DaemonState at scrape time, promtool-clean output."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from daemon.events import Pipeline, make_event_batch
from daemon.metrics import RECORDER_SUBSCRIBER, make_registry, render
from daemon.mqtt import MqttStats
from daemon.state import INTERARRIVAL_BUCKETS_S, DaemonState, PlanProgress
from tests.conftest import require_binary


def synthetic_state(boards: int = 2, chips: int = 8, seed: int = 1) -> DaemonState:
    """A state fed through a real pipeline: every board has events, setpoints, sensors and a plan."""
    rng = np.random.default_rng(seed)
    state = DaemonState(version="1.2.3")
    pipeline = Pipeline()
    state.pipeline = pipeline
    pipeline.add_listener("state", state.update_from_events)
    pipeline.subscribe(RECORDER_SUBSCRIBER, maxsize=1)
    for k in range(boards):
        name = f"board{k}"
        b = state.add_board(name, "emulator", chips)
        b.connected = k != 1
        b.set_setpoint(1.15 + 0.05 * k, 400.0 + 10 * k, 64.0)
        b.chip_temp_c, b.vr_temp_c, b.power_w, b.vin_v, b.fan_rpm = 55.0, 70.0, 12.5, 5.1, 3000.0
        b.crc_errors, b.dropped_bytes, b.reconnects = 3 + k, 40, k
        b.count_safety("clamped", "freq_step")
        b.plan = PlanProgress("sweep", i=k + 1, n=4, eta_s=30.0)
        for _ in range(3):
            n = 200
            t = np.cumsum(rng.exponential(2e6, n)).astype(np.int64)
            pipeline.publish(
                make_event_batch(
                    name, t_host_ns=t, t_ns=t, chip=rng.integers(0, chips, n), core=0, small_core=0, job_id=0,
                    nonce=rng.integers(0, 2**32, n), valid=rng.random(n) > 0.2, voltage_v=1.2, freq_mhz=485.0,
                    ticket_diff=64.0, read_id=0,
                )
            )  # fmt: skip
    state.recorder.rows, state.recorder.bytes, state.recorder.write_errors = 1000, 65536, 2
    return state


def scrape(state: DaemonState) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{sample name: {sorted labels: value}} parsed back from the text exposition."""
    body, content_type = render(make_registry(state))
    assert content_type.startswith("text/plain")
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_names_units_and_labels_follow_the_contract() -> None:
    state = synthetic_state()
    state.boards["board0"].set_trips({"overheat": 1, "brownout": 2})
    state.mqtt = MqttStats(published=3, commands_accepted=1, commands_refused=2)
    body, _ = render(make_registry(state))
    # Labels: board and chip, plus small fixed enumerations (never per core or per nonce).
    enum_labels = {
        "asicrc_safety_trips": {"reason"},
        "asicrc_bringup_failures": {"reason"},
        "asicrc_mqtt_commands": {"result"},
    }
    seen_enum: set[str] = set()
    for fam in text_string_to_metric_families(body.decode()):
        assert fam.name.startswith("asicrc_"), fam.name
        for s in fam.samples:
            labels = set(s.labels) - {"le"}
            if fam.name == "asicrc_build_info":
                assert labels == {"version", "python"}
            else:
                assert labels <= {"board", "chip"} | enum_labels.get(fam.name, set()), (s.name, labels)
                seen_enum |= labels & {"reason", "result"}
        if fam.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in fam.samples)
    assert seen_enum == {"reason", "result"}
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    for required in (
        "asicrc_nonces",
        "asicrc_invalid_nonces",
        "asicrc_estimated_hashes",
        "asicrc_nonce_interval_seconds",
        "asicrc_frequency_hertz",
        "asicrc_core_voltage_volts",
        "asicrc_chip_temperature_celsius",
        "asicrc_power_watts",
        "asicrc_crc_errors",
        "asicrc_dropped_bytes",
        "asicrc_reconnects",
        "asicrc_safety_refusals",
        "asicrc_safety_clamps",
        "asicrc_bringup_failures",
        "asicrc_plan_progress_ratio",
        "asicrc_recorder_rows",
        "asicrc_recorder_written_bytes",
        "asicrc_recorder_queue_dropped_rows",
        "asicrc_recorder_rejected_rows",
        "asicrc_pipeline_dropped_rows",
        "asicrc_build_info",
    ):
        assert required in names, required


def test_values_are_read_from_the_state_at_scrape_time() -> None:
    state = synthetic_state()
    s = scrape(state)
    b0 = state.boards["board0"]
    for chip in range(8):
        key = (("board", "board0"), ("chip", str(chip)))
        assert s["asicrc_nonces_total"][key] == b0.nonces[chip]
        assert s["asicrc_invalid_nonces_total"][key] == b0.invalid[chip]
    assert sum(s["asicrc_nonces_total"].values()) == 2 * 600
    assert s["asicrc_frequency_hertz"][(("board", "board1"),)] == 410e6
    assert s["asicrc_board_up"][(("board", "board1"),)] == 0.0
    assert s["asicrc_fan_speed_hertz"][(("board", "board0"),)] == 50.0
    assert s["asicrc_safety_clamps_total"][(("board", "board0"),)] == 1.0
    assert s["asicrc_plan_progress_ratio"][(("board", "board1"),)] == 0.5
    assert s["asicrc_recorder_write_errors_total"][()] == 2.0
    # recorder queue of size 1 kept one batch of the six published: five batches (1000 rows) dropped
    assert s["asicrc_recorder_queue_dropped_rows_total"][()] == 1000.0
    assert s["asicrc_pipeline_dropped_rows_total"][()] == 1000.0
    # the next scrape sees new events without re-registering anything
    b0.update(
        make_event_batch(
            "board0", t_host_ns=np.array([10**15]), t_ns=np.array([10**15]), chip=np.array([7]), core=0,
            small_core=0, job_id=0, nonce=0, valid=False, voltage_v=1.2, freq_mhz=485.0, ticket_diff=64.0,
            read_id=0,
        )
    )  # fmt: skip
    again = scrape(state)
    key = (("board", "board0"), ("chip", "7"))
    assert again["asicrc_invalid_nonces_total"][key] == s["asicrc_invalid_nonces_total"][key] + 1


def test_histogram_is_cumulative_with_the_board_totals() -> None:
    state = synthetic_state()
    s = scrape(state)
    b = state.boards["board0"]
    buckets = {k: v for k, v in s["asicrc_nonce_interval_seconds_bucket"].items() if ("board", "board0") in k}
    ordered = [
        buckets[(("board", "board0"), ("le", le))]
        for le in [*map(lambda x: repr(float(x)), INTERARRIVAL_BUCKETS_S), "+Inf"]
    ]
    assert ordered == sorted(ordered) and ordered[-1] == b.hist_count == 599
    assert s["asicrc_nonce_interval_seconds_count"][(("board", "board0"),)] == 599
    assert s["asicrc_nonce_interval_seconds_sum"][(("board", "board0"),)] == pytest.approx(b.hist_sum_s)


def test_missing_sensors_are_absent_not_zero() -> None:
    state = DaemonState()
    state.add_board("x", chips=2)
    s = scrape(state)
    assert "asicrc_chip_temperature_celsius" not in s and "asicrc_plan_progress_ratio" not in s
    assert s["asicrc_nonces_total"][(("board", "x"), ("chip", "1"))] == 0.0


def test_own_registry_leaves_the_global_one_alone() -> None:
    before = {m.name for m in REGISTRY.collect()}
    reg = CollectorRegistry()
    assert make_registry(synthetic_state(), registry=reg) is reg
    assert {m.name for m in REGISTRY.collect()} == before
    assert not any(n.startswith("asicrc_") for n in before)


def test_promtool_check_metrics_is_clean() -> None:
    promtool = require_binary("promtool")
    body, _ = render(make_registry(synthetic_state(boards=4, chips=128)))
    proc = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == b"" and proc.stderr == b"", proc.stderr.decode()
