"""The serial transport's reader thread on a real pty: the port is drained while the event loop is blocked.

No timing thresholds: the loop is blocked until a writer thread has pushed many times what the pty can hold,
which it can only do if the reader thread keeps draining the port meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import pty
import threading
import time
import tty
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.bitaxe_raw import BitaxeRaw
from drivers.bitaxe_raw_codec import PACKET, encode_reply
from drivers.transport import ReadBatch, SerialTransport, TransportClosed

#: Bytes pushed while the loop is blocked: far more than a pty (~20 KiB on Linux) or a UART (a few KiB) holds.
PUSH_BYTES = 1 << 20
#: A guard against a hung test, not a timing threshold: the writer normally finishes in well under a second.
GUARD_S = 60.0


@pytest.fixture
def pty_pair() -> Iterator[dict[str, Any]]:
    """A raw pty: ``master`` (our side, the "board"), ``path`` of the port; set ``master`` -1 once closed."""
    master, slave = pty.openpty()
    tty.setraw(slave)
    p: dict[str, Any] = {"master": master, "path": os.ttyname(slave)}
    yield p
    os.close(slave)
    if p["master"] >= 0:
        os.close(p["master"])


async def test_reads_continue_while_the_loop_is_blocked(pty_pair: dict[str, Any]) -> None:
    master, path = pty_pair["master"], pty_pair["path"]
    t = SerialTransport(path)
    await t.open()
    payload = bytes(range(256)) * (PUSH_BYTES // 256)
    done = threading.Event()

    def writer() -> None:
        view = memoryview(payload)
        while view:
            n = os.write(master, view[:4096])  # blocks whenever the pty is full: only a reader frees it
            view = view[n:]
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    # Block the event loop (a synchronous wait on the loop's own thread) until everything was written.
    assert done.wait(GUARD_S), "the pty was not drained while the loop was blocked"
    t_wake = time.monotonic_ns()
    got: list[ReadBatch] = []
    while sum(len(b.data) for b in got) < len(payload):
        got.append(await asyncio.wait_for(t.read(), GUARD_S))
    await t.close()
    assert b"".join(b.data for b in got) == payload  # not a byte lost, in order
    assert len(got) > 1
    assert [b.read_id for b in got] == list(range(got[0].read_id, got[0].read_id + len(got)))
    stamps = [b.t_host_ns for b in got]
    assert stamps == sorted(stamps)
    # The reads were stamped on the reader thread when they happened: all but what the pty still held when the
    # writer finished (~20 KiB) and one read in flight (<= 64 KiB) were stamped before the loop woke up.
    early = sum(len(b.data) for b in got if b.t_host_ns < t_wake)
    assert early >= len(payload) // 2


async def test_a_control_reply_read_while_the_loop_was_late_is_no_timeout(pty_pair: dict[str, Any]) -> None:
    """The reply reaches the port in time, but the loop only runs again after the reply deadline: the reader
    thread has it, so the request succeeds instead of failing with ControlTimeout."""
    master, path = pty_pair["master"], pty_pair["path"]
    t = SerialTransport(path)
    await t.open()
    raw = BitaxeRaw(t, timeout_s=0.05, convention=PACKET)
    task = asyncio.create_task(raw.set_i2c_frequency(100_000))
    for _ in range(10):  # let the request go out; then the loop is blocked below
        await asyncio.sleep(0)
    request = os.read(master, 64)  # blocks the loop until the request is there
    echo = (100_000).to_bytes(4, "little")
    os.write(master, encode_reply(request[2], echo, PACKET))
    guard = time.monotonic() + GUARD_S
    while t.queued_reads == 0:  # still blocking the loop: wait until the reader thread has the reply
        assert time.monotonic() < guard, "the reader thread never read the reply"
        time.sleep(0.001)  # noqa: ASYNC251 - blocking the loop is the point
    time.sleep(0.1)  # noqa: ASYNC251 - keep the loop blocked past the request's deadline
    await asyncio.wait_for(task, GUARD_S)  # no ControlTimeout
    await t.close()


async def test_reads_after_close_and_hangup(pty_pair: dict[str, Any]) -> None:
    master, path = pty_pair["master"], pty_pair["path"]
    t = SerialTransport(path)
    await t.open()
    os.write(master, b"abc")
    first = await asyncio.wait_for(t.read(), GUARD_S)
    assert first.data == b"abc"
    assert t.read_nowait() is None
    quiet = t.quiet_ns()
    assert quiet >= 0
    await t.close()
    with pytest.raises(TransportClosed):
        await t.read()
    # reopened: read ids keep counting, a hang-up of the other side ends the stream
    await t.open()
    os.write(master, b"d")
    again = await asyncio.wait_for(t.read(), GUARD_S)
    assert again.read_id > first.read_id
    os.close(master)
    pty_pair["master"] = -1
    with pytest.raises(TransportClosed):
        while True:
            await asyncio.wait_for(t.read(), GUARD_S)
    assert not t.is_open
