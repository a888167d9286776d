"""Security checks: loopback-only defaults, refused control without authorisation, MQTT over TLS, secrets kept
out of logs/status/metrics, restrictive file modes, and the systemd unit's exposure score."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from daemon.config import default_config, parse_config
from daemon.http import HttpServer, make_app
from daemon.mqtt import MqttBridge, MqttSettings
from daemon.state import DaemonState
from tests.conftest import require_binary
from tests.polling import until
from tests.system.mqtt_fixture import Broker, free_port, wait_port

pytestmark = pytest.mark.system


ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-7f3a9c1e-secret"
PASSWORD = "s3cret-pass"  # what the mosquitto_auth fixture expects
#: Exposure ceiling (RELIABILITY.md) for ``systemd-analyze security --offline=yes``.
MAX_EXPOSURE = 3.0


# ------------------------------------------------------------------------------------ loopback defaults


def test_defaults_bind_loopback_and_disable_mqtt() -> None:
    cfg = default_config()
    assert cfg.http.host == "127.0.0.1"
    assert cfg.mqtt.enabled is False and cfg.mqtt.host == "127.0.0.1" and cfg.mqtt.token == ""
    assert parse_config({}).http.host == "127.0.0.1"


async def test_http_server_listens_on_loopback_only() -> None:
    server = HttpServer(make_app(DaemonState(version="t", host="h")), port=0)
    await server.start()
    try:
        runner = server._runner
        assert runner is not None
        hosts = {a[0] for a in runner.addresses}
        assert hosts == {"127.0.0.1"}, hosts
        other = _non_loopback_ip()
        if other is not None:  # reachable on loopback, not on the host's other address
            with pytest.raises(OSError):
                socket.create_connection((other, server.port), timeout=1).close()
    finally:
        await server.stop()


def _non_loopback_ip() -> str | None:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            ip = str(s.getsockname()[0])
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


async def test_http_has_no_control_endpoint() -> None:
    server = HttpServer(make_app(DaemonState(version="t", host="h")), port=0)
    await server.start()
    try:
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            for path in ("/status", "/metrics", "/setpoint", "/cmd", "/plans/start"):
                req = urllib.request.Request(f"{server.url}{path}", data=b"{}", method=method)
                with pytest.raises(urllib.error.HTTPError) as err:
                    await asyncio.to_thread(urllib.request.urlopen, req, timeout=5)
                assert err.value.code in (404, 405), (method, path, err.value.code)
    finally:
        await server.stop()


# ------------------------------------------------------------------------------------------ MQTT commands


@pytest.fixture
async def bridge_factory() -> AsyncIterator[Any]:
    """``start(settings) -> (bridge, calls)``: a running bridge whose handler records the commands it gets."""
    made: list[MqttBridge] = []

    def start(settings: MqttSettings) -> tuple[MqttBridge, list[dict[str, Any]]]:
        calls: list[dict[str, Any]] = []

        async def handler(cmd: dict[str, Any]) -> dict[str, Any]:
            calls.append(cmd)
            return {"ok": True, "outcome": "applied"}

        bridge = MqttBridge(settings, status=lambda: {"ok": True}, commands=handler)
        asyncio.get_running_loop().create_task(bridge.run())
        made.append(bridge)
        return bridge, calls

    yield start
    for b in made:
        await b.close()


async def _command_results(port: int, base: str, payloads: list[bytes], **kw: Any) -> list[dict[str, Any]]:
    """Publish ``payloads`` on ``<base>/cmd`` and collect as many ``cmd/result`` messages."""
    out: list[dict[str, Any]] = []
    async with aiomqtt.Client("127.0.0.1", port, **kw) as client:
        await client.subscribe(f"{base}/cmd/result", qos=1)
        for p in payloads:
            await client.publish(f"{base}/cmd", p, qos=1)
        async with asyncio.timeout(15):
            async for msg in client.messages:
                assert isinstance(msg.payload, bytes)
                out.append(json.loads(msg.payload))
                if len(out) == len(payloads):
                    break
    return out


async def test_mqtt_commands_need_the_token(mosquitto: Broker, bridge_factory: Any) -> None:
    s = MqttSettings(port=mosquitto.port, host_id="sec", token=TOKEN, status_interval_s=60)
    bridge, calls = bridge_factory(s)
    await until(lambda: bridge.stats.connected, within_s=15.0)
    await asyncio.sleep(0.3)  # the cmd subscription follows the connect
    sp = {"action": "set_setpoint", "board": "sim0", "voltage_v": 1.2, "freq_mhz": 485.0}
    results = await _command_results(
        mosquitto.port,
        s.base,
        [
            json.dumps(sp).encode(),  # no token
            json.dumps({**sp, "token": "guess"}).encode(),
            json.dumps({**sp, "token": TOKEN.upper()}).encode(),
            b"not json",
            json.dumps({**sp, "token": TOKEN, "id": 7}).encode(),
        ],
    )
    assert [r["ok"] for r in results] == [False, False, False, False, True]
    assert all("unauthorised" in r["reason"] for r in results[:3])
    assert results[4]["id"] == 7
    assert len(calls) == 1 and "token" not in calls[0]  # only the authorised one reached the daemon
    assert bridge.stats.commands_refused == 4 and bridge.stats.commands_accepted == 1


async def test_mqtt_without_token_accepts_no_command(mosquitto: Broker, bridge_factory: Any) -> None:
    s = MqttSettings(port=mosquitto.port, host_id="open", token=None, status_interval_s=60)
    bridge, calls = bridge_factory(s)
    await until(lambda: bridge.stats.connected, within_s=15.0)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(f"{s.base}/cmd", json.dumps({"action": "status", "token": ""}).encode(), qos=1)
        await client.publish(f"{s.base}/cmd", json.dumps({"action": "status"}).encode(), qos=1)
    await asyncio.sleep(0.5)
    assert calls == []  # not even subscribed: the default is closed, not open
    assert bridge.stats.commands_accepted == 0


# ---------------------------------------------------------------------------------------------- MQTT + TLS


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl, EC P-256, one day)."""
    openssl = require_binary("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=asicrc test CA",
    )
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    for f in ("ca.key", "server.key"):
        (d / f).chmod(0o644)  # mosquitto reads them as the user it drops to
    return d / "ca.crt", d / "server.crt", d / "server.key"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Any:
    ca, cert, key = _make_certs(tmp_path)
    port = free_port()
    lines = [f"listener {port} 127.0.0.1", "persistence false", "allow_anonymous true"]
    lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
    if os.geteuid() == 0:
        lines.append(f"user {pwd.getpwuid(0).pw_name}")
    conf = tmp_path / "mosquitto-tls.conf"
    conf.write_text("\n".join(lines) + "\n")
    broker = Broker(port=port, workdir=tmp_path, conf=conf)
    broker.start()
    try:
        yield broker, ca
    finally:
        broker.stop()


async def test_mqtt_bridge_over_tls_with_a_private_ca(tls_broker: Any, bridge_factory: Any) -> None:
    import ssl

    broker, ca = tls_broker
    s = MqttSettings(port=broker.port, tls=True, ca_file=str(ca), host_id="tls", token=TOKEN)
    bridge, calls = bridge_factory(s)
    await until(lambda: bridge.stats.connected, within_s=15.0)
    ctx = ssl.create_default_context(cafile=str(ca))
    payload = json.dumps({"action": "status", "token": TOKEN}).encode()
    await asyncio.sleep(0.3)
    results = await _command_results(broker.port, s.base, [payload], tls_context=ctx)
    assert results[0]["ok"] is True and len(calls) == 1
    # a plain-text client cannot talk to the TLS listener
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", broker.port, timeout=2):
            pass


async def test_mqtt_bridge_refuses_an_untrusted_certificate(tls_broker: Any, bridge_factory: Any) -> None:
    broker, _ = tls_broker
    s = MqttSettings(port=broker.port, tls=True, ca_file=None, host_id="untrusted")  # system CAs only
    bridge, _calls = bridge_factory(s)
    await until(lambda: bool(bridge.stats.last_error), within_s=15.0)
    assert not bridge.stats.connected
    assert "certificate" in bridge.stats.last_error.lower() or "ssl" in bridge.stats.last_error.lower()


def test_daemon_config_can_name_a_ca_file() -> None:
    from daemon.mqtt_link import MqttSettings

    cfg = parse_config({"mqtt": {"tls": True, "ca_file": "/etc/asicrc/ca.crt"}})
    s = MqttSettings.from_config(cfg.mqtt)
    assert s.tls and s.ca_file == "/etc/asicrc/ca.crt"


# ---------------------------------------------------------------------------- secrets, file modes (one run)


@pytest.fixture
def daemon_run(tmp_path: Path, mosquitto_auth: Broker) -> tuple[Path, str, dict[str, str]]:
    """One daemon run (umask 0, MQTT with a password and a token): state dir, stderr, what it exposed."""
    state = tmp_path / "state"
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(
        "[mqtt]\nenabled = true\nhost = '127.0.0.1'\n"
        f"port = {mosquitto_auth.port}\nusername = 'asicrc'\npassword = '{PASSWORD}'\ntoken = '{TOKEN}'\n"
        "[timing]\nstatus_interval_s = 0.2\n[recorder]\nflush_interval_s = 0.2\n"
        "[[plans]]\nname = 'h'\nkind = 'hold'\nhold_ticket_diff = 1.0\n"
    )
    port = free_port()
    cmd = [sys.executable, "-m", "daemon", "-vv", "run", "--config", str(cfg), "--state-dir", str(state)]
    cmd += ["--simulate", "1", "--http", f"127.0.0.1:{port}"]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.umask(0),  # the daemon must not rely on the caller's umask
    )
    try:
        wait_port(port, 30)
        got: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for path in ("/status", "/metrics", "/healthz"):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                        got[path] = r.read().decode()
                except urllib.error.HTTPError as exc:
                    got[path] = exc.read().decode()
            if '"nonces": 0' not in got["/status"] and (state / "status.json").exists():
                break
            time.sleep(0.2)
        with aiomqtt_sync_messages(mosquitto_auth) as messages:
            got["mqtt"] = "\n".join(messages)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    return state, err, got


def test_secrets_stay_out_of_logs_status_metrics_and_files(
    daemon_run: tuple[Path, str, dict[str, str]],
) -> None:
    state, err, got = daemon_run
    assert "MQTT connected" in err  # the password worked ...
    files = {str(p): p.read_bytes().decode("utf-8", "replace") for p in state.rglob("*") if p.is_file()}
    for where, text in {"stderr": err, **got, **files}.items():
        for secret in (PASSWORD, TOKEN):
            assert secret not in text, f"{secret!r} found in {where}"  # ... and was never shown
    assert "asicrc_nonces" in got["/metrics"] and got["mqtt"]


def test_state_files_are_private_even_with_umask_0(daemon_run: tuple[Path, str, dict[str, str]]) -> None:
    state, _, _ = daemon_run
    recordings = [p for p in state.rglob("*") if "recordings" in p.parts]
    assert recordings and all(not p.stat().st_mode & 0o007 for p in recordings)  # the recorder is fine
    world = [
        (str(p), oct(stat.S_IMODE(p.stat().st_mode)))
        for p in [state, *state.rglob("*")]
        if p.stat().st_mode & 0o007
    ]
    assert world == [], world  # nothing under the state dir is world-accessible, even with umask 0


class aiomqtt_sync_messages:
    """Collect what the daemon publishes for a second (paho, with the broker's credentials)."""

    def __init__(self, broker: Broker) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[str] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.username_pw_set(broker.username, broker.password)
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            f"{m.topic} {bytes(m.payload).decode('utf-8', 'replace')}"
        )
        self.client.on_connect = lambda cl, *_a: cl.subscribe("#")
        self.client.connect("127.0.0.1", broker.port)

    def __enter__(self) -> list[str]:
        self.client.loop_start()
        time.sleep(1.5)
        return self.messages

    def __exit__(self, *exc: object) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_mqtt_settings_repr_hides_secrets() -> None:
    s = MqttSettings(password=PASSWORD, token=TOKEN)
    assert PASSWORD not in repr(s) and TOKEN not in repr(s)


# ------------------------------------------------------------------------------------------------- systemd


def test_systemd_unit_exposure_at_most_3() -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        require_binary("systemd-analyze")
    unit = ROOT / "systemd" / "asicrc.service"
    out = subprocess.run(
        [str(exe), "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=60
    )
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout + out.stderr)
    assert m, out.stdout[-2000:] + out.stderr[-2000:]
    assert float(m.group(1)) <= MAX_EXPOSURE
    text = unit.read_text()
    assert "DeviceAllow=char-ttyACM rw" in text and "DevicePolicy=closed" in text  # devices still reachable
