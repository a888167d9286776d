"""sd_notify against a real AF_UNIX datagram socket (filesystem path and abstract namespace)."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.notify import Notifier, watchdog_interval_s, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify.sock")
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_ready_status_watchdog_stopping(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(env={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("2 boards")
    assert recv(sock) == "READY=1\nSTATUS=2 boards"
    assert n.status("sweep 3/12\nnext")
    assert recv(sock) == "STATUS=sweep 3/12 next"
    assert n.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    assert n.stopping()
    assert recv(sock) == "STOPPING=1"
    assert n.sent == 4 and n.errors == 0
    n.close()


def test_abstract_socket_with_at_sign() -> None:
    name = "asicrc-test-" + uuid.uuid4().hex
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(5)
    try:
        n = Notifier(env={"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert recv(sock) == "READY=1"
        n.close()
    finally:
        sock.close()


def test_without_socket_every_call_is_a_noop() -> None:
    n = Notifier(env={})
    assert not n.enabled
    assert not n.ready() and not n.watchdog() and n.sent == 0


def test_missing_listener_is_counted_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    n = Notifier(socket_path=str(tmp_path / "gone.sock"))
    assert not n.ready() and not n.watchdog()
    assert n.errors == 2 and sum("sd_notify" in r.message for r in caplog.records) == 1  # warned once


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_environment(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected


async def test_watchdog_loop_pings_only_while_healthy(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sock.setblocking(False)
    n = Notifier(socket_path=path)
    healthy = [True]
    task = asyncio.create_task(watchdog_loop(n, 0.0, lambda: healthy[0]))
    for _ in range(5):
        await asyncio.sleep(0)
    healthy[0] = False
    sent = n.sent
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent >= 2 and n.sent == sent
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.close()
