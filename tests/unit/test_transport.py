"""Loopback transport, frame reader timestamps, and the reconnect/backoff logic (no real sleeps)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.decoder import FrameDecoder
from drivers.frames import NonceReply, RegisterReply
from drivers.transport import (
    Backoff,
    FrameReader,
    LinkState,
    LoopbackTransport,
    ReadBatch,
    Reconnector,
    ReplyBatchReader,
    SerialTransport,
    Transport,
    TransportClosed,
    TransportError,
    VectorFrameDecoder,
    connect_with_backoff,
    corrected_t_ns,
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


def test_reader_corrects_for_bytes_after_the_frame() -> None:
    host, _ = loopback_pair(baud=1_000_000)
    reader = FrameReader(host)
    data = nonce(0) + nonce(1) + nonce(2)
    out = reader.process(ReadBatch(data, 5_000_000, 7))
    assert [tf.frame for tf in out] == [nonce_frame(i) for i in range(3)]
    assert [tf.t_host_ns for tf in out] == [5_000_000] * 3
    assert [tf.t_ns for tf in out] == [5_000_000 - 220_000, 5_000_000 - 110_000, 5_000_000]
    assert {tf.read_id for tf in out} == {7}


def test_reader_frame_split_across_reads_and_garbage() -> None:
    host, _ = loopback_pair(baud=115_200)
    reader = FrameReader(host)
    reg = RegisterReply(0x13660000, 0, 0).encode()
    assert reader.process(ReadBatch(b"\x00\x13" + reg[:5], 100, 0)) == []
    out = reader.process(ReadBatch(reg[5:] + b"\xff" + nonce(3), 10_000_000, 1))
    assert [type(tf.frame) for tf in out] == [RegisterReply, NonceReply]
    assert out[0].t_ns == 10_000_000 - wire_time_ns(12, 115_200)
    assert out[1].t_ns == 10_000_000
    assert all(tf.read_id == 1 for tf in out)


@given(
    n=st.integers(1, 20),
    cuts=st.lists(st.integers(0, 220), max_size=12),
    baud=st.sampled_from([115_200, 1_000_000, 3_125_000]),
)
def test_reader_timestamps_property(n: int, cuts: list[int], baud: int) -> None:
    """Any read split: every frame found once, t_ns = t_host - wire time of the rest of its read."""
    stream = b"".join(nonce(i) for i in range(n))
    bounds = sorted({c for c in cuts if 0 < c < len(stream)} | {0, len(stream)})
    reader = FrameReader(LoopbackTransport(baud=baud), FrameDecoder())
    got: list[object] = []
    for rid, (a, b) in enumerate(itertools.pairwise(bounds)):
        t = 1_000_000_000 + rid * 1_000_000
        for tf in reader.process(ReadBatch(stream[a:b], t, rid)):
            end = (len(got) + 1) * 11  # stream offset where this frame ended
            assert tf.t_host_ns == t and tf.read_id == rid
            assert a < end <= b
            assert tf.t_ns == t - wire_time_ns(b - end, baud)
            got.append(tf.frame)
    assert got == [nonce_frame(i) for i in range(n)]


async def test_reader_async_iteration_stops_on_close() -> None:
    host, dev = loopback_pair()
    await dev.write(nonce(1))
    await dev.write(nonce(2))
    await dev.close()
    frames = [tf async for tf in FrameReader(host)]
    assert [tf.read_id for tf in frames] == [0, 1]


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


@given(
    n=st.integers(1, 30),
    cuts=st.lists(st.integers(0, 400), max_size=10),
    garbage=st.lists(st.tuples(st.integers(0, 30), st.binary(min_size=1, max_size=5)), max_size=5),
    baud=st.sampled_from([115_200, 1_000_000, 3_125_000]),
)
def test_vector_paths_match_the_scalar_reader(
    n: int, cuts: list[int], garbage: list[tuple[int, bytes]], baud: int
) -> None:
    """VectorFrameDecoder and ReplyBatchReader give the scalar reader's frames, times and read ids."""
    parts = [nonce(i) if i % 3 else RegisterReply(i, i, 0x14).encode() for i in range(n)]
    for at, junk in garbage:
        parts.insert(min(at, len(parts)), junk)
    stream = b"".join(parts)
    bounds = sorted({c for c in cuts if 0 < c < len(stream)} | {0, len(stream)})
    batches = [
        ReadBatch(stream[a:b], 10_000_000 * (i + 1), i) for i, (a, b) in enumerate(itertools.pairwise(bounds))
    ]
    scalar = FrameReader(LoopbackTransport(baud=baud), FrameDecoder())
    vector = FrameReader(LoopbackTransport(baud=baud), VectorFrameDecoder())
    columns = ReplyBatchReader(LoopbackTransport(baud=baud))
    for b in batches:
        want = scalar.process(b)
        assert vector.process(b) == want
        got = columns.process(b)
        assert got.read_id == b.read_id and got.t_host_ns == b.t_host_ns
        assert got.t_ns.tolist() == [tf.t_ns for tf in want]
        assert got.replies.value.tolist() == [
            tf.frame.nonce if isinstance(tf.frame, NonceReply) else getattr(tf.frame, "value", None)
            for tf in want
        ]


def test_default_decoder_is_vectorised() -> None:
    assert isinstance(FrameReader(LoopbackTransport()).decoder, VectorFrameDecoder)


def test_corrected_t_ns_vector() -> None:
    ends = np.array([11, 22, 33], dtype=np.int64)
    assert corrected_t_ns(ends, 33, 1_000_000, 1_000_000).tolist() == [780_000, 890_000, 1_000_000]
