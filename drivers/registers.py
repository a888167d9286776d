"""BM1366 commands and registers as data (names, addresses, reset values), from ``docs/protocol.md``."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Cmd(enum.IntEnum):
    """Command code in header bits 1-0."""

    SET_ADDRESS = 0
    WRITE_REGISTER = 1
    READ_REGISTER = 2
    CHAIN_INACTIVE = 3


#: Header type bits (6-5) and broadcast flag (bit 4).
TYPE_JOB = 0x20
TYPE_CMD = 0x40
BROADCAST = 0x10
JOB_HEADER = 0x21

HOST_PREAMBLE = b"\x55\xaa"
CHIP_PREAMBLE = b"\xaa\x55"
JOB_FRAME_LEN = 88
#: Length bytes seen on job frames: most hosts send 0x56, one open-source host 0x36.
JOB_LENGTH_BYTES = (0x56, 0x36)
REPLY_LEN_ROLLING = 11
REPLY_LEN_PLAIN = 9

CHIP_ID_BM1366 = 0x1366


@dataclass(frozen=True, slots=True)
class Register:
    """One chip register: address, name, reset value (None when not documented), purpose."""

    addr: int
    name: str
    reset: int | None
    purpose: str


REGISTERS: tuple[Register, ...] = (
    Register(0x00, "CHIP_ID", 0x13660000, "bits 31-16 id 0x1366, 15-8 core num, 7-0 address"),
    Register(0x08, "PLL0", 0xC0540165, "hash clock PLL (reset 50 MHz)"),
    Register(0x10, "HASH_COUNTING_NUMBER", 0x00000000, "nonce range split"),
    Register(0x14, "TICKET_MASK", 0x00000000, "reported-nonce difficulty mask"),
    Register(0x18, "MISC_CONTROL", 0x0000C100, "misc control"),
    Register(0x28, "FAST_UART", 0x01301A00, "fast UART: BT8D in bits 15-8"),
    Register(0x2C, "UART_RELAY", 0x00000000, "UART relay"),
    Register(0x3C, "CORE_REGISTER_CONTROL", 0x00000000, "bit31 exec, bit15 write, 12-8 reg, 7-0 value"),
    Register(0x4C, "NONCE_ERROR_COUNTER", 0x00000000, "nonce error counter"),
    Register(0x54, "ANALOG_MUX", 0x00000000, "analog mux"),
    Register(0x58, "IO_DRIVER_STRENGTH", 0x00012111, "I/O drive strength"),
    Register(0x60, "PLL1", 0x20500174, "PLL1"),
    Register(0x88, "HASH_COUNTER_D0", 0x00000000, "hash counter domain 0 (step = 2^32 hashes)"),
    Register(0x8C, "HASH_COUNTER_TOTAL", 0x00000000, "hash counter total (step = 2^32 hashes)"),
    Register(0xA4, "VERSION_ROLLING", 0x0000FFFF, "0x90000000 | (mask >> 13)"),
    Register(0xA8, "SOFT_RESET", 0x00070000, "soft reset / misc"),
)

REG_BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}
REG_BY_ADDR: dict[int, Register] = {r.addr: r for r in REGISTERS}


def reg_addr(name: str) -> int:
    """Register address for a name in :data:`REGISTERS` (KeyError names the known ones)."""
    try:
        return REG_BY_NAME[name].addr
    except KeyError:
        raise KeyError(f"unknown register {name!r}; known: {sorted(REG_BY_NAME)}") from None


def reg_name(addr: int) -> str:
    """Name of a register address, or ``REG_0xNN`` when not in the table."""
    reg = REG_BY_ADDR.get(addr)
    return reg.name if reg else f"REG_0x{addr:02X}"
