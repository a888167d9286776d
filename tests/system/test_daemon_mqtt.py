"""The daemon (subprocess, emulated board) against a real mosquitto: events and sweep summaries published,
commands pass the safety gate (clamped), plans stopped and started by command."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from daemon.mqtt import decode_events
from tests.system.mqtt_fixture import Broker
from tests.system.test_daemon import BASE, ROOT

pytestmark = pytest.mark.system

TOKEN = "t0ken-for-tests"


async def _collect(client: aiomqtt.Client, want: dict[str, int], timeout_s: float) -> dict[str, list[Any]]:
    """Messages by topic suffix (events/sim0, summary/sim0, cmd/result) until ``want`` counts are met."""
    got: dict[str, list[Any]] = {k: [] for k in want}
    async with asyncio.timeout(timeout_s):
        async for m in client.messages:
            for key in want:
                if str(m.topic).endswith(key):
                    payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                    got[key].append(payload)
            if all(len(got[k]) >= n for k, n in want.items()):
                return got
    return got  # pragma: no cover - the timeout raises


async def test_daemon_publishes_and_obeys_gated_commands(mosquitto: Broker, tmp_path: Path) -> None:
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(
        BASE
        + f'\n[mqtt]\nenabled = true\nport = {mosquitto.port}\ntoken = "{TOKEN}"\n'
        + '\n[[plans]]\nname = "one"\nkind = "sweep"\npoints = [[1.2, 485.0, 1.0]]\n'
        + "settle_s = 0.1\ndwell_s = 0.5\n"
        + '\n[[plans]]\nname = "h"\nkind = "hold"\nhold_voltage_v = 1.2\nhold_freq_mhz = 400.0\n'
        + "hold_ticket_diff = 1.0\n"
    )
    cmd = [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--state-dir", str(tmp_path / "s")]
    proc = await asyncio.create_subprocess_exec(*cmd, "--simulate", "1", cwd=ROOT, stderr=subprocess.PIPE)
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe("asicrc/#", qos=1)
            got = await _collect(client, {"events/sim0": 2, "summary/sim0": 1}, 30.0)
            table = decode_events(got["events/sim0"][0])
            assert table.num_rows > 0 and "t_ns" in table.column_names
            summary = json.loads(got["summary/sim0"][0])
            assert summary["plan"] == "one" and summary["summary"]["freq_mhz"] == 485.0
            host_topic = "asicrc/" + socket.gethostname()  # the daemon's host id
            # out-of-envelope setpoint: clamped by the gate, not applied as asked
            await client.publish(
                f"{host_topic}/cmd",
                json.dumps(
                    {
                        "token": TOKEN,
                        "id": 1,
                        "action": "set_setpoint",
                        "board": "sim0",
                        "voltage_v": 1.5,
                        "freq_mhz": 900.0,
                        "ticket_diff": 1.0,
                    }
                ),
                qos=1,
            )
            res = json.loads((await _collect(client, {"cmd/result": 1}, 10.0))["cmd/result"][0])
            assert res["id"] == 1 and res["outcome"] == "clamped"
            assert res["applied"]["freq_mhz"] == 575.0 and res["applied"]["voltage_v"] == 1.3
            # a wrong token is refused before reaching the daemon
            await client.publish(
                f"{host_topic}/cmd", json.dumps({"token": "no", "action": "stop_plan"}), qos=1
            )
            res = json.loads((await _collect(client, {"cmd/result": 1}, 10.0))["cmd/result"][0])
            assert res["ok"] is False and "unauthorised" in res["reason"]
            await client.publish(
                f"{host_topic}/cmd",
                json.dumps(
                    {"token": TOKEN, "id": 2, "action": "start_plan", "board": "sim0", "plan": "nope"}
                ),
                qos=1,
            )
            res = json.loads((await _collect(client, {"cmd/result": 1}, 10.0))["cmd/result"][0])
            assert res["ok"] is False and "unknown plan" in res["reason"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-3000:]
