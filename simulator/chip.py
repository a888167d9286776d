"""One emulated BM1366: register file with reset values, addressing state and register side effects."""

from __future__ import annotations

from dataclasses import dataclass, field

from drivers.registers import CHIP_ID_BM1366, REGISTERS
from simulator.mining import Job, pll_frequency_hz, ticket_difficulty, version_mask

REG_CHIP_ID = 0x00
REG_PLL0 = 0x08
REG_TICKET_MASK = 0x14
REG_FAST_UART = 0x28
REG_NONCE_ERRORS = 0x4C
REG_HASH_COUNTER_D0 = 0x88
REG_HASH_COUNTER_TOTAL = 0x8C
REG_VERSION_ROLLING = 0xA4
REG_SOFT_RESET = 0xA8
#: Bits of 0xA8 that ESP-Miner sets per chip to reset the cores (0x000701F0); the emulator reads a write
#: with any of them set as "restart hashing": the current job is dropped (assumption; no public datasheet).
SOFT_RESET_CORE_BITS = 0x000000F0


def reset_registers() -> dict[int, int]:
    """A fresh register file with the documented reset values (undocumented ones read 0)."""
    return {r.addr: (r.reset or 0) for r in REGISTERS}


@dataclass
class ChipState:
    """Registers and derived settings of one chip; derived values update on every write."""

    index: int
    regs: dict[int, int] = field(default_factory=reset_registers)
    address: int = 0
    inactive: bool = False
    stuck: bool = False
    job: Job | None = None
    jobs_seen: int = 0
    freq_hz: float = 0.0
    ticket_diff: int = 1
    vmask: int = 0
    hashes_done: float = 0.0
    nonce_errors: int = 0

    def __post_init__(self) -> None:
        self._derive()

    def reset(self) -> None:
        """Power-on / pin reset: reset values, address 0, no job, 9-byte replies, 115,741 baud."""
        self.regs = reset_registers()
        self.address = 0
        self.inactive = False
        self.stuck = False
        self.job = None
        self.nonce_errors = 0
        self.hashes_done = 0.0
        self._derive()

    def _derive(self) -> None:
        self.freq_hz = pll_frequency_hz(self.regs[REG_PLL0])
        self.ticket_diff = ticket_difficulty(self.regs[REG_TICKET_MASK])
        self.vmask = version_mask(self.regs[REG_VERSION_ROLLING])

    @property
    def reply_len(self) -> int:
        """11 bytes once version rolling is on (0xA4 bit 31), else 9."""
        return 11 if self.regs[REG_VERSION_ROLLING] & 0x80000000 else 9

    def read(self, reg: int) -> int:
        """Register value as the chip reports it (live counters computed on read)."""
        if reg == REG_CHIP_ID:
            return (CHIP_ID_BM1366 << 16) | (self.regs[REG_CHIP_ID] & 0xFF00) | self.address
        if reg == REG_NONCE_ERRORS:
            return self.nonce_errors & 0xFFFFFFFF
        if reg in (REG_HASH_COUNTER_D0, REG_HASH_COUNTER_TOTAL):
            steps = int(self.hashes_done) >> 32
            return (steps if reg == REG_HASH_COUNTER_TOTAL else steps // 4) & 0xFFFFFFFF
        return self.regs.get(reg, 0)

    def write(self, reg: int, value: int) -> str | None:
        """Store ``value``; return the side effect (``"pll"``, ``"uart"``, ``"core_reset"``) or None."""
        if reg == REG_CHIP_ID:
            return None  # read-only id
        self.regs[reg] = value & 0xFFFFFFFF
        self._derive()
        if reg == REG_PLL0:
            return "pll"
        if reg == REG_FAST_UART:
            return "uart"
        if reg == REG_SOFT_RESET and value & SOFT_RESET_CORE_BITS:
            self.job = None
            return "core_reset"
        if reg == REG_NONCE_ERRORS:
            self.nonce_errors = 0
        return None
