"""Fault injection: a validated :class:`Fault` record (also parsed from JSON) and the byte-stream faults.

Kinds and their fields:

==============  ====================================================================================
``disconnect``  ``mode`` ``"reopen"`` (close the data pty, open a new one) or ``"silence"`` (stop answering
                and drop host bytes for ``duration_s``)
``garbage``     ``n`` random bytes into the chip -> host stream, before the next reply
``crc_error``   the next ``n`` replies leave with a wrong CRC5
``drop_bytes``  the next ``n`` bytes of the chip -> host stream are lost
``stuck_chip``  chip ``chip`` hangs (no nonces, no register replies); ``on`` false releases it
``chip_reset``  chip ``chip`` (or every chip when null) resets to its power-on state
``overheat``    chip ``chip`` (or all) jumps to ``temp_c`` and cools with the thermal time constant
``i2c_nack``    the next ``n`` I2C reads from address ``addr`` (default 0x24, the regulator) are NACKed
                (the control port answers the firmware's ``I2C ... Error`` message)
``vr_latch``    the TPS546 regulator latches its output off as on an over-current fault (gamma boards)
==============  ====================================================================================
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from typing import Any

KINDS = (
    "disconnect",
    "garbage",
    "crc_error",
    "drop_bytes",
    "stuck_chip",
    "chip_reset",
    "overheat",
    "i2c_nack",
    "vr_latch",
)


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected fault (see the module docstring for which fields each kind reads)."""

    kind: str
    n: int = 1
    chip: int | None = None
    on: bool = True
    mode: str = "reopen"
    duration_s: float = 1.0
    temp_c: float = 90.0
    addr: int = 0x24

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {self.kind!r}")
        if self.n < 0:
            raise ValueError(f"fault n must be >= 0, got {self.n}")
        if self.mode not in ("reopen", "silence"):
            raise ValueError(f"disconnect mode must be 'reopen' or 'silence', got {self.mode!r}")
        if self.kind == "stuck_chip" and self.chip is None:
            raise ValueError("stuck_chip needs a chip index")
        if not 0 <= self.addr <= 0x7F:
            raise ValueError(f"fault addr must be a 7-bit I2C address, got {self.addr}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Fault:
        """From a JSON object, e.g. ``{"kind": "garbage", "n": 100}``; unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known - {"board"}
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**{k: v for k, v in d.items() if k in known})


class StreamFaults:
    """Pending byte-stream faults applied to replies on their way from the chain to the link."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(f"asicrc-faults:{seed}")
        self.garbage = 0
        self.crc_errors = 0
        self.drop = 0

    def add(self, fault: Fault) -> None:
        """Queue a ``garbage``, ``crc_error`` or ``drop_bytes`` fault."""
        if fault.kind == "garbage":
            self.garbage += fault.n
        elif fault.kind == "crc_error":
            self.crc_errors += fault.n
        elif fault.kind == "drop_bytes":
            self.drop += fault.n
        else:
            raise ValueError(f"not a stream fault: {fault.kind}")

    def take_garbage(self) -> bytes:
        """Pending garbage bytes (never containing a preamble byte pair ``AA 55``), then none."""
        if not self.garbage:
            return b""
        out = bytearray(self._rng.getrandbits(8) for _ in range(self.garbage))
        for i in range(1, len(out)):
            if out[i - 1] == 0xAA and out[i] == 0x55:
                out[i] = 0x54
        self.garbage = 0
        return bytes(out)

    def apply(self, frame: bytes) -> bytes:
        """One reply after pending CRC corruption and byte drops."""
        if self.crc_errors:
            self.crc_errors -= 1
            frame = frame[:-1] + bytes([frame[-1] ^ 0x01])
        if self.drop:
            k = min(self.drop, len(frame))
            self.drop -= k
            frame = frame[k:]
        return frame

    @property
    def idle(self) -> bool:
        """True when nothing is pending."""
        return not (self.garbage or self.crc_errors or self.drop)
