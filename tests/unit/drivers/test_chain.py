"""Chain bring-up and register access over the loopback transport against a scripted fake chain."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from drivers import chipmath
from drivers.chain import (
    Chain,
    ChainError,
    ChainTiming,
    chip_addresses,
)
from drivers.decoder import FrameDecoder
from drivers.frames import CommandFrame, Frame, JobFrame, NonceReply, RegisterReply
from drivers.registers import Cmd
from drivers.transport import LoopbackTransport, TransportClosed, loopback_pair

# Sleeps go to a recording fake (distinct values to tell them apart); the two waits on replies are real.
FAST = ChainTiming(
    reset_hold_s=0.011,
    reset_settle_s=0.012,
    enum_gap_s=0.02,
    ramp_step_delay_s=0.013,
    register_timeout_s=0.05,
    baud_switch_delay_s=0.014,
)


@dataclass
class FakeChip:
    addr: int = 0
    regs: dict[int, int] = field(default_factory=dict)


class FakeChain:
    """N chips behind the device end: answers reads, takes writes/addresses, returns nonces for jobs."""

    def __init__(
        self, end: LoopbackTransport, n: int, *, echo: bool = False, mute: tuple[int, ...] = ()
    ) -> None:
        self.end = end
        self.chips = [FakeChip() for _ in range(n)]
        self.echo = echo
        self.mute = mute  # chain indices that never answer
        self.next_addr = 0
        self.decoder = FrameDecoder()
        self.received: list[Frame] = []

    async def run(self) -> None:
        while True:
            try:
                batch = await self.end.read()
            except TransportClosed:
                return
            for frame, _ in self.decoder.feed(batch.data):
                self.received.append(frame)
                out = self.handle(frame)
                if self.echo:
                    out = frame.encode() + out
                if out:
                    await self.end.write(out)

    def targets(self, f: CommandFrame) -> list[tuple[int, FakeChip]]:
        return [(i, c) for i, c in enumerate(self.chips) if f.broadcast or c.addr == f.chip_addr]

    def handle(self, f: Frame) -> bytes:
        if isinstance(f, JobFrame):
            return b"".join(
                NonceReply(0x0100_0000 * i + f.job_id, i, f.job_id | (i & 7), 0x0001).encode()
                for i in range(len(self.chips))
            )
        assert isinstance(f, CommandFrame)
        if f.cmd == Cmd.CHAIN_INACTIVE:
            self.next_addr = 0
        elif f.cmd == Cmd.SET_ADDRESS:
            self.chips[self.next_addr].addr = f.chip_addr
            self.next_addr += 1
        elif f.cmd == Cmd.WRITE_REGISTER:
            assert f.value is not None
            for _, c in self.targets(f):
                c.regs[f.reg] = f.value
        elif f.cmd == Cmd.READ_REGISTER:
            out = b""
            for i, c in self.targets(f):
                if i in self.mute:
                    continue
                value = 0x13660000 | c.addr if f.reg == 0 else c.regs.get(f.reg, 0)
                out += RegisterReply(value, c.addr, f.reg).encode()
            return out
        return b""


async def drained(fake: FakeChain) -> None:
    """Let the fake chain process everything written so far (it never blocks between frames)."""
    for _ in range(1000):
        await asyncio.sleep(0)
        if fake.end._queue.empty():
            break
    await asyncio.sleep(0)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, s: float) -> None:
        self.calls.append(s)


@pytest.fixture
async def rig() -> AsyncIterator[tuple[Chain, FakeChain, LoopbackTransport, Sleeps]]:
    host, dev = loopback_pair(has_reset=True)
    fake = FakeChain(dev, 4)
    sleeps = Sleeps()
    task = asyncio.create_task(fake.run())
    chain = Chain(host, timing=FAST, sleep=sleeps)
    async with chain:
        yield chain, fake, host, sleeps
    await host.close()
    await task


def summary(frames: list[Frame]) -> list[tuple[str, int]]:
    out = []
    for f in frames:
        if isinstance(f, CommandFrame):
            out.append(
                (f.cmd.name, f.reg if f.cmd in (Cmd.WRITE_REGISTER, Cmd.READ_REGISTER) else f.chip_addr)
            )
        else:
            out.append(("JOB", 0))
    return out


async def test_hash_counting_number_from_the_requested_frequency_as_esp_miner(
    rig: tuple[Chain, FakeChain, LoopbackTransport, Sleeps],
) -> None:
    chain, fake, _, _ = rig
    info = await chain.bring_up(freq_mhz=487.3, baud=1_000_000)
    await drained(fake)
    assert info.freq_mhz == 487.5  # the PLL's nearest
    assert fake.chips[0].regs[0x10] == 0x0003488C  # ESP-Miner: 4 chips at 487.3 MHz (487.5 gives 0x00034834)


async def test_bring_up_finds_chips_and_sets_everything(
    rig: tuple[Chain, FakeChain, LoopbackTransport, Sleeps],
) -> None:
    chain, fake, host, sleeps = rig
    info = await chain.bring_up(freq_mhz=485.0, ticket_difficulty=256, baud=1_000_000, expected_chips=4)
    await drained(fake)
    assert info.chip_count == 4
    assert info.addresses == (0, 64, 128, 192)
    assert info.chip_ids == (0x1366,) * 4
    assert info.baud == 1_000_000 and host.baud == 1_000_000
    assert info.freq_mhz == pytest.approx(485.0)
    assert info.ticket_difficulty == 256
    assert host.reset_history == [True, False]
    assert sleeps.calls[:2] == [FAST.reset_hold_s, FAST.reset_settle_s]
    pll = chipmath.pll_for_frequency(485.0).register_value
    for chip, addr in zip(fake.chips, (0, 64, 128, 192)):
        assert chip.addr == addr
        assert chip.regs[0x08] == pll
        assert chip.regs[0x14] == 0x000000FF
        assert chip.regs[0x28] == 0x11300200
        assert chip.regs[0x10] == chipmath.hash_counting_number(4, 485.0)
        assert chip.regs[0xA4] == 0x9000FFFF
        assert chip.regs[0xA8] == 0x000701F0 and chip.regs[0x18] == 0xF000C100
        assert chip.regs[0x3C] == 0x800082AA
    assert fake.chips[0].regs[0x2C] == 0x007C0003 and 0x2C not in fake.chips[1].regs


async def test_bring_up_order_matches_bm1366(rig: tuple[Chain, FakeChain, LoopbackTransport, Sleeps]) -> None:
    chain, fake, _, _ = rig
    await chain.bring_up(freq_mhz=62.5, ticket_difficulty=512, baud=1_000_000)
    await drained(fake)
    s = summary(fake.received)
    head = [
        ("WRITE_REGISTER", 0xA4),
        ("WRITE_REGISTER", 0xA4),
        ("WRITE_REGISTER", 0xA4),
        ("READ_REGISTER", 0x00),
        ("WRITE_REGISTER", 0xA8),
        ("WRITE_REGISTER", 0x18),
        ("CHAIN_INACTIVE", 0),
        ("SET_ADDRESS", 0),
        ("SET_ADDRESS", 64),
        ("SET_ADDRESS", 128),
        ("SET_ADDRESS", 192),
        ("WRITE_REGISTER", 0x3C),
        ("WRITE_REGISTER", 0x3C),
        ("WRITE_REGISTER", 0x14),
        ("WRITE_REGISTER", 0x54),
        ("WRITE_REGISTER", 0x58),
        ("WRITE_REGISTER", 0x2C),
    ]
    assert s[: len(head)] == head
    per_chip = [("WRITE_REGISTER", r) for r in (0xA8, 0x18, 0x3C, 0x3C, 0x3C)] * 4
    assert s[len(head) : len(head) + 20] == per_chip
    tail = s[len(head) + 20 :]
    assert tail[-3:] == [("WRITE_REGISTER", 0x10), ("WRITE_REGISTER", 0xA4), ("WRITE_REGISTER", 0x28)]
    assert set(tail[:-3]) == {("WRITE_REGISTER", 0x08)}
    first = fake.received[3]
    assert isinstance(first, CommandFrame) and first.broadcast


async def test_frequency_ramp_steps_up_with_delays(
    rig: tuple[Chain, FakeChain, LoopbackTransport, Sleeps],
) -> None:
    chain, fake, _, sleeps = rig
    await chain.bring_up(freq_mhz=100.0, baud=115_200)
    await drained(fake)
    plls = [
        chipmath.frequency_from_pll(f.value)
        for f in fake.received
        if isinstance(f, CommandFrame) and f.reg == 0x08 and f.value is not None
    ]
    assert plls[-1] == pytest.approx(100.0)
    assert plls == sorted(plls) and plls[0] > 50.0
    assert all(b - a <= chipmath.RAMP_STEP_MHZ + 1.0 for a, b in itertools.pairwise(plls))
    assert sleeps.calls.count(FAST.ramp_step_delay_s) == len(plls) - 1
    # baud unchanged: no fast-UART write, no baud switch delay
    assert FAST.baud_switch_delay_s not in sleeps.calls
    assert all(not (isinstance(f, CommandFrame) and f.reg == 0x28) for f in fake.received)
    # ramp down
    n = len(fake.received)
    await chain.set_frequency(75.0, ramp=True)
    await drained(fake)
    down = [
        chipmath.frequency_from_pll(f.value)
        for f in fake.received[n:]
        if isinstance(f, CommandFrame) and f.value
    ]
    assert down == sorted(down, reverse=True) and down[-1] == pytest.approx(75.0)
    assert chain.info is not None and chain.info.freq_mhz == pytest.approx(75.0)


async def test_register_write_read_and_counters(
    rig: tuple[Chain, FakeChain, LoopbackTransport, Sleeps],
) -> None:
    chain, fake, _, _ = rig
    await chain.bring_up(freq_mhz=485.0, baud=1_000_000)
    await chain.write_register(0x54, 0xDEADBEEF, chip=2)
    await drained(fake)
    assert fake.chips[2].regs[0x54] == 0xDEADBEEF and fake.chips[1].regs[0x54] == 3
    assert await chain.read_register(2, 0x54) == 0xDEADBEEF
    assert await chain.read_register(3, 0x00) == 0x136600C0
    fake.chips[1].regs[0x8C] = 12345
    fake.chips[1].regs[0x4C] = 7
    assert await chain.read_hash_counter(1) == 12345
    assert await chain.read_nonce_error_counter(1) == 7
    await chain.set_ticket_difficulty(1000)
    await drained(fake)
    assert chain.ticket_difficulty == 512 and fake.chips[0].regs[0x14] == 0x000080FF
    with pytest.raises(ChainError, match="out of range"):
        await chain.read_register(4, 0)


async def test_read_register_times_out() -> None:
    host, dev = loopback_pair()
    fake = FakeChain(dev, 2, mute=(1,))
    task = asyncio.create_task(fake.run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        info = await chain.bring_up(freq_mhz=50.0, baud=115_200)
        assert info.chip_count == 1  # the mute chip never answered the enumeration either
        assert await chain.read_register(0, 0x99) == 0
        fake.mute = (0, 1)
        with pytest.raises(ChainError, match="no reply"):
            await chain.read_register(0, 0x99, timeout_s=0.01)
    await host.close()
    await task


async def test_jobs_return_timestamped_nonces_and_echo_is_ignored() -> None:
    ticks = itertools.count(0, 10_000_000)  # every read 10 ms after the last: the floor never binds
    host, dev = loopback_pair(clock=lambda: next(ticks))
    fake = FakeChain(dev, 4, echo=True)
    task = asyncio.create_task(fake.run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        await chain.bring_up(freq_mhz=485.0, baud=1_000_000)
        job = JobFrame(0x28, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x64000000)
        await chain.send_job(job)
        got = [await chain.next_nonce(timeout_s=1.0) for _ in range(4)]
        assert [tf.frame.job_id for tf in got if isinstance(tf.frame, NonceReply)] == [0x28] * 4
        assert len({tf.read_id for tf in got}) == 1
        assert len({tf.t_ns for tf in got}) == 1  # the raw read time; t_wire_ns is the separate estimate
        assert [tf.t_ns - tf.t_wire_ns for tf in got] == [330_000, 220_000, 110_000, 0]
        assert chain.drain_nonces() == []
    await host.close()
    await task


async def test_bring_up_errors() -> None:
    host, dev = loopback_pair()
    fake = FakeChain(dev, 0)
    task = asyncio.create_task(fake.run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        assert await chain.reset() is False  # no reset line on this link
        with pytest.raises(ChainError, match="no chip answered"):
            await chain.bring_up()
    await host.close()
    await task
    host, dev = loopback_pair()
    task = asyncio.create_task(FakeChain(dev, 3).run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        with pytest.raises(ChainError, match="found 3 chips, expected 4"):
            await chain.bring_up(expected_chips=4)
        with pytest.raises(chipmath.UnreachableFrequency):
            await chain.set_frequency(5000.0)
    await host.close()
    await task


async def test_nonce_iterator_ends_when_transport_closes() -> None:
    host, dev = loopback_pair()
    async with Chain(host, timing=FAST, sleep=Sleeps(), nonce_queue_max=2) as chain:
        await dev.write(b"".join(NonceReply(i, 0, 8, 0).encode() for i in range(3)))
        await dev.close()
        got = [tf.frame async for tf in chain.nonces()]
        assert got == [NonceReply(1, 0, 8, 0), NonceReply(2, 0, 8, 0)]
        assert chain.nonces_dropped == 1
        assert chain.closed.is_set()


def test_chip_addresses() -> None:
    assert chip_addresses(1) == (0,)
    assert chip_addresses(3) == (0, 85, 170)
    assert chip_addresses(4) == (0, 64, 128, 192)
    with pytest.raises(ValueError):
        chip_addresses(0)


async def test_bring_up_returns_host_to_power_on_baud_only_after_a_reset() -> None:
    host, dev = loopback_pair(has_reset=True, baud=1_000_000)
    bauds: list[int] = []
    host.on_baud = bauds.append
    task = asyncio.create_task(FakeChain(dev, 1).run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        info = await chain.bring_up(freq_mhz=50.0, baud=3_125_000)
        assert bauds == [115_200, 3_125_000] and info.baud == 3_125_000
    await host.close()
    await task
    host, dev = loopback_pair(baud=1_000_000)  # no reset line: the chips may still be at the fast rate
    bauds = []
    host.on_baud = bauds.append
    task = asyncio.create_task(FakeChain(dev, 1).run())
    async with Chain(host, timing=FAST, sleep=Sleeps()) as chain:
        info = await chain.bring_up(freq_mhz=50.0, baud=1_000_000)
        assert bauds == [] and info.baud == 1_000_000
    await host.close()
    await task


async def test_reader_can_be_stopped_and_restarted() -> None:
    host, dev = loopback_pair()
    chain = Chain(host, timing=FAST, sleep=Sleeps())
    await chain.start()
    await dev.write(NonceReply(1, 0, 8, 0).encode())
    assert (await chain.next_nonce(timeout_s=1.0)).frame == NonceReply(1, 0, 8, 0)
    await dev.write(NonceReply(2, 0, 8, 0).encode())
    await asyncio.sleep(0)
    await chain.stop()
    assert chain.closed.is_set()
    await chain.start()
    assert not chain.closed.is_set()
    await dev.write(NonceReply(3, 0, 8, 0).encode())
    got = [(await chain.next_nonce(timeout_s=1.0)).frame for _ in range(2)]
    assert got == [NonceReply(2, 0, 8, 0), NonceReply(3, 0, 8, 0)]
    await chain.stop()
    await host.close()
