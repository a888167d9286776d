"""End to end: a real ``asicrc run --simulate 1`` daemon is scraped by a real Prometheus and talks sd_notify
to a real AF_UNIX datagram socket (READY, WATCHDOG, STOPPING), then stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.system.prom_fixture import Prometheus, free_port

pytestmark = pytest.mark.system


ROOT = Path(__file__).resolve().parents[2]


def receive_until(
    sock: socket.socket, field: str, timeout_s: float, proc: subprocess.Popen[str]
) -> list[str]:
    """Datagrams received until one contains ``field`` (bounded; fails early if the daemon exits)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            msg = sock.recv(4096).decode()
        except TimeoutError:
            if proc.poll() is not None:
                break
            continue
        got.append(msg)
        if field in msg.split("\n"):
            return got
    raise AssertionError(f"no {field} from the daemon within {timeout_s} s; got {got}")


def test_daemon_scraped_by_prometheus_and_notifies_systemd(
    tmp_path: Path, prometheus_factory: Callable[[Sequence[str]], Prometheus]
) -> None:
    port = free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    env = dict(os.environ)
    env.update(NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="2000000")  # a ping every second
    env.pop("WATCHDOG_PID", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "daemon", "run", "--simulate", "1", "--state-dir", str(tmp_path / "state")]
    cmd += ["--http", f"127.0.0.1:{port}", "--duration", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        receive_until(notify, "READY=1", 60, proc)
        prom = prometheus_factory([f"127.0.0.1:{port}"])
        prom.wait_up()
        nonces = prom.wait_query(
            'sum(asicrc_nonces_total{board="sim0"})', lambda r: bool(r) and float(r[0]["value"][1]) > 0
        )
        assert float(nonces[0]["value"][1]) > 0
        assert [float(r["value"][1]) for r in prom.query('asicrc_board_up{board="sim0"}')] == [1.0]
        assert prom.query("asicrc_frequency_hertz") and prom.query("asicrc_recorder_up")
        assert prom.query("asicrc_nonce_interval_seconds_bucket")
        receive_until(notify, "WATCHDOG=1", 10, proc)
        proc.send_signal(signal.SIGTERM)
        receive_until(notify, "STOPPING=1", 30, proc)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        notify.close()
