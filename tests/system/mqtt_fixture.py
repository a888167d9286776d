"""A real mosquitto broker on a free loopback port, started per test with a bounded wait.

Import the fixtures into a test module (``from tests.system.mqtt_fixture import mosquitto, Broker``).
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.system.netutil import free_port as free_port  # re-exported for the tests
from tests.system.netutil import wait_port as _wait_port

#: Bound on waiting for the broker to accept connections (s); it starts in well under a second.
START_TIMEOUT_S = 10.0


def wait_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until 127.0.0.1:port accepts a TCP connection, or raise TimeoutError."""
    _wait_port(port, timeout_s)


@dataclass
class Broker:
    """A running mosquitto: its port, config directory and process (restartable)."""

    port: int
    workdir: Path
    conf: Path
    proc: subprocess.Popen[bytes] | None = None
    username: str | None = None
    password: str | None = None

    def start(self) -> None:
        """Start (or restart) the broker and wait until it listens."""
        exe = require_binary("mosquitto")
        log = open(self.workdir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen([exe, "-c", str(self.conf)], stdout=log, stderr=log)
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the broker (SIGTERM, bounded wait, then SIGKILL)."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


def _make_broker(tmp: Path, auth: bool, persist: bool = False) -> Broker:
    port = free_port()
    lines = [f"listener {port} 127.0.0.1", "log_dest stderr"]
    # persist: sessions, subscriptions and queued QoS-1 messages survive a restart (saved on SIGTERM).
    lines += ["persistence true", f"persistence_location {tmp}/"] if persist else ["persistence false"]
    if os.geteuid() == 0:
        # Started as root, mosquitto drops to user "mosquitto", which cannot read the 0700 pytest tmp dir.
        lines.append(f"user {pwd.getpwuid(0).pw_name}")
    broker = Broker(port=port, workdir=tmp, conf=tmp / "mosquitto.conf")
    if auth:
        pw = tmp / "passwd"
        subprocess.run(
            [require_binary("mosquitto_passwd"), "-c", "-b", str(pw), "asicrc", "s3cret-pass"],
            check=True,
            capture_output=True,
        )
        pw.chmod(0o600)
        lines += ["allow_anonymous false", f"password_file {pw}"]
        broker.username, broker.password = "asicrc", "s3cret-pass"
    else:
        lines.append("allow_anonymous true")
    broker.conf.write_text("\n".join(lines) + "\n")
    return broker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """An anonymous broker on a free loopback port."""
    broker = _make_broker(tmp_path, auth=False)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_auth(tmp_path: Path) -> Iterator[Broker]:
    """A broker that requires user ``asicrc`` with password ``s3cret-pass``."""
    broker = _make_broker(tmp_path, auth=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_persistent(tmp_path: Path) -> Iterator[Broker]:
    """An anonymous broker whose sessions survive :meth:`Broker.stop` / :meth:`Broker.start` (persistence on),
    as a production broker's do: a ``clean_session=False`` subscriber misses nothing across a restart."""
    broker = _make_broker(tmp_path, auth=False, persist=True)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
