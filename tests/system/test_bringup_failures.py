"""A board that never comes up, with a real subprocess daemon: a missing device, ``/dev/null`` (not a tty) and
a real pty answering garbage. Each gives its reason once at the default log level, ``asicrc run`` exits 2
within the start-up window, and next to a healthy emulated board ``/healthz`` is 503 naming the board while
``asicrc_bringup_failures_total`` counts the attempts. Also: an explicit ``--http`` on a busy port exits 2.
Timing constants are shrunk through the config (tests/system/fast_config.py)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import tty
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.fast_config import fast_config
from tests.system.netutil import free_port

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
#: The start-up window of these tests (s): one or two failed attempts (an attempt on a garbage port waits the
#: chain's 1 s enumeration gap) and a bounded run.
WINDOW_S = 2.5


class GarbagePty:
    """A pty whose far end answers every write with seeded random bytes (never a valid frame preamble)."""

    def __init__(self, seed: int = 3) -> None:
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self.received = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 4096)
            except OSError:
                continue
            self.received += len(data)
            junk = bytes(self._rng.choice(range(0x56, 0xA0)) for _ in range(len(data)))  # no 55 AA / AA 55
            with contextlib.suppress(OSError):
                os.write(self.master, junk)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def garbage_pty() -> Iterator[GarbagePty]:
    p = GarbagePty()
    try:
        yield p
    finally:
        p.close()


def _config(tmp_path: Path, data_port: str, *, window_s: float = WINDOW_S) -> Path:
    text = fast_config(timing={"startup_timeout_s": window_s}, http={"enabled": False})
    text += f'\n[[boards]]\nname = "bad0"\nkind = "generic"\nchips = 1\ndata_port = "{data_port}"\n'
    p = tmp_path / "asicrc.toml"
    p.write_text(text)
    return p


def _start(cfg: Path, state: Path, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "daemon", "run", "--config", str(cfg), "--state-dir", str(state), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    ("case", "reason", "text"),
    [
        ("missing", "open", "No such file or directory"),
        ("devnull", "open", "/dev/null"),
        ("garbage", "no_chip", "no chip answered the chip-id read"),
    ],
)
def test_a_board_that_never_comes_up_exits_2_with_its_reason(
    tmp_path: Path, garbage_pty: GarbagePty, case: str, reason: str, text: str
) -> None:
    port = {"missing": str(tmp_path / "ttyACM9"), "devnull": "/dev/null", "garbage": garbage_pty.path}[case]
    t0 = time.monotonic()
    proc = _start(_config(tmp_path, port), tmp_path / "state")
    out, err = proc.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, err[-3000:]
    assert out == ""
    # the reason, at the default log level, once (a change of state), although the daemon retried
    not_up = [ln for ln in err.splitlines() if f"board bad0: not up ({reason})" in ln]
    assert len(not_up) == 1, err[-3000:]
    assert text in not_up[0]
    # the exit reason is one line naming the window, the board and why
    (final,) = [ln for ln in err.splitlines() if "no board came up within" in ln]
    assert f"within {WINDOW_S:g} s (timing.startup_timeout_s)" in final
    assert f"bad0: {reason}: " in final and text in final
    # what the board was going to do, said at start-up: no plan, so it would only hold its floor
    assert "board bad0: no plan for it in [[plans]]: it holds the safe floor" in err
    assert any(ln.strip().startswith("bad0: not up, ") for ln in err.splitlines())  # the status block
    # no per-retry link noise while the board never came up
    assert "board bad0: lost" not in err and "board bad0: recovered" not in err
    assert WINDOW_S <= elapsed < WINDOW_S + 30  # bounded: interpreter start-up and stop on a loaded machine
    status = json.loads((tmp_path / "state" / "status.json").read_text())
    b = status["boards"]["bad0"]
    assert b["bringup"]["ever_up"] is False and b["bringup"]["failures"][reason] >= 1
    if case == "garbage":
        assert garbage_pty.received > 0  # the daemon really talked to the pty


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(body: str, prefix: str) -> float:
    return sum(float(ln.rsplit(" ", 1)[1]) for ln in body.splitlines() if ln.startswith(prefix))


def test_healthz_503_and_counted_while_one_board_stays_down(tmp_path: Path, garbage_pty: GarbagePty) -> None:
    port = free_port()
    cfg = _config(tmp_path, garbage_pty.path, window_s=1.5)
    proc = _start(cfg, tmp_path / "state", "--simulate", "1", "--http", f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 40
        code, body = 0, ""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited: {proc.communicate()[1][-3000:]}")
            try:
                code, body = _get(f"http://127.0.0.1:{port}/healthz")
            except OSError:
                code = 0
            if code == 503 and "no_chip" in body:  # earlier: "no bring-up attempt finished"
                break
            time.sleep(0.1)
        assert code == 503, body
        health = json.loads(body)
        assert health["status"] == "unhealthy"
        assert "board bad0 not up after" in health["reason"] and "no_chip" in health["reason"]
        assert "sim0" not in health["reason"]
        _, metrics = _get(f"http://127.0.0.1:{port}/metrics")
        assert _metric(metrics, 'asicrc_bringup_failures_total{board="bad0",reason="no_chip"}') >= 1
        assert _metric(metrics, 'asicrc_bringup_failures_total{board="sim0",reason="no_chip"}') == 0
        status = json.loads(_get(f"http://127.0.0.1:{port}/status")[1])
        assert status["boards"]["sim0"]["bringup"]["ever_up"] is True
        assert status["boards"]["bad0"]["bringup"]["error"].startswith("no_chip: ")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]  # one board came up: the daemon ran on
        assert "no board came up" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_explicit_http_on_a_busy_port_exits_2_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "asicrc.toml"
        cfg.write_text(fast_config(http={"enabled": False}))
        proc = _start(cfg, tmp_path / "state", "--simulate", "1", "--http", f"127.0.0.1:{port}")
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err[-3000:]
    assert out == ""
    lines = err.strip().splitlines()
    (line,) = [ln for ln in lines if "ERROR" in ln]
    want = (
        f"--http 127.0.0.1:{port}: cannot listen: Address already in use; choose another port (0 picks one)"
    )
    assert line.endswith(want)
    assert not any("board sim0" in ln for ln in lines)  # stopped before any board was started
    assert not (tmp_path / "state" / "recordings").exists() or not any(
        (tmp_path / "state" / "recordings").iterdir()
    )


def test_a_control_channel_answering_garbage_is_a_control_failure(
    tmp_path: Path, garbage_pty: GarbagePty
) -> None:
    control = GarbagePty(seed=4)
    try:
        text = fast_config(timing={"startup_timeout_s": WINDOW_S}, http={"enabled": False})
        text += (
            f'\n[[boards]]\nname = "bad0"\nkind = "gamma"\ndata_port = "{garbage_pty.path}"\n'
            f'control_port = "{control.path}"\n'
        )
        cfg = tmp_path / "asicrc.toml"
        cfg.write_text(text)
        proc = _start(cfg, tmp_path / "state")
        _, err = proc.communicate(timeout=60)
    finally:
        control.close()
    assert proc.returncode == 2, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if "board bad0: not up (" in ln]
    assert "not up (control): board parts start-up failed" in line  # the first control request gets no reply
    assert control.received > 0 and garbage_pty.received == 0  # nothing reached the chain before the parts


def test_start_up_says_why_a_board_with_mqtt_but_no_plan_records_almost_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "asicrc.toml"
    mqtt = {"enabled": True, "host": "127.0.0.1", "port": free_port()}  # no broker there: the daemon runs on
    cfg.write_text(fast_config(http={"enabled": False}, mqtt=mqtt))
    proc = _start(cfg, tmp_path / "state", "--simulate", "1", "--duration", "0.5")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    (line,) = [ln for ln in err.splitlines() if "board sim0: no plan" in ln]
    assert " INFO " in line  # the default log level
    assert "it holds the safe floor 1.10 V 50 MHz ticket difficulty 256 (about 0.041 nonces/s" in line
    assert "MQTT commands are off (no [mqtt] token): add a [[plans]] entry for it" in line
