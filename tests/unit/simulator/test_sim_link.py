"""Link models: line-rate serialisation, FTDI latency-timer batching, ground truth; stream faults."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.decoder import FrameDecoder
from drivers.frames import NonceReply
from simulator.faults import Fault, StreamFaults
from simulator.link import FtdiLink, IdealLink, make_link

BAUD = 1_000_000.0
REPLY = NonceReply(0x12345678, 0, 0x08, 0x0001).encode()


def test_ideal_link_delivers_after_wire_time_and_serialises() -> None:
    link = IdealLink(record=True)
    link.push(1.0, REPLY, BAUD)
    link.push(1.0, REPLY, BAUD)  # emitted together: the second waits for the wire
    out = link.pop_ready(2.0)
    wire = 11 * 10 / BAUD
    assert [d.t for d in out] == pytest.approx([1.0 + wire, 1.0 + 2 * wire])
    assert [g.emit_s for g in link.truth] == [1.0, 1.0]
    assert link.next_delivery() == math.inf


def test_ftdi_holds_bytes_until_the_latency_timer() -> None:
    link = FtdiLink(latency_s=0.016, record=True)
    link.push(0.001, REPLY, BAUD)
    link.push(0.005, REPLY, BAUD)
    assert link.pop_ready(0.0159) == []
    (chunk,) = link.pop_ready(0.0161)
    assert chunk.t == pytest.approx(0.016) and chunk.data == REPLY + REPLY
    link.push(0.040, REPLY, BAUD)
    (chunk,) = link.pop_ready(1.0)
    assert chunk.t == pytest.approx(0.048)  # next tick of the timer restarted at 0.016
    assert [g.deliver_s for g in link.truth] == pytest.approx([0.016, 0.016, 0.048])
    assert all(g.deliver_s >= g.wire_end_s for g in link.truth)


def test_ftdi_flushes_a_full_packet_early() -> None:
    link = FtdiLink(latency_s=0.016, packet=62)
    for _ in range(6):
        link.push(0.001, REPLY, 3.125e6)  # 66 bytes back to back
    out = link.pop_ready(0.0101)
    assert len(out) == 1 and len(out[0].data) == 62
    assert out[0].t == pytest.approx(0.001 + 62 * 10 / 3.125e6)
    rest = link.pop_ready(1.0)
    assert sum(len(c.data) for c in rest) == 4


@given(
    kind=st.sampled_from(["ideal", "ftdi"]),
    gaps=st.lists(st.floats(0.0, 0.05), min_size=1, max_size=40),
    baud=st.sampled_from([115_740.7, 1_041_666.7, 3_125_000.0]),
)
def test_links_preserve_bytes_order_and_causality(kind: str, gaps: list[float], baud: float) -> None:
    link = make_link(kind, record=True)
    t = 0.0
    sent = bytearray()
    for i, g in enumerate(gaps):
        t += g
        frame = NonceReply(i, 0, 0, 0).encode()
        sent += frame
        link.push(t, frame, baud)
    out = link.pop_ready(t + 10.0)
    assert b"".join(c.data for c in out) == bytes(sent)
    times = [c.t for c in out]
    assert times == sorted(times)
    assert len(link.truth) == len(gaps)
    for rec in link.truth:
        assert rec.emit_s < rec.wire_end_s <= rec.deliver_s + 1e-12


@given(
    kind=st.sampled_from(["ideal", "ftdi"]),
    gaps=st.lists(st.floats(0.0, 0.02), min_size=1, max_size=40),
    baud=st.sampled_from([115_740.7, 3_125_000.0]),
    polls=st.lists(st.floats(0.0, 0.05), max_size=10),
)
def test_chunks_index_the_truth_rows_they_complete(
    kind: str, gaps: list[float], baud: float, polls: list[float]
) -> None:
    """Each truth row is completed by exactly one chunk, in order, and its last byte is in that chunk."""
    link = make_link(kind, record=True)
    t, out, stream = 0.0, [], bytearray()
    ends = []
    for i, g in enumerate(gaps):
        t += g
        frame = NonceReply(i, 0, 0, 0).encode()
        stream += frame
        ends.append(len(stream))
        link.push(t, frame, baud)
        if polls:
            out += link.pop_ready(t + polls[i % len(polls)])
    out += link.pop_ready(t + 10.0)
    covered: list[int] = []
    pos = 0
    for c in out:
        assert c.truth_lo <= c.truth_hi
        for row in range(c.truth_lo, c.truth_hi):
            assert pos < ends[row] <= pos + len(c.data)
            assert link.truth[row].deliver_s == c.t
        covered += range(c.truth_lo, c.truth_hi)
        pos += len(c.data)
    assert covered == list(range(len(gaps)))


def test_chunks_carry_no_truth_rows_when_not_recording() -> None:
    for kind in ("ideal", "ftdi"):
        link = make_link(kind)
        link.push(0.0, REPLY, BAUD)
        (chunk,) = link.pop_ready(1.0)
        assert (chunk.truth_lo, chunk.truth_hi) == (0, 0) and link.truth == []


def test_unknown_link_kind() -> None:
    with pytest.raises(ValueError, match="ideal"):
        make_link("usb3")


def _decode(chunks: list[bytes]) -> FrameDecoder:
    dec = FrameDecoder()
    for c in chunks:
        dec.feed(c)
    return dec


def test_crc_error_fault_is_seen_by_the_decoder() -> None:
    faults = StreamFaults()
    faults.add(Fault("crc_error", n=2))
    dec = _decode([faults.apply(REPLY) for _ in range(5)])
    assert dec.stats.frames == 3 and dec.stats.bad_frames >= 2
    assert faults.idle


def test_drop_bytes_fault_loses_frames() -> None:
    faults = StreamFaults()
    faults.add(Fault("drop_bytes", n=15))
    chunks = [faults.apply(REPLY) for _ in range(5)]
    assert sum(map(len, chunks)) == 5 * 11 - 15
    assert _decode(chunks).stats.frames == 3


def test_garbage_fault_is_skipped_by_the_decoder() -> None:
    faults = StreamFaults(seed=3)
    faults.add(Fault("garbage", n=200))
    junk = faults.take_garbage()
    assert len(junk) == 200 and faults.take_garbage() == b""
    dec = _decode([junk, REPLY, REPLY])
    assert dec.stats.frames >= 2
    assert dec.stats.dropped_bytes > 0


def test_fault_records_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("meltdown")
    with pytest.raises(ValueError, match="chip"):
        Fault("stuck_chip")
    with pytest.raises(ValueError, match="unknown"):
        Fault.from_dict({"kind": "garbage", "bytes": 3})
    assert Fault.from_dict({"board": 0, "kind": "overheat", "temp_c": 80}).temp_c == 80
