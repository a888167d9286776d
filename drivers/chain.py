"""Async BM1366 chain: bring-up in the order of ``docs/protocol.md`` (ESP-Miner), jobs, register reads,
counters.

One background reader (:class:`drivers.chain_reader.ChainReader`) decodes everything the transport delivers:
nonce replies go to a bounded queue (:meth:`Chain.next_nonce`, :meth:`Chain.nonces`), register replies answer
the one outstanding :meth:`Chain.read_register` (or the enumeration). All timing constants live in
:class:`ChainTiming` so tests shrink them instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from types import TracebackType

from drivers import chipmath
from drivers.chain_reader import ChainReader, ReaderClosed, TimedFrame
from drivers.frames import (
    CommandFrame,
    JobFrame,
    chain_inactive,
    read_reg,
    set_address,
    write_reg,
)
from drivers.registers import CHIP_ID_BM1366
from drivers.transport.base import ResetLine, Transport

log = logging.getLogger(__name__)

# Timing (docs/protocol.md "Bring-up order", from ESP-Miner bm1366.c / asic_reset):
#: Reset held low, then the wait after releasing it, s.
RESET_HOLD_S = 0.1
RESET_SETTLE_S = 0.1
#: Chip enumeration: stop counting chip-id replies after this quiet gap, s (ESP-Miner 1 s).
ENUM_GAP_S = 1.0
#: Frequency ramp: delay between PLL0 steps, s (ESP-Miner 100 ms per 6.25 MHz).
RAMP_STEP_DELAY_S = 0.1
#: Wait for a register reply, s (a reply is ~1 ms at 115200 baud; generous for USB bridges).
REGISTER_TIMEOUT_S = 0.5
#: Pause between the fast-UART register write and the host baud switch, s (let the frame leave).
BAUD_SWITCH_DELAY_S = 0.05
#: Nonces kept while nobody reads them; older ones are dropped and counted.
NONCE_QUEUE_MAX = 65_536

#: PLL0 at reset (register 0x08 = 0xC0540165), MHz.
RESET_FREQ_MHZ = 50.0
#: Host UART rate at power-on, baud.
RESET_BAUD = 115_200

# Register addresses and the ESP-Miner init values (docs/protocol.md steps 4-7).
REG_CHIP_ID = 0x00
REG_PLL0 = 0x08
REG_HASH_COUNTING = 0x10
REG_TICKET_MASK = 0x14
REG_MISC = 0x18
REG_FAST_UART = 0x28
REG_UART_RELAY = 0x2C
REG_CORE_CTRL = 0x3C
REG_NONCE_ERRORS = 0x4C
REG_ANALOG_MUX = 0x54
REG_IO_DRIVE = 0x58
REG_HASH_TOTAL = 0x8C
REG_VERSION_ROLLING = 0xA4
REG_SOFT_RESET = 0xA8

BROADCAST_INIT: tuple[tuple[int, int], ...] = ((REG_SOFT_RESET, 0x00070000), (REG_MISC, 0xFF0FC100))
CORE_INIT: tuple[int, ...] = (0x80008540, 0x80008020)
PER_CHIP_INIT: tuple[tuple[int, int], ...] = (
    (REG_SOFT_RESET, 0x000701F0),
    (REG_MISC, 0xF000C100),
    (REG_CORE_CTRL, 0x80008540),
    (REG_CORE_CTRL, 0x80008020),
    (REG_CORE_CTRL, 0x800082AA),
)


class ChainError(RuntimeError):
    """Bring-up or a register access failed (no chips, wrong count, timeout)."""


@dataclass(frozen=True, slots=True)
class ChainTiming:
    """Every delay and timeout the chain uses, in seconds (defaults from ESP-Miner; tests shrink them)."""

    reset_hold_s: float = RESET_HOLD_S
    reset_settle_s: float = RESET_SETTLE_S
    enum_gap_s: float = ENUM_GAP_S
    ramp_step_delay_s: float = RAMP_STEP_DELAY_S
    register_timeout_s: float = REGISTER_TIMEOUT_S
    baud_switch_delay_s: float = BAUD_SWITCH_DELAY_S


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """What bring-up found and set: chip addresses, 16-bit chip ids, baud, MHz, ticket difficulty."""

    chip_count: int
    addresses: tuple[int, ...]
    chip_ids: tuple[int, ...]
    baud: int
    freq_mhz: float
    ticket_difficulty: int


def chip_addresses(count: int) -> tuple[int, ...]:
    """Addresses ESP-Miner assigns: ``i * (256 // count)``."""
    if not 1 <= count <= 256:
        raise ValueError(f"chip count must be 1..256, got {count}")
    step = 256 // count
    return tuple(i * step for i in range(count))


class Chain:
    """A BM1366 chain behind one transport. Use ``async with Chain(t) as chain:`` (starts the reader).

    ``reset``: the board's reset line (a bitaxe-raw client, or the transport's own pin); when None the
    transport is used if it offers a working one. ``sleep`` is injectable (tests pass a no-op).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        reset: ResetLine | None = None,
        timing: ChainTiming = ChainTiming(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        nonce_queue_max: int = NONCE_QUEUE_MAX,
    ) -> None:
        self.transport = transport
        self.reset_line = reset
        self.timing = timing
        self._sleep = sleep
        self._reader = ChainReader(transport, nonce_queue_max)
        self._reg_lock = asyncio.Lock()
        self.info: ChainInfo | None = None
        self.freq_mhz = RESET_FREQ_MHZ
        self.ticket_difficulty = 0
        #: Set when the transport has ended (or the reader was stopped).
        self.closed = self._reader.closed

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start (or restart) the background reader (the transport must be open)."""
        await self._reader.start()

    async def stop(self) -> None:
        """Stop the reader task (the transport stays open; close it yourself)."""
        await self._reader.stop()

    @property
    def nonces_dropped(self) -> int:
        """Nonces dropped because the queue was full."""
        return self._reader.nonces_dropped

    async def __aenter__(self) -> Chain:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # ---- raw access ------------------------------------------------------------------------------------
    async def send(self, frame: CommandFrame | JobFrame) -> None:
        """Encode and write one frame."""
        await self.transport.write(frame.encode())

    async def send_job(self, job: JobFrame) -> None:
        """Send an 88-byte job frame."""
        await self.transport.write(job.encode())

    def address_of(self, chip: int) -> int:
        """Chip address of chain index ``chip`` (before bring-up every chip answers at address 0)."""
        if self.info is None:
            return chip
        if not 0 <= chip < self.info.chip_count:
            raise ChainError(f"chip index {chip} out of range 0..{self.info.chip_count - 1}")
        return self.info.addresses[chip]

    async def write_register(self, reg: int, value: int, chip: int | None = None) -> None:
        """Write ``value`` to ``reg`` on chain index ``chip``, or broadcast when None."""
        if chip is None:
            await self.send(write_reg(reg, value))
        else:
            await self.send(write_reg(reg, value, self.address_of(chip), broadcast=False))

    async def read_register(self, chip: int, reg: int, timeout_s: float | None = None) -> int:
        """Read ``reg`` of chain index ``chip``; :class:`ChainError` after ``timeout_s`` with no answer."""
        addr = self.address_of(chip)
        wait = self.timing.register_timeout_s if timeout_s is None else timeout_s
        async with self._reg_lock:
            self._reader.drain_registers()
            await self.send(read_reg(reg, addr, broadcast=False))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + wait
            while True:
                remaining = deadline - loop.time()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    r = await asyncio.wait_for(self._reader.registers.get(), remaining)
                except TimeoutError:
                    raise ChainError(
                        f"no reply from chip {chip} (addr 0x{addr:02X}) reg 0x{reg:02X}"
                    ) from None
                if r.reg == reg and r.chip_addr == addr:
                    return r.value
                log.debug("ignoring register reply %s while waiting for 0x%02X/0x%02X", r, addr, reg)

    async def read_hash_counter(self, chip: int, reg: int = REG_HASH_TOTAL) -> int:
        """Hash counter of chain index ``chip`` (0x8C total; 0x88.. per domain); one step = 2^32 hashes."""
        return await self.read_register(chip, reg)

    async def read_nonce_error_counter(self, chip: int) -> int:
        """Nonce error counter (register 0x4C) of chain index ``chip``."""
        return await self.read_register(chip, REG_NONCE_ERRORS)

    # ---- nonces ------------------------------------------------------------------------------------------
    async def next_nonce(self, timeout_s: float | None = None) -> TimedFrame:
        """The next nonce reply (timestamped); TimeoutError after ``timeout_s``, ChainError when closed."""
        try:
            return await self._reader.next_nonce(timeout_s)
        except ReaderClosed as exc:
            raise ChainError(str(exc)) from None

    def nonces(self) -> AsyncIterator[TimedFrame]:
        """Yield nonce replies until the transport closes."""
        return self._reader.nonces()

    def drain_nonces(self) -> list[TimedFrame]:
        """Every nonce waiting now, without blocking."""
        return self._reader.drain_nonces()

    # ---- bring-up ----------------------------------------------------------------------------------------
    async def reset(self) -> bool:
        """Pulse the reset line when there is one; returns whether a reset happened."""
        line = self.reset_line
        if line is None and isinstance(self.transport, ResetLine) and self.transport.has_reset:
            line = self.transport
        if line is None or not line.has_reset:
            log.info("no reset line: skipping hardware reset")
            return False
        await line.set_reset(True)
        await self._sleep(self.timing.reset_hold_s)
        await line.set_reset(False)
        await self._sleep(self.timing.reset_settle_s)
        self.freq_mhz = RESET_FREQ_MHZ
        return True

    async def enumerate_chips(self) -> list[int]:
        """Broadcast-read register 0 and collect chip-id values until a quiet gap of ``enum_gap_s``."""
        async with self._reg_lock:
            self._reader.drain_registers()
            await self.send(read_reg(REG_CHIP_ID))
            values: list[int] = []
            while len(values) < 256:
                try:
                    r = await asyncio.wait_for(self._reader.registers.get(), self.timing.enum_gap_s)
                except TimeoutError:
                    break
                if r.reg == REG_CHIP_ID:
                    values.append(r.value)
            return values

    async def bring_up(
        self,
        *,
        freq_mhz: float = 485.0,
        ticket_difficulty: int = 256,
        baud: int = 1_000_000,
        expected_chips: int | None = None,
    ) -> ChainInfo:
        """Reset, enumerate, address, initialise, ramp to ``freq_mhz`` and switch to ``baud``."""
        if await self.reset() and self.transport.baud != RESET_BAUD:
            await self.transport.set_baud(RESET_BAUD)  # chips are back at their power-on rate
        elif self.transport.baud != RESET_BAUD:
            log.info(
                "no reset: keeping the host at %d baud (chips keep their last rate)", self.transport.baud
            )
        rolling = chipmath.version_rolling_value()
        for _ in range(3):
            await self.write_register(REG_VERSION_ROLLING, rolling)
        values = await self.enumerate_chips()
        if not values:
            raise ChainError("no chip answered the chip-id read (power, reset, wiring or baud?)")
        count = len(values)
        ids = tuple(v >> 16 for v in values)
        if any(i != CHIP_ID_BM1366 for i in ids):
            log.warning("unexpected chip ids %s (BM1366 is 0x1366)", [f"0x{i:04X}" for i in ids])
        if expected_chips is not None and count != expected_chips:
            raise ChainError(f"found {count} chips, expected {expected_chips}")
        log.info("found %d chip(s)", count)
        for reg, value in BROADCAST_INIT:
            await self.write_register(reg, value)
        await self.send(chain_inactive())
        addresses = chip_addresses(count)
        for addr in addresses:
            await self.send(set_address(addr))
        for value in CORE_INIT:
            await self.write_register(REG_CORE_CTRL, value)
        await self.write_register(REG_TICKET_MASK, chipmath.ticket_mask(ticket_difficulty))
        self.ticket_difficulty = ticket_difficulty
        await self.write_register(REG_ANALOG_MUX, 0x00000003)
        await self.write_register(REG_IO_DRIVE, 0x02111111)
        await self.send(write_reg(REG_UART_RELAY, 0x007C0003, addresses[0], broadcast=False))
        for addr in addresses:
            for reg, value in PER_CHIP_INIT:
                await self.send(write_reg(reg, value, addr, broadcast=False))
        freq = await self.set_frequency(freq_mhz, ramp=True)
        # from the requested frequency, as ESP-Miner computes it (bm1366.c), not the PLL's reached one: the
        # bring-up bytes stay identical to the firmware's (they differ only off the PLL grid, by < 0.1 %)
        await self.write_register(REG_HASH_COUNTING, chipmath.hash_counting_number(count, freq_mhz))
        await self.write_register(REG_VERSION_ROLLING, rolling)
        await self.set_baud(baud)
        self.info = ChainInfo(count, addresses, ids, self.transport.baud, freq, ticket_difficulty)
        return self.info

    async def set_baud(self, baud: int) -> None:
        """Write the fast-UART register at the current rate, then switch the host side to ``baud``."""
        if baud == self.transport.baud:
            return
        await self.write_register(REG_FAST_UART, chipmath.fast_uart_for_baud(baud))
        await self._sleep(self.timing.baud_switch_delay_s)
        await self.transport.set_baud(baud)

    async def set_frequency(self, target_mhz: float, ramp: bool = True) -> float:
        """Set PLL0 to ``target_mhz`` (6.25 MHz steps ``ramp_step_delay_s`` apart if ``ramp``); MHz set."""
        final = chipmath.pll_for_frequency(target_mhz)  # raises naming the nearest reachable ones
        steps = chipmath.frequency_ramp(self.freq_mhz, target_mhz) if ramp else [target_mhz]
        for f in steps[:-1]:
            try:
                pll = chipmath.pll_for_frequency(f, tolerance_mhz=chipmath.RAMP_STEP_MHZ)
            except chipmath.UnreachableFrequency:
                continue
            await self.write_register(REG_PLL0, pll.register_value)
            self.freq_mhz = pll.freq_mhz
            await self._sleep(self.timing.ramp_step_delay_s)
        await self.write_register(REG_PLL0, final.register_value)
        self.freq_mhz = final.freq_mhz
        if self.info is not None:
            self.info = replace(self.info, freq_mhz=self.freq_mhz)
        return self.freq_mhz

    async def set_ticket_difficulty(self, difficulty: int) -> None:
        """Write the ticket mask for ``difficulty`` (largest power of two <= it) to every chip."""
        await self.write_register(REG_TICKET_MASK, chipmath.ticket_mask(difficulty))
        self.ticket_difficulty = 1 << (difficulty.bit_length() - 1)
        if self.info is not None:
            self.info = replace(self.info, ticket_difficulty=self.ticket_difficulty)
