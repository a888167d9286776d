"""Fleet collector against a real mosquitto: a real daemon (subprocess, emulated board) and a second host (an
MqttBridge publishing as ``hostB``) end up in one recording written by ``asicrc collect`` (subprocess);
malformed messages are counted; the readout summed from both hosts' statistics equals the concatenated fit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiomqtt
import numpy as np
import pyarrow as pa
import pytest

from daemon.collect import load_readout
from daemon.events import make_event_batch
from daemon.mqtt import MqttBridge, MqttSettings, encode_events
from daemon.recording import read_table, scan_stream
from reservoir.readout import RidgeReadout, RidgeStats
from tests.polling import until
from tests.system.daemon_child import HOLD
from tests.system.mqtt_fixture import Broker
from tests.system.test_daemon import BASE, ROOT

pytestmark = pytest.mark.system

#: Bounds on waiting for a process to start or for rows to arrive (s).
WAIT_S = 30.0


def _batch(n: int, t0: int) -> pa.RecordBatch:
    t = np.arange(t0, t0 + n, dtype=np.int64) * 1000
    z = np.zeros(n, np.int64)
    nonce, ok = np.arange(n, dtype=np.uint32), np.ones(n, bool)
    return make_event_batch(
        "b0", t_host_ns=t, t_ns=t, chip=z, core=z, small_core=z, job_id=z, nonce=nonce, valid=ok,
        voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0, read_id=np.arange(n),
    )  # fmt: skip


def _rows_on_disk(out: Path) -> int:
    """Event rows written so far, finished segments and the open ``.part`` alike."""
    if not out.is_dir():
        return 0
    return sum(scan_stream(p).rows for p in out.glob("events-*.arrows*"))


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """``python ARGS`` in the repository root; stdout piped, stderr to ``log``."""
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err)


def _stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


async def test_two_hosts_one_collector_one_recording(mosquitto: Broker, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    X = rng.standard_normal((400, 6))
    y = X @ rng.standard_normal(6) + 0.1 * rng.standard_normal(400)
    this_host = socket.gethostname()  # the daemon's MQTT host id
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as cli:
        # running totals, retained: a collector started later still gets them
        for host, sl, encode in (
            (this_host, slice(0, 150), lambda s: s.to_bytes()),
            ("hostB", slice(150, 400), lambda s: json.dumps(s.to_dict()).encode()),
        ):
            payload = encode(RidgeStats.from_arrays(X[sl], y[sl]))
            await cli.publish(f"asicrc/{host}/readout/stats", payload, qos=1, retain=True)

    out = tmp_path / "central"
    col_log = tmp_path / "collect.log"
    broker = f"127.0.0.1:{mosquitto.port}"
    collector = _spawn(
        ["-m", "daemon", "collect", "--mqtt", broker, "--out", str(out), "--alpha", "0.5", "--json"], col_log
    )
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(BASE + f"\n[mqtt]\nenabled = true\nport = {mosquitto.port}\n" + HOLD)
    state = tmp_path / "state"
    daemon: subprocess.Popen[bytes] | None = None
    try:
        await until(
            lambda: "collect: recording" in col_log.read_text(),
            what="collector ready",
            procs=[collector],
            within_s=WAIT_S,
            poll_s=0.05,
        )
        run_args = ["-m", "daemon", "run", "--config", str(cfg), "--state-dir", str(state), "--simulate", "1"]
        daemon = _spawn(run_args, tmp_path / "daemon.log")
        settings = MqttSettings(
            port=mosquitto.port,
            host_id="hostB",
            status_interval_s=60.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.2,
        )
        bridge = MqttBridge(settings, status=dict)
        task = asyncio.create_task(bridge.run())
        try:
            for i in range(3):
                bridge.publish_events("b0", _batch(10, t0=100 * i))
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as cli:
                await cli.publish("asicrc/hostC/events/b0", b"\x00garbage", qos=1)
                await cli.publish("asicrc/hostC/events/b0", encode_events(pa.record_batch({"x": [1]})), qos=1)
                await cli.publish("asicrc/hostC/readout/stats", b'{"n": "many"}', qos=1)
            await until(
                lambda: _rows_on_disk(out) >= 30 + 200,
                what="rows of both hosts",
                procs=[collector, daemon],
                within_s=WAIT_S,
                poll_s=0.05,
            )
        finally:
            await bridge.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert _stop(daemon, signal.SIGTERM) == 0
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
        rc = _stop(collector, signal.SIGINT)
    assert rc == 0, col_log.read_text()[-3000:]
    assert collector.stdout is not None
    result = json.loads(collector.stdout.read())
    assert result["malformed"] == {"events": 2, "stats": 1}
    assert set(result["hosts"]) == {this_host, "hostB"}

    central = read_table(out).to_pandas()
    assert result["recorded_rows"] == len(central) == result["event_rows"]
    assert set(central["board"]) == {f"{this_host}/sim0", "hostB/b0"}
    assert sorted(central.loc[central["board"] == "hostB/b0", "t_ns"]) == sorted(
        t * 1000 for i in range(3) for t in range(100 * i, 100 * i + 10)
    )
    # the daemon's own rows: exactly a prefix of what it recorded itself (nothing lost in between)
    (run,) = (state / "recordings").iterdir()
    own = read_table(run).to_pandas()
    key = ["read_id", "nonce", "t_ns"]
    got = central[central["board"] == f"{this_host}/sim0"]
    got_keys = set(map(tuple, got[key].to_numpy().tolist()))
    own_keys = set(map(tuple, own[key].to_numpy().tolist()))
    prefix = set(map(tuple, own.loc[own["read_id"] <= got["read_id"].max(), key].to_numpy().tolist()))
    assert len(got) >= 200 and got_keys == prefix and got_keys <= own_keys

    readout = load_readout(out / "readout.npz")
    ref = RidgeReadout(alpha=0.5).fit(X, y)
    np.testing.assert_allclose(readout.readout.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(readout.readout.intercept_, ref.intercept_, rtol=1e-9, atol=1e-12)
    assert set(readout.hosts) == {this_host, "hostB"}


def test_collect_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    base = ["collect", "--out", str(tmp_path / "o")]
    for extra in (
        ["--mqtt", "nohost"],
        ["--mqtt", "127.0.0.1:1883", "--password-file", str(tmp_path / "none")],
    ):
        assert main(base + extra) == 2
        captured = capsys.readouterr()
        assert "asicrc collect:" in captured.err and captured.out == ""
    assert not (tmp_path / "o").exists()
