"""The live reservoir service inside a real daemon (``asicrc run --simulate 1`` subprocess, ``[live]`` on the
emulated board ``sim0``) against a real mosquitto: inputs on ``<root>/<host_id>/live/input`` are answered on
``.../live/prediction``, the ``asicrc_live_*`` metrics are on the daemon's own /metrics, the readout
statistics are published retained, and SIGTERM exits 0. Then two daemons with different ``[mqtt] host_id`` on
one broker and ``asicrc collect`` make one recording holding both hosts' events."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import aiomqtt
import numpy as np
import pytest

from daemon.live import LiveModel
from daemon.recording import read_table
from reservoir.readout import RidgeStats
from tests.polling import until
from tests.system.daemon_child import HOLD
from tests.system.mqtt_fixture import Broker, free_port
from tests.system.test_collect import WAIT_S, _spawn, _stop
from tests.system.test_daemon import BASE

pytestmark = pytest.mark.system

#: Emulated board: 20 ms sub-slots, 4 per input (an input step is ~0.1 s of board time plus a tail).
TRAIN = ["--steps", "24", "--washout", "2", "--slot-ms", "20", "--time-scale", "10", "--seed", "4"]


def _train(tmp_path: Path) -> Path:
    """``asicrc live train`` (the real CLI) on the emulator: a small LiveModel file."""
    out = tmp_path / "live.npz"
    cmd = [sys.executable, "-m", "daemon", "live", "train", "--simulate", "--out", str(out), "--json", *TRAIN]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=WAIT_S)
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout)
    assert summary["out"] == str(out)
    fit = summary["fit"]  # the fit quality, in sample and held out
    assert fit["n_train"] + fit["n_holdout"] == 24 - 2 and fit["train_nrmse"] >= 0.0
    return out


def _daemon_config(tmp_path: Path, name: str, port: int, host_id: str, extra: str) -> Path:
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(BASE + f'\n[mqtt]\nenabled = true\nport = {port}\nhost_id = "{host_id}"\n' + extra)
    return cfg


def _run_daemon(tmp_path: Path, name: str, cfg: Path, *extra: str) -> subprocess.Popen[bytes]:
    args = ["-m", "daemon", "-v", "run", "--config", str(cfg), "--state-dir", str(tmp_path / name)]
    return _spawn([*args, "--simulate", "1", *extra], tmp_path / f"{name}.log")


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def test_daemon_serves_live_predictions(mosquitto: Broker, tmp_path: Path) -> None:
    model_path = _train(tmp_path)
    live = f'[live]\nenabled = true\nreadout = "{model_path}"\nboard = "sim0"\npublish_stats = true\n'
    cfg = _daemon_config(tmp_path, "a", mosquitto.port, "hostA", live)
    http = free_port()
    proc = _run_daemon(tmp_path, "a", cfg, "--http", f"127.0.0.1:{http}")
    base = "asicrc/hostA"
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as cli:
            await cli.subscribe(f"{base}/live/prediction", qos=1)
            await cli.subscribe(f"{base}/readout/stats", qos=1)
            got: list[dict[str, float]] = []
            stats: RidgeStats | None = None

            async def receive() -> None:
                nonlocal stats
                async for msg in cli.messages:
                    if str(msg.topic).endswith("readout/stats"):
                        stats = RidgeStats.from_dict(json.loads(bytes(msg.payload)))
                    else:
                        got.append(json.loads(bytes(msg.payload)))

            rx = asyncio.create_task(receive())
            try:
                # the service subscribes some time after start: knock (seq -1) until the first answer
                async with asyncio.timeout(WAIT_S):
                    while not got:
                        assert proc.poll() is None, (tmp_path / "a.log").read_text()[-3000:]
                        await cli.publish(f"{base}/live/input", b'{"seq": -1, "u": 0.5}', qos=1)
                        await asyncio.sleep(0.5)
                await cli.publish(f"{base}/live/input", b"not json", qos=1)
                inputs = np.random.default_rng(5).uniform(0.0, 1.0, 5)
                for i, u in enumerate(inputs):
                    await cli.publish(f"{base}/live/input", json.dumps({"seq": i, "u": float(u)}), qos=1)
                await until(
                    lambda: sum(m["seq"] >= 0 for m in got) == len(inputs) and stats is not None,
                    what="predictions",
                    procs=[proc],
                    within_s=WAIT_S,
                    poll_s=0.05,
                )
            finally:
                rx.cancel()
                await asyncio.gather(rx, return_exceptions=True)
        answers = [m for m in got if m["seq"] >= 0]
        assert [m["seq"] for m in answers] == list(range(len(inputs)))  # in order
        assert all(np.isfinite(m["y"]) and m["latency_s"] > 0 for m in answers)
        model = LiveModel.load(model_path)
        assert stats is not None
        np.testing.assert_allclose(stats.cxy, model.readout.stats_.cxy)
        assert stats.rows == model.readout.stats_.rows

        metrics = _scrape(http)
        n = len(got)
        assert metrics["asicrc_live_predictions_total"] == n
        assert metrics["asicrc_live_latency_seconds_count"] == n
        assert metrics["asicrc_live_malformed_total"] == 1
        assert metrics["asicrc_live_errors_total"] == 0
        assert 'asicrc_nonces_total{board="sim0",chip="0"}' in metrics  # the daemon's own metrics, same page
        rc = _stop(proc, signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "a.log").read_text()
    assert rc == 0, log[-3000:]
    assert "live service on board sim0" in log


async def test_two_host_ids_one_collector(mosquitto: Broker, tmp_path: Path) -> None:
    out = tmp_path / "central"
    col_log = tmp_path / "collect.log"
    broker = f"127.0.0.1:{mosquitto.port}"
    collector = _spawn(["-m", "daemon", "collect", "--mqtt", broker, "--out", str(out), "--json"], col_log)
    daemons: list[subprocess.Popen[bytes]] = []
    seen: Counter[str] = Counter()
    try:
        await until(
            lambda: "collect: recording" in col_log.read_text(),
            what="collector ready",
            procs=[collector],
            within_s=WAIT_S,
            poll_s=0.05,
        )
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as cli:
            await cli.subscribe("asicrc/+/events/+", qos=1)
            for host in ("hostA", "hostB"):
                cfg = _daemon_config(tmp_path, host, mosquitto.port, host, HOLD)
                daemons.append(_run_daemon(tmp_path, host, cfg))

            async def receive() -> None:
                async for msg in cli.messages:
                    seen[str(msg.topic).split("/")[1]] += 1

            rx = asyncio.create_task(receive())
            try:
                await until(
                    lambda: min(seen["hostA"], seen["hostB"]) >= 3,
                    what="both hosts' events",
                    procs=[collector, *daemons],
                    within_s=WAIT_S,
                    poll_s=0.05,
                )
            finally:
                rx.cancel()
                await asyncio.gather(rx, return_exceptions=True)
        for d in daemons:
            assert _stop(d, signal.SIGTERM) == 0
    finally:
        for d in daemons:
            if d.poll() is None:
                d.kill()
        rc = _stop(collector, signal.SIGINT)
    assert rc == 0, col_log.read_text()[-3000:]
    assert collector.stdout is not None
    result = json.loads(collector.stdout.read())
    central = read_table(out).to_pandas()
    assert set(central["board"]) == {"hostA/sim0", "hostB/sim0"}
    assert result["recorded_rows"] == len(central) > 0


def test_a_readout_for_another_board_is_refused_at_start(mosquitto: Broker, tmp_path: Path) -> None:
    """The model has 1 chip's features; the emulated board has 2 chips: exit 2 naming live.readout."""
    model_path = _train(tmp_path)
    live = f'[live]\nenabled = true\nreadout = "{model_path}"\nboard = "sim0"\n[simulate]\nchips = 2\n'
    cfg = _daemon_config(tmp_path, "c", mosquitto.port, "hostC", live)
    proc = _run_daemon(tmp_path, "c", cfg)
    try:
        rc = proc.wait(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "c.log").read_text()
    assert rc == 2, log[-3000:]
    assert "config live.readout" in log and "features" in log
