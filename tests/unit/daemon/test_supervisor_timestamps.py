"""Timestamps through the supervisor: the raw read time and the read structure kept per event, and the PLL
write times the supervisor exposes (the t_wire_ns bounds are pinned on the hot path itself in
test_read_decoder.py)."""

from __future__ import annotations

import asyncio

from daemon.safety import Mode, Output, Setpoint
from daemon.supervisor import BoardSupervisor
from drivers.frames import NonceReply
from drivers.transport import loopback_pair
from drivers.transport.base import BITS_PER_BYTE
from tests.unit.daemon.test_supervisor import FakeClock, _chain, _pll_writes, make_sup

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
    task = asyncio.create_task(sup.stream(host))
    for i, (data, t) in enumerate(reads):
        host.inject(data, t_host_ns=t)
        for _ in range(3):
            await asyncio.sleep(0)
        if i == publish_after:
            sup.events.publish()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    sup.events.publish()
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


async def test_each_pll_write_is_reported_with_its_point_and_time() -> None:
    clock = FakeClock(t_ns=2_000_000_000)
    sup, _, _ = make_sup(clock)
    chain, dev = await _chain()
    seen: list[tuple[int, int, float]] = []
    sup.on_freq_written = lambda point, t, f: seen.append((point, t, f))
    sup.applied = Setpoint(1.2, 50.0, 256.0)
    sup.point = 4
    await sup.writer.apply(chain, Output(Setpoint(1.2, 485.0, 256.0), 100.0, False, Mode.NORMAL))
    assert seen == [(4, 2_000_000_000, chain.freq_mhz)] and _pll_writes(dev) == [chain.freq_mhz]
    clock.t_ns += 1_000
    sup.point = 5  # same frequency: no write, nothing reported
    await sup.writer.apply(chain, Output(Setpoint(1.2, chain.freq_mhz, 256.0), 100.0, False, Mode.NORMAL))
    assert len(seen) == 1 and _pll_writes(dev) == []
    sup.point = 6
    await sup.writer.apply(chain, Output(Setpoint(1.2, 400.0, 256.0), 100.0, False, Mode.NORMAL))
    assert seen[-1] == (6, 2_000_001_000, chain.freq_mhz) and chain.freq_mhz <= 400.0
