"""The hardening fixes on the real daemon (subprocess, emulated board, real mosquitto over TLS).

1. MQTT over TLS with the CA named in ``[mqtt] ca_file``: connects, answers commands (counted by result in
   ``/metrics``), Home Assistant discovery on, secrets nowhere; safety trips and fan values in ``/metrics``;
   every file under the state dir private although the daemon runs with umask 0.
2. A state dir unwritable at start: the daemon runs, and recording resumes by itself once it is writable.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.recording import read_table
from tests.conftest import require_binary
from tests.polling import wait_for
from tests.system.fast_config import fast_config
from tests.system.mqtt_fixture import Broker, free_port, wait_port

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-9d2e-secret"
TOKEN = "tok-51c0-secret"


BASE = (
    fast_config()
    + """
[[plans]]
name = "h"
kind = "hold"
hold_voltage_v = 1.2
hold_freq_mhz = 485.0
hold_ticket_diff = 1.0
"""
)


def _certs(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (openssl, EC P-256, one day)."""
    openssl = require_binary("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=asicrc hardening CA")
    run("req", *ec[:-2], "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
    )  # fmt: skip
    (d / "server.key").chmod(0o644)  # mosquitto reads it as the user it drops to
    return d / "ca.crt", d / "server.crt", d / "server.key"


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[tuple[Broker, Path]]:
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = _certs(certs)
    port = free_port()
    lines = [f"listener {port} 127.0.0.1", "persistence false", "allow_anonymous true"]
    lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
    if os.geteuid() == 0:
        lines.append(f"user {pwd.getpwuid(0).pw_name}")
    conf = certs / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    broker = Broker(port=port, workdir=certs, conf=conf)
    broker.start()
    try:
        yield broker, ca
    finally:
        broker.stop()


def _start(cfg: str, tmp: Path, state: Path, port: int, umask: int | None = None) -> subprocess.Popen[bytes]:
    (tmp / "asicrc.toml").write_text(cfg)
    cmd = [sys.executable, "-m", "daemon", "-vv", "run", "--config", str(tmp / "asicrc.toml")]
    cmd += ["--state-dir", str(state), "--simulate", "1", "--http", f"127.0.0.1:{port}"]
    err = open(tmp / "stderr.log", "wb")  # noqa: SIM115 - a file, not a pipe: -vv must never block the daemon
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=err,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def _stop(proc: subprocess.Popen[bytes], tmp: Path) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    err = (tmp / "stderr.log").read_text(errors="replace")
    assert proc.returncode == 0, err[-3000:]
    return err


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pat = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if labels else "") + r" (\S+)"
    m = re.search("^" + pat + "$", text, re.M)
    return float(m.group(1)) if m else None


class TlsClient:
    """A paho client over TLS (the test CA): collects messages of ``topics``, publishes commands."""

    def __init__(self, broker: Broker, ca: Path, topics: list[str]) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.tls_set_context(ssl.create_default_context(cafile=str(ca)))
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))

        def on_connect(cl: Any, *_a: Any) -> None:
            for t in topics:
                cl.subscribe(t, qos=1)

        self.client.on_connect = on_connect
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, topic: str, obj: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(obj).encode(), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_daemon_over_tls_with_the_configured_ca_counts_commands_trips_and_fan(
    tmp_path: Path, tls_broker: tuple[Broker, Path]
) -> None:
    broker, ca = tls_broker
    state, port = tmp_path / "state", free_port()
    cfg = BASE + (
        f"[mqtt]\nenabled = true\nhost = '127.0.0.1'\nport = {broker.port}\ntls = true\nca_file = '{ca}'\n"
        f"username = 'asicrc'\npassword = '{PASSWORD}'\ntoken = '{TOKEN}'\nstatus_interval_s = 0.2\n"
        "buffer_messages = 100\nhomeassistant = true\n"
        "[[simulate.faults]]\nat_s = 0.3\nkind = 'brownout'\nvalue = 4.2\nduration_s = 0.4\n"
    )
    proc = _start(cfg, tmp_path, state, port, umask=0)
    base = f"asicrc/{socket.gethostname()}"
    client = None
    try:
        wait_port(port, 30)
        wait_for(
            lambda: _metric(_get(port, "/metrics"), "asicrc_mqtt_connected") == 1.0,
            procs=[proc],
            within_s=30,
            what="MQTT over TLS",
            poll_s=0.1,
        )
        client = TlsClient(broker, ca, [f"{base}/cmd/result", "homeassistant/#"])
        time.sleep(0.5)  # subscribed before the commands go out
        client.publish(f"{base}/cmd", {"action": "status", "token": TOKEN, "id": 1})
        client.publish(f"{base}/cmd", {"action": "status", "token": "wrong", "id": 2})

        def done() -> bool:
            m = _get(port, "/metrics")
            return (
                _metric(m, "asicrc_mqtt_commands_total", result="accepted") == 1.0
                and _metric(m, "asicrc_mqtt_commands_total", result="refused") == 1.0
                and (_metric(m, "asicrc_safety_trips_total", board="sim0", reason="brownout") or 0) >= 1
                and (_metric(m, "asicrc_fan_duty_ratio", board="sim0") or 0) > 0
                and sum(t.endswith("cmd/result") for t, _ in client.messages) >= 2
            )

        wait_for(
            done,
            procs=[proc],
            within_s=30,
            what="command results, brown-out trip and fan values in /metrics",
            poll_s=0.1,
        )
        metrics, status = _get(port, "/metrics"), _get(port, "/status")
        assert (_metric(metrics, "asicrc_fan_speed_hertz", board="sim0") or 0) > 0
        assert (_metric(metrics, "asicrc_mqtt_published_messages_total") or 0) > 0
        assert json.loads(status)["mqtt"]["connected"] is True
        results = [json.loads(p) for t, p in client.messages if t.endswith("cmd/result")]
        assert len(results) == 2 and {(r.get("id"), r["ok"]) for r in results} == {(1, True), (None, False)}
        assert any(t.startswith("homeassistant/sensor/") for t, _ in client.messages)
    finally:
        if client is not None:
            client.close()
        err = _stop(proc, tmp_path)
    assert "MQTT connected" in err
    files = {str(p): p.read_bytes().decode("utf-8", "replace") for p in state.rglob("*") if p.is_file()}
    assert any(p.endswith("status.json") for p in files)
    for where, text in {"stderr": err, "/metrics": metrics, "/status": status, **files}.items():
        assert PASSWORD not in text and TOKEN not in text, where
    assert stat.S_IMODE(state.stat().st_mode) == 0o750
    world = [(str(p), oct(p.stat().st_mode)) for p in [state, *state.rglob("*")] if p.stat().st_mode & 0o007]
    assert world == [], world


def test_recording_resumes_once_an_unwritable_state_dir_becomes_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the state directory's parent should be")
    state, port = blocker / "state", free_port()
    proc = _start(BASE, tmp_path, state, port)
    try:
        wait_port(port, 30)
        wait_for(
            lambda: _metric(_get(port, "/metrics"), "asicrc_recorder_up") == 0.0,
            procs=[proc],
            within_s=30,
            what="recorder down",
            poll_s=0.1,
        )
        wait_for(
            lambda: (_metric(_get(port, "/metrics"), "asicrc_recorder_error_dropped_rows_total") or 0) > 0,
            procs=[proc],
            within_s=30,
            what="rows dropped and counted",
            poll_s=0.1,
        )
        blocker.unlink()  # the operator fixes it; no restart
        # the recorder retries every RecorderPolicy.retry_interval_s (10 s)
        wait_for(
            lambda: (_metric(_get(port, "/metrics"), "asicrc_recorder_rows_total") or 0) > 0,
            procs=[proc],
            within_s=40,
            what="recording to resume",
            poll_s=0.1,
        )
    finally:
        err = _stop(proc, tmp_path)
    assert f"state directory {state} is not writable" in err
    assert "writing to" in err and "again" in err
    final = json.loads((state / "status.json").read_text())  # written by the retrying status loop
    rec, nonces = final["recorder"], final["boards"]["sim0"]["nonces"]
    assert final["final"] and rec["healthy"] and rec["error_dropped_rows"] > 0
    (run,) = (state / "recordings").iterdir()
    on_disk = read_table(run).num_rows
    assert 0 < on_disk == rec["rows"]
    assert rec["rows"] + rec["error_dropped_rows"] == nonces  # nothing lost uncounted
