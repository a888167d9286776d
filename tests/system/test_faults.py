"""Fault campaign: the daemon as a subprocess on emulated boards; one scenario per test, each with a promise.

Every scenario checks three things: the board stayed inside its safety envelope (the recording's setpoint
columns and setpoint log, the supervisor's safety counters), data loss stayed within the stated bound (rows
counted vs rows recorded), and ``/metrics`` shows what happened. See ``RELIABILITY.md`` for the table.

The child (:data:`CHILD`) is the real :class:`daemon.app.Daemon` plus a stdin reader that forwards JSON fault
lines to the emulated boards (``{"board": 0, "kind": "garbage", "n": 100000}``, ``{"board": 0, "firehose":
20000}``): the config's ``[[simulate.faults]]`` cannot express garbage storms or stuck chips. Timing constants
are shrunk through the config (reconnects in 0.1-0.4 s instead of 0.5-30 s). The MQTT outage runs twice: 4 s
with a shrunk backoff in the fast subset, and the issue's full minute with the shipped backoff (slow tier).
"""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from daemon.recording import read_table, recover_dir
from tests.system.daemon_child import (
    F_MIN,
    HOLD,
    ROOT,
    SWEEP,
    V_MIN,
    Child,
    _logs,
    _nonces,
    assert_envelope,
    assert_no_loss,
)
from tests.system.mqtt_fixture import Broker
from tests.system.prom_fixture import Prometheus

pytestmark = pytest.mark.system


def test_unplug_replug_reconnects_without_losing_counted_nonces(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    t0 = time.monotonic()
    c.inject({"kind": "disconnect", "mode": "reopen"})
    c.wait_for(lambda: c.metric("asicrc_reconnects_total") >= 1)
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 20, timeout_s=20)  # recovered: mining again
    print(f"MEASURED unplug: mining again {time.monotonic() - t0:.2f} s after the unplug")
    assert c.metric("asicrc_board_up", board="sim0") == 1.0
    c.stop()
    (run,) = c.runs()
    assert_no_loss(c, run)
    assert_envelope([run])
    links = [r["payload"].get("link") for r in _logs(run) if r["kind"] == "state"]
    assert "lost" in links and "recovered" in links


def test_garbage_storm_is_dropped_counted_and_mining_continues(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    for _ in range(5):
        c.inject({"kind": "garbage", "n": 20_000})
        c.inject({"kind": "crc_error", "n": 50})
    c.wait_for(lambda: c.metric("asicrc_dropped_bytes_total") >= 50_000)
    c.wait_for(lambda: c.metric("asicrc_crc_errors_total") >= 1)
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 20)
    c.stop()
    (run,) = c.runs()
    final = assert_no_loss(c, run)  # garbage never becomes an event
    assert_envelope([run])
    assert final["boards"]["sim0"]["dropped_bytes"] >= 50_000


def test_brownout_goes_safe_reinitialises_and_metrics_show_it(child_factory: Callable[..., Child]) -> None:
    extra = HOLD + '\n[[simulate.faults]]\nat_s = 0.3\nkind = "brownout"\nvalue = 4.2\nduration_s = 0.6\n'
    c = child_factory(extra)
    c.wait_for(lambda: c.trips().get("brownout", 0) >= 1)
    c.wait_for(lambda: c.metric("asicrc_safety_trips_total", board="sim0", reason="brownout") >= 1)
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 20)  # re-initialised and mining
    c.stop()
    (run,) = c.runs()
    final = assert_no_loss(c, run)
    sps = assert_envelope([run])
    assert any(p["mode"] == "brownout" and p["freq_mhz"] == F_MIN for p in sps)
    assert final["supervisors"]["sim0"]["bring_ups"] >= 2


def test_overheat_cuts_the_core_and_resumes_derated(child_factory: Callable[..., Child]) -> None:
    extra = (
        HOLD
        + "\n[simulate]\ntime_scale = 20.0\n"
        + '[[simulate.faults]]\nat_s = 0.5\nkind = "overheat"\nvalue = 95.0\n'
    )
    c = child_factory(extra)
    c.wait_for(lambda: c.trips().get("chip_overheat", 0) >= 1)
    c.wait_for(lambda: c.metric("asicrc_safety_trips_total", board="sim0", reason="chip_overheat") >= 1)
    c.wait_for(lambda: c.metric("asicrc_frequency_hertz", board="sim0") == pytest.approx(385e6), 30)
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 10)
    c.stop()
    (run,) = c.runs()
    final = assert_no_loss(c, run)
    sps = assert_envelope([run])
    hot = [i for i, p in enumerate(sps) if p["mode"] == "overheat"]
    assert hot and sps[hot[0]]["voltage_v"] == 0.0
    assert max(p["freq_mhz"] for p in sps[hot[-1] + 1 :]) <= 385.0  # derated by 100 MHz
    assert final["supervisors"]["sim0"]["caps"] == pytest.approx([1.1, 385.0])


def test_stuck_chip_keeps_the_others_mining(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD + "\n[simulate]\nchips = 2\n")
    c.wait_for(lambda: min(c.status()["boards"]["sim0"]["nonces_per_chip"]) > 5)
    c.inject({"kind": "stuck_chip", "chip": 1})
    time.sleep(0.5)
    stuck_at = c.status()["boards"]["sim0"]["nonces_per_chip"]
    c.wait_for(lambda: c.status()["boards"]["sim0"]["nonces_per_chip"][0] > stuck_at[0] + 30)
    now = c.status()["boards"]["sim0"]["nonces_per_chip"]
    assert now[1] == stuck_at[1]  # the stuck chip is silent ...
    assert c.metric("asicrc_board_up", board="sim0") == 1.0  # ... and the board keeps running
    c.stop()
    (run,) = c.runs()
    assert_no_loss(c, run)
    assert_envelope([run])


#: (outage s, [mqtt] reconnect_min_s, reconnect_max_s): the fast subset shrinks the outage and the backoff;
#: the slow tier is the issue's minute with the shipped backoff (0.5 s doubling to its 30 s cap).
MQTT_OUTAGES = [
    pytest.param(4.0, 0.1, 0.4, id="4s-shrunk"),
    pytest.param(60.0, 0.5, 30.0, id="1min-default", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("outage_s", "backoff_min_s", "backoff_max_s"), MQTT_OUTAGES)
def test_mqtt_broker_down_then_back(
    child_factory: Callable[..., Child],
    mosquitto: Broker,
    outage_s: float,
    backoff_min_s: float,
    backoff_max_s: float,
) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    buffer = 10  # the smallest outage buffer: any outage here overflows it, so drops must show in metrics
    extra = HOLD + (
        f"\n[mqtt]\nenabled = true\nhost = '127.0.0.1'\nport = {mosquitto.port}\nbuffer_messages = {buffer}\n"
        f"reconnect_min_s = {backoff_min_s}\nreconnect_max_s = {backoff_max_s}\n"
    )
    c = child_factory(extra)
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        with lock:
            got.append((msg.topic, bytes(msg.payload)))

    def events_seen() -> int:
        with lock:
            return sum(1 for t, _ in got if "/events/" in t)

    sub = paho.Client(CallbackAPIVersion.VERSION2)
    sub.on_message = on_message
    sub.on_connect = lambda cl, *_a: cl.subscribe("asicrc/#", qos=1)
    sub.reconnect_delay_set(1, 1)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    try:
        c.wait_for(lambda: events_seen() > 3)
        dropped_before = c.metric("asicrc_mqtt_dropped_messages")
        mosquitto.stop()
        c.wait_for(lambda: c.metric("asicrc_mqtt_connected") == 0.0, 10)
        time.sleep(outage_s)
        mid = _nonces(c)
        assert c.metric("asicrc_mqtt_dropped_messages") > dropped_before  # the overflow is counted
        with lock:
            got.clear()
        t0 = time.monotonic()
        mosquitto.start()
        # The promise: back within one capped backoff wait (plus a connect) of the broker's return.
        c.wait_for(lambda: c.metric("asicrc_mqtt_connected") == 1.0, backoff_max_s + 10.0)
        back_s = time.monotonic() - t0
        c.wait_for(lambda: events_seen() >= buffer, 20)  # the buffered batches, then live ones
        flowing_s = time.monotonic() - t0
        with lock:
            assert any(t.endswith("/availability") and p == b"online" for t, p in got)
        dropped = c.metric("asicrc_mqtt_dropped_messages") - dropped_before
        print(
            f"MEASURED mqtt {outage_s:g} s outage, backoff {backoff_min_s:g}-{backoff_max_s:g} s: "
            f"reconnected {back_s:.2f} s and {buffer}+ event batches delivered {flowing_s:.2f} s after the "
            f"broker came back; {dropped:.0f} messages dropped from the {buffer}-message buffer, "
            f"{c.metric('asicrc_mqtt_reconnects'):.0f} reconnect attempts"
        )
        assert back_s <= backoff_max_s + 10.0
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert _nonces(c) > mid  # ingest never stopped
    err = c.stop()
    assert err.count("lost or unreachable") == 1  # one warning for the whole outage, not one per retry
    assert "connection recovered" in err
    (run,) = c.runs()
    assert_no_loss(c, run)  # the recording is untouched by the outage
    assert_envelope([run])


def test_prometheus_scraping_under_full_ingest_loses_nothing(
    child_factory: Callable[..., Child], prometheus_factory: Callable[..., Prometheus]
) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 5)
    prom = prometheus_factory([f"127.0.0.1:{c.port}"])
    c.inject({"board": 0, "firehose": 15_000})
    stop = threading.Event()
    scrapes = [0, 0]  # ok, failed

    def hammer() -> None:  # a second, much more aggressive scraper
        while not stop.is_set():
            try:
                c._get("/metrics")
                scrapes[0] += 1
            except OSError:
                scrapes[1] += 1

    t = threading.Thread(target=hammer)
    t.start()
    try:
        prom.wait_up()
        prom.wait_query("asicrc_nonces_total", lambda r: bool(r) and float(r[0]["value"][1]) > 20_000, 60)
    finally:
        stop.set()
        t.join()
    c.inject({"board": 0, "firehose": None})
    assert scrapes[0] > 10 and scrapes[1] == 0, scrapes
    print(f"MEASURED prometheus: {scrapes[0]} extra scrapes, 0 failed, during firehose ingest")
    c.stop(timeout_s=60)
    (run,) = c.runs()
    final = assert_no_loss(c, run)
    assert final["boards"]["sim0"]["nonces"] > 20_000


def test_state_dir_filling_up_keeps_boards_running_and_counts_the_loss(
    child_factory: Callable[..., Child],
) -> None:
    limit = 128 * 1024  # bytes per file (RLIMIT_FSIZE); writes past it fail with EFBIG like a full disk

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    c = child_factory(HOLD + "\n[simulate]\ntime_scale = 1.0\n", preexec_fn=small_disk)
    c.inject({"board": 0, "firehose": 8_000})
    c.wait_for(lambda: c.metric("asicrc_recorder_write_errors_total") >= 1, 60)
    assert c.metric("asicrc_recorder_up") == 0.0
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 1000)  # ingest and supervision go on
    assert c.metric("asicrc_board_up", board="sim0") == 1.0
    c.inject({"board": 0, "firehose": None})
    err = c.stop()
    assert "safe" in err
    final = c.final()
    rec = final["recorder"]
    nonces = final["boards"]["sim0"]["nonces"]
    (run,) = c.runs()
    recover_dir(run)  # what the next start does: the segment cut short by the full disk is finished
    on_disk = read_table(run).num_rows
    assert rec["error_dropped_rows"] > 0
    print(
        f"MEASURED disk full: {nonces} counted, {rec['rows']} written, {on_disk} readable, "
        f"{rec['error_dropped_rows']} dropped and counted"
    )
    # accounting: every counted nonce was written or counted as dropped; what is on disk was written
    assert rec["rows"] + rec["error_dropped_rows"] == nonces
    assert 0 < on_disk <= rec["rows"]
    assert_envelope([run], require_log=False)
    sp = final["boards"]["sim0"]["setpoint"]
    assert (sp["voltage_v"], sp["freq_mhz"]) == (V_MIN, F_MIN)  # shut down to the floors all the same


def test_sigkill_mid_sweep_resumes_the_sweep_and_recovers_the_recording(
    child_factory: Callable[..., Child],
) -> None:
    c = child_factory(SWEEP)
    prog_path = c.state / "plans" / "t.sim0.json"
    c.wait_for(lambda: json.loads(prog_path.read_text())["done"] >= 1)
    time.sleep(0.3)  # inside point 1
    c.p.send_signal(signal.SIGKILL)
    c.p.communicate(timeout=10)
    done_before = json.loads(prog_path.read_text())["done"]
    assert 1 <= done_before < 3
    (run1,) = c.runs()
    assert list(run1.glob("events-*.arrows.part")), "expected a torn segment after SIGKILL"
    rows_before = json.loads((c.state / "status.json").read_text())["recorder"]["rows"]
    c.start()
    c.wait_for(lambda: json.loads(prog_path.read_text())["done"] == 3, 30)
    assert c.metric("asicrc_recorder_recovered_segments") >= 1
    err = c.stop()
    assert "recovered" in err
    assert not list(run1.glob("*.part"))
    kept = read_table(run1).num_rows
    assert kept >= rows_before  # every row reported written before the kill survived
    print(
        f"MEASURED sigkill: {kept} rows kept (>= {rows_before} reported written),"
        f" resumed at point {done_before}"
    )
    prog = json.loads(prog_path.read_text())
    assert [s["freq_mhz"] for s in prog["summaries"]] == [485.0, 400.0, 525.0]
    run2 = next(r for r in c.runs() if r != run1)
    points = set(read_table(run2).column("point").to_pylist())
    assert min(points - {-1}) >= done_before  # resumed, not restarted: finished points are not re-run
    assert_envelope([run1, run2])


@pytest.mark.slow
def test_unplug_storm_slow(child_factory: Callable[..., Child]) -> None:
    """Slow variant: twenty unplugs in a row; every one recovered, nothing counted is lost."""
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    for i in range(20):
        c.inject({"kind": "disconnect", "mode": "reopen"})
        want = i + 1.0
        c.wait_for(lambda: c.metric("asicrc_reconnects_total") >= want)  # noqa: B023 - called at once
        before = _nonces(c)
        c.wait_for(lambda: _nonces(c) > before + 5)  # noqa: B023
    c.stop()
    (run,) = c.runs()
    assert_no_loss(c, run)
    assert_envelope([run])


@pytest.mark.slow
def test_soak_quick_slow() -> None:
    """``benchmarks/soak.py --quick`` (10^7 events, ~2 min at ~95,000 events/s on 4 emulated boards): RSS
    after warm-up within 5 % (medians over two heap-trim periods), open files and tasks flat, nothing dropped.
    The 10^8-event run is the same command without ``--quick`` (RELIABILITY.md, "Soak")."""
    out = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--quick", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    r = json.loads(out.stdout)
    print(
        f"MEASURED soak quick: {r['events']:,} events at {r['events_per_s']:,}/s, "
        f"RSS {r['rss_mib_first']} -> {r['rss_mib_last']} MiB ({r['rss_growth']:+.1%}), "
        f"slope {r['rss_slope_bytes_per_mevent'] / 1e6:.2f} MB per 10^6 events"
    )
    assert r["events"] >= 10_000_000 and r["exit_code"] == 0
    assert r["fds_last"] <= r["fds_first"] + 2 and r["tasks_last"] <= r["tasks_first"] + 2
    assert r["pipeline_dropped"] == 0 and r["recorder_dropped"] == 0
    assert r["rss_growth"] <= 0.05 and r["pass"], out.stderr[-3000:]
