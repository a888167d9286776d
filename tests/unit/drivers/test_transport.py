"""Loopback transport, wire time, and the reconnect/backoff logic (no real sleeps)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from drivers.frames import NonceReply
from drivers.transport import (
    Backoff,
    LinkState,
    LoopbackTransport,
    Reconnector,
    SerialTransport,
    Transport,
    TransportClosed,
    TransportError,
    connect_with_backoff,
    loopback_pair,
    wire_time_ns,
)


def counter_clock(start: int = 1_000, step: int = 1_000) -> Callable[[], int]:
    state = {"t": start - step}

    def clock() -> int:
        state["t"] += step
        return state["t"]

    return clock


def nonce_frame(i: int) -> NonceReply:
    return NonceReply(0x1000_0000 + i, 0, (i * 8) & 0xF8 | (i & 7), i & 0xFFFF)


def nonce(i: int) -> bytes:
    return nonce_frame(i).encode()


async def test_loopback_stamps_reads_with_clock_and_increasing_ids() -> None:
    host, dev = loopback_pair(clock=counter_clock())
    await host.write(b"\x01\x02")
    await host.write(b"\x03")
    a, b = await dev.read(), await dev.read()
    assert (a.data, a.t_host_ns, a.read_id) == (b"\x01\x02", 1_000, 0)
    assert (b.data, b.t_host_ns, b.read_id) == (b"\x03", 2_000, 1)
    assert host.written == [b"\x01\x02", b"\x03"]
    await dev.write(b"zz")
    assert (await host.read()).read_id == 0  # ids count per receiving end


async def test_loopback_close_ends_both_ends() -> None:
    host, dev = loopback_pair()
    await dev.write(b"x")
    await host.close()
    assert not host.is_open and not dev.is_open
    with pytest.raises(TransportClosed):
        await dev.read()
    with pytest.raises(TransportClosed):
        await dev.read()
    with pytest.raises(TransportClosed):
        await host.write(b"y")
    with pytest.raises(TransportError):
        await host.open()


async def test_loopback_baud_and_reset_line() -> None:
    host, _ = loopback_pair(has_reset=True)
    seen: list[int] = []
    host.on_baud = seen.append
    await host.set_baud(1_000_000)
    assert host.baud == 1_000_000 and seen == [1_000_000]
    with pytest.raises(ValueError):
        await host.set_baud(0)
    await host.set_reset(True)
    await host.set_reset(False)
    assert host.reset_history == [True, False]
    plain, _ = loopback_pair()
    assert not plain.has_reset
    with pytest.raises(TransportError):
        await plain.set_reset(True)


def test_loopback_satisfies_transport_protocol() -> None:
    assert isinstance(LoopbackTransport(), Transport)


async def test_serial_open_failure_is_a_transport_error(tmp_path: Path) -> None:
    t = SerialTransport(str(tmp_path / "no-such-tty"))
    with pytest.raises(TransportError, match="cannot open"):
        await t.open()
    assert not t.is_open and not t.has_reset
    with pytest.raises(TransportClosed):
        await t.write(b"x")


def test_wire_time() -> None:
    assert wire_time_ns(11, 1_000_000) == 110_000
    assert wire_time_ns(1, 115_200) == 86_805
    assert wire_time_ns(0, 3_125_000) == 0


def test_backoff_is_capped_exponential() -> None:
    b = Backoff(initial_s=0.1, factor=2.0, max_s=1.0)
    assert [b.delay(i) for i in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert b.delay(10_000) == 1.0
    with pytest.raises(ValueError):
        b.delay(-1)


class FlakyFactory:
    """Returns transports whose open fails the first ``failures`` times."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.made: list[LoopbackTransport] = []

    def __call__(self) -> Transport:
        t = LoopbackTransport()
        if len(self.made) < self.failures:
            t._closed = True  # open() raises TransportError
        self.made.append(t)
        return t


async def test_connect_with_backoff_retries_with_growing_delays(caplog: pytest.LogCaptureFixture) -> None:
    sleeps: list[float] = []

    async def fake_sleep(s: float) -> None:
        sleeps.append(s)

    factory = FlakyFactory(3)
    with caplog.at_level(logging.DEBUG, logger="drivers.transport.reconnect"):
        t = await connect_with_backoff(factory, backoff=Backoff(0.5, 2.0, 1.5), sleep=fake_sleep)
    assert t.is_open and t is factory.made[-1]
    assert sleeps == [0.5, 1.0, 1.5]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1  # the first failure of the streak, not every retry


async def test_connect_with_backoff_gives_up() -> None:
    async def fake_sleep(s: float) -> None:
        pass

    with pytest.raises(TransportError, match="giving up after 2"):
        await connect_with_backoff(FlakyFactory(5), sleep=fake_sleep, max_attempts=2)


async def test_reconnector_recovers_after_loss(caplog: pytest.LogCaptureFixture) -> None:
    states: list[LinkState] = []
    sessions: list[Transport] = []

    async def fake_sleep(s: float) -> None:
        pass

    async def session(t: Transport) -> None:
        sessions.append(t)
        if len(sessions) < 3:
            raise TransportClosed("peer hung up")

    factory = FlakyFactory(1)
    rc = Reconnector(factory, session, sleep=fake_sleep, on_state=states.append, name="board0")
    with caplog.at_level(logging.INFO, logger="drivers.transport.reconnect"):
        await rc.run()
    assert states == [
        LinkState.CONNECTING,
        LinkState.CONNECTED,
        LinkState.LOST,
        LinkState.CONNECTING,
        LinkState.RECOVERED,
        LinkState.LOST,
        LinkState.CONNECTING,
        LinkState.RECOVERED,
        LinkState.STOPPED,
    ]
    assert all(not t.is_open for t in sessions)  # closed after every session
    msgs = [r.getMessage() for r in caplog.records if r.name == "drivers.transport.reconnect"]
    assert msgs.count("board0: lost") == 2 and msgs.count("board0: connected") == 1


async def test_reconnector_propagates_other_errors() -> None:
    async def session(t: Transport) -> None:
        raise RuntimeError("bug")

    rc = Reconnector(FlakyFactory(0), session)
    with pytest.raises(RuntimeError, match="bug"):
        await rc.run()
    assert rc.state is LinkState.STOPPED
