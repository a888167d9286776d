"""Timestamps: the raw read time and the read structure kept per event, the separate serialization-corrected
estimate bounded by the previous read and capped (synthetic reads), and the PLL write times the supervisor
exposes."""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from daemon.safety import Mode, Output, Setpoint
from daemon.supervisor import MAX_CORRECTION_NS, BoardSupervisor, serialization_corrected
from drivers.frames import NonceReply
from drivers.transport import loopback_pair
from drivers.transport.base import BITS_PER_BYTE
from tests.unit.test_supervisor import FakeClock, _chain, _pll_writes, make_sup

BAUD = 1_000_000
NS_PER_BYTE = BITS_PER_BYTE * 1_000_000_000 // BAUD  # 10 us at 1 Mbaud
FRAME = 11  # bytes of a nonce reply


def _frames(n: int) -> bytes:
    return b"".join(NonceReply(0x100 + i, 0, 0, 0).encode() for i in range(n))


async def _stream(
    sup: BoardSupervisor, reads: list[tuple[bytes, int]], publish_after: int = -1, col: str = "t_wire_ns"
) -> list[int]:
    """Feed ``reads`` (data, t_host_ns) through the stream loop; column ``col`` of what is published."""
    pipe = sup.pipeline
    sub = pipe.subscribe("t", 64, logs=False)
    host, _dev = loopback_pair(baud=BAUD)
    sup.applied = Setpoint(1.2, 485.0, 1.0)
    task = asyncio.create_task(sup._stream(host))
    for i, (data, t) in enumerate(reads):
        host.inject(data, t_host_ns=t)
        for _ in range(3):
            await asyncio.sleep(0)
        if i == publish_after:
            sup._publish()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sup._publish()
    out: list[int] = []
    while (b := sub.get_nowait()) is not None:
        out += b.column(col).to_pylist()
    pipe.unsubscribe("t")
    return out


async def test_each_event_keeps_its_read_time_and_its_place_in_the_read() -> None:
    """t_ns is the raw read time (no fabricated spacing); read_pos / read_nonces give the read structure."""
    t0, t1 = 5_000_000_000, 5_000_300_000
    reads = [(_frames(1), t0), (_frames(30), t1), (_frames(2), t1 + 7)]
    got = {}
    for col in ("t_ns", "t_host_ns", "read_id", "read_pos", "read_nonces"):
        sup, _, _ = make_sup()
        got[col] = await _stream(sup, reads, col=col)
    assert got["t_ns"] == got["t_host_ns"] == [t0] + [t1] * 30 + [t1 + 7] * 2
    assert got["read_pos"] == [0, *range(30), 0, 1]
    assert got["read_nonces"] == [1] + [30] * 30 + [2, 2]
    rid = got["read_id"]
    assert len(set(rid)) == 3 and rid == sorted(rid)


async def test_a_frame_split_over_two_reads_belongs_to_the_read_of_its_last_byte() -> None:
    data = _frames(3)
    cut = FRAME + 4  # the second frame's first 4 bytes come with the first read
    sup, _, _ = make_sup()
    reads = [(data[:cut], 1_000_000), (data[cut:], 2_000_000)]
    assert await _stream(sup, reads, col="t_ns") == [1_000_000, 2_000_000, 2_000_000]
    sup, _, _ = make_sup()
    assert await _stream(sup, reads, col="read_pos") == [0, 0, 1]


async def test_a_batched_read_never_stamps_before_the_previous_read() -> None:
    """30 frames arrive together 300 us after the previous read (uncorrected, the first is 3.2 ms early)."""
    sup, _, _ = make_sup()
    t0 = 5_000_000_000
    t1 = t0 + 300_000
    t_ns = await _stream(sup, [(_frames(1), t0), (_frames(30), t1)])
    assert len(t_ns) == 31
    assert t_ns[0] == t0
    second = np.array(t_ns[1:])
    assert np.all(second >= t0) and np.all(second <= t1)
    # frames whose tail fits in the gap keep the exact wire-time correction
    after = np.arange(29, -1, -1) * FRAME
    exact = t1 - after * NS_PER_BYTE
    assert np.array_equal(second, np.maximum(exact, t0))
    assert list(second[-3:]) == [t1 - 2 * FRAME * NS_PER_BYTE, t1 - FRAME * NS_PER_BYTE, t1]
    assert np.count_nonzero(second == t0) == 27


async def test_the_floor_holds_across_publishes() -> None:
    """The previous read is remembered when the pending reads were decoded between the two reads."""
    sup, _, _ = make_sup()
    t0 = 7_000_000_000
    t_ns = await _stream(sup, [(_frames(1), t0), (_frames(10), t0 + 5_000)], publish_after=0)
    assert len(t_ns) == 11 and min(t_ns[1:]) == t0


async def test_the_correction_is_capped_for_the_first_read() -> None:
    """No previous read: only the cap bounds the correction (a 200-frame read is 22 ms of wire at 1 Mbaud)."""
    sup, _, _ = make_sup()
    t0 = 9_000_000_000
    t_ns = np.array(await _stream(sup, [(_frames(200), t0)]))
    assert t_ns.min() == t0 - MAX_CORRECTION_NS
    assert np.all(np.diff(t_ns) >= 0) and t_ns[-1] == t0


@given(
    reads=st.lists(
        st.tuples(st.integers(0, 5_000_000), st.integers(0, 2_000), st.sampled_from([115_200, 3_125_000])),
        min_size=1,
        max_size=30,
    )
)
def test_corrected_time_lies_between_the_previous_read_and_its_own(reads: list[tuple[int, int, int]]) -> None:
    gaps, after, baud = (np.array(c, dtype=np.int64) for c in zip(*reads, strict=True))
    t_read = 10**12 + np.cumsum(gaps)
    prev = np.concatenate([[np.iinfo(np.int64).min], t_read[:-1]])
    t = serialization_corrected(t_read, prev, after, baud)
    raw = t_read - after * BITS_PER_BYTE * 1_000_000_000 // baud
    assert np.all(t <= t_read) and np.all(t >= prev)
    assert np.all(t_read - t <= MAX_CORRECTION_NS)
    assert np.all(t >= raw)  # only ever less correction than the wire time, never more
    ok = (raw >= prev) & (t_read - raw <= MAX_CORRECTION_NS)
    assert np.array_equal(t[ok], raw[ok])  # unchanged when neither bound applies


async def test_each_pll_write_is_reported_with_its_point_and_time() -> None:
    clock = FakeClock(t_ns=2_000_000_000)
    sup, _, _ = make_sup(clock)
    chain, dev = await _chain()
    seen: list[tuple[int, int, float]] = []
    sup.on_freq_written = lambda point, t, f: seen.append((point, t, f))
    sup.applied = Setpoint(1.2, 50.0, 256.0)
    sup.point = 4
    await sup._apply(chain, Output(Setpoint(1.2, 485.0, 256.0), 100.0, False, Mode.NORMAL))
    assert seen == [(4, 2_000_000_000, chain.freq_mhz)] and _pll_writes(dev) == [chain.freq_mhz]
    clock.t_ns += 1_000
    sup.point = 5  # same frequency: no write, nothing reported
    await sup._apply(chain, Output(Setpoint(1.2, chain.freq_mhz, 256.0), 100.0, False, Mode.NORMAL))
    assert len(seen) == 1 and _pll_writes(dev) == []
    sup.point = 6
    await sup._apply(chain, Output(Setpoint(1.2, 400.0, 256.0), 100.0, False, Mode.NORMAL))
    assert seen[-1] == (6, 2_000_001_000, chain.freq_mhz) and chain.freq_mhz <= 400.0
