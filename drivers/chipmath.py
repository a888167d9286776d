"""BM1366 chip arithmetic: PLL, ticket mask, version rolling, fast UART, hash counting number, rates.

Pure functions, no I/O. Formulas and literal values from ``docs/protocol.md`` (ESP-Miner ``pll.c`` and
``bm1366.c``);
pinned by tests on the literal register bytes quoted there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

#: Reference clock of the chip, MHz (25 MHz crystal on every Bitaxe board; docs/protocol.md).
REFCLK_MHZ = 25.0
#: Small cores per chip (112 cores x 8, 894 usable; docs/protocol.md "Rates").
SMALL_CORES_PER_CHIP = 894
CORES_PER_CHIP = 112
#: Bitcoin difficulty-1 target (share difficulty = DIFF1_TARGET / hash value).
DIFF1_TARGET = 0xFFFF * 2**208

#: PLL limits (docs/protocol.md: 144 <= fb_div <= 235, postdiv1 > postdiv2, both 1..7, refdiv 1 or 2).
FB_DIV_MIN = 144
FB_DIV_MAX = 235
POSTDIV_MAX = 7
REFDIVS = (2, 1)  # ESP-Miner's loop order
#: VCO at or above this sets 0x50 instead of 0x40 in the first PLL byte (ESP-Miner bm1366.c), MHz.
VCO_HIGH_MHZ = 2400.0
#: ESP-Miner frequency ramp step, MHz (100 ms apart in ESP-Miner).
RAMP_STEP_MHZ = 6.25
#: Fast UART register: the constant upper half written by ESP-Miner (0x11300200 at ~1 Mbaud).
FAST_UART_BASE = 0x11300000
#: Fast UART baud = REFCLK / ((BT8D + 1) * 8).
FAST_UART_DIVISOR = 8
#: Version rolling register: enable bit pattern ORed with (mask >> 13) (ESP-Miner set_version_mask).
VERSION_ROLLING_ENABLE = 0x90000000


class UnreachableFrequency(ValueError):
    """No PLL setting lands within tolerance of the requested frequency; names the nearest reachable ones."""

    def __init__(
        self, freq_mhz: float, tolerance_mhz: float, below: float | None, above: float | None
    ) -> None:
        self.freq_mhz = freq_mhz
        self.below = below
        self.above = above
        near = ", ".join(f"{f:.4g} MHz" for f in (below, above) if f is not None) or "none"
        super().__init__(
            f"{freq_mhz:.4g} MHz is not reachable within {tolerance_mhz:.4g} MHz; nearest reachable: {near}"
        )


@dataclass(frozen=True, slots=True)
class PllSetting:
    """PLL0 dividers: f = 25 MHz * fb_div / (refdiv * postdiv1 * postdiv2)."""

    fb_div: int
    refdiv: int
    postdiv1: int
    postdiv2: int

    @property
    def freq_mhz(self) -> float:
        """Output (hash clock) frequency, MHz."""
        return REFCLK_MHZ * self.fb_div / (self.refdiv * self.postdiv1 * self.postdiv2)

    @property
    def vco_mhz(self) -> float:
        """VCO frequency, MHz."""
        return REFCLK_MHZ * self.fb_div / self.refdiv

    @property
    def data_bytes(self) -> bytes:
        """The 4 register bytes: ``[0x40|0x50][fb_div][refdiv][(postdiv1-1)<<4 | (postdiv2-1)]``."""
        first = 0x50 if self.refdiv and self.vco_mhz >= VCO_HIGH_MHZ else 0x40
        post = ((self.postdiv1 - 1) << 4) | (self.postdiv2 - 1)
        return bytes([first, self.fb_div & 0xFF, self.refdiv & 0xFF, post])

    @property
    def register_value(self) -> int:
        """The 32-bit PLL0 register value (data bytes, MSB first)."""
        return int.from_bytes(self.data_bytes, "big")

    @classmethod
    def from_register(cls, register_value: int) -> PllSetting:
        """Dividers from a PLL0 register value (the 0x40/0x50 flag byte is ignored)."""
        fb = (register_value >> 16) & 0xFF
        refdiv = (register_value >> 8) & 0xFF
        post = register_value & 0xFF
        return cls(fb, refdiv, ((post >> 4) & 0x7) + 1, (post & 0x7) + 1)


def _round_half_up(x: Fraction) -> int:
    """C ``round`` for non-negative values (half away from zero)."""
    return math.floor(x + Fraction(1, 2))


def _candidates(freq: Fraction) -> list[tuple[Fraction, Fraction, int, PllSetting]]:
    """(|diff|, vco, postdiv product, setting) for ESP-Miner's loop order, exact arithmetic."""
    out = []
    ref = Fraction(REFCLK_MHZ)
    for refdiv in REFDIVS:
        for p1 in range(POSTDIV_MAX, 0, -1):
            for p2 in range(POSTDIV_MAX, 0, -1):
                if p1 <= p2:
                    continue
                div = refdiv * p1 * p2
                fb = _round_half_up(freq / ref * div)
                if not FB_DIV_MIN <= fb <= FB_DIV_MAX:
                    continue
                f = ref * fb / div
                out.append((abs(freq - f), ref * fb / refdiv, p1 * p2, PllSetting(fb, refdiv, p1, p2)))
    return out


def _all_reachable() -> list[float]:
    """Every reachable output frequency, sorted, MHz."""
    freqs = set()
    for refdiv in REFDIVS:
        for p1 in range(1, POSTDIV_MAX + 1):
            for p2 in range(1, p1):
                for fb in range(FB_DIV_MIN, FB_DIV_MAX + 1):
                    freqs.add(Fraction(int(REFCLK_MHZ)) * fb / (refdiv * p1 * p2))
    return [float(f) for f in sorted(freqs)]


REACHABLE_MHZ: tuple[float, ...] = tuple(_all_reachable())


def pll_for_frequency(freq_mhz: float, tolerance_mhz: float = 1.0) -> PllSetting:
    """PLL setting for ``freq_mhz`` by ESP-Miner's search.

    Closest frequency first, then the lowest VCO, then the smallest postdiv1*postdiv2 (first found wins a full
    tie, in ESP-Miner's loop order). Raises :class:`UnreachableFrequency` when the closest is further than
    ``tolerance_mhz`` away.
    """
    if not math.isfinite(freq_mhz) or freq_mhz <= 0:
        raise UnreachableFrequency(freq_mhz, tolerance_mhz, None, REACHABLE_MHZ[0])
    target = Fraction(freq_mhz)
    best: tuple[Fraction, Fraction, int, PllSetting] | None = None
    for cand in _candidates(target):
        if best is None or cand[:3] < best[:3]:
            best = cand
    if best is None or best[0] > Fraction(tolerance_mhz):
        raise UnreachableFrequency(freq_mhz, tolerance_mhz, *nearest_reachable(freq_mhz))
    return best[3]


def nearest_reachable(freq_mhz: float) -> tuple[float | None, float | None]:
    """The reachable frequencies just below and just above ``freq_mhz`` (None past either end), MHz."""
    below = [f for f in REACHABLE_MHZ if f <= freq_mhz]
    above = [f for f in REACHABLE_MHZ if f >= freq_mhz]
    return (below[-1] if below else None, above[0] if above else None)


def frequency_from_pll(register_value: int) -> float:
    """Hash clock frequency of a PLL0 register value, MHz (0.0 when a divider is zero)."""
    s = PllSetting.from_register(register_value)
    if s.refdiv == 0:
        return 0.0
    return s.freq_mhz


def ticket_mask(difficulty: int) -> int:
    """Ticket mask register value for ``difficulty``: largest 2^k <= d, 2^k - 1, bit-reverse each byte."""
    if difficulty < 1:
        raise ValueError(f"ticket difficulty must be >= 1, got {difficulty}")
    mask = (1 << (difficulty.bit_length() - 1)) - 1
    if mask > 0xFFFFFFFF:
        raise ValueError(f"ticket difficulty {difficulty} exceeds 2^32")
    return int.from_bytes(bytes(_reverse_byte(b) for b in mask.to_bytes(4, "big")), "big")


def difficulty_from_ticket_mask(value: int) -> int:
    """Difficulty a ticket mask register value stands for (inverse of :func:`ticket_mask`)."""
    mask = int.from_bytes(bytes(_reverse_byte(b) for b in (value & 0xFFFFFFFF).to_bytes(4, "big")), "big")
    return mask + 1


def _reverse_byte(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


def version_rolling_value(mask: int = 0x1FFFE000) -> int:
    """Register 0xA4 value enabling version rolling over ``mask`` (0x1FFFE000 -> 0x9000FFFF)."""
    return VERSION_ROLLING_ENABLE | ((mask >> 13) & 0xFFFF)


def fast_uart_value(bt8d: int) -> int:
    """Register 0x28 value for divider ``bt8d`` (0x02 -> 0x11300200, ~1 Mbaud)."""
    if not 0 <= bt8d <= 0xFF:
        raise ValueError(f"BT8D must be 0..255, got {bt8d}")
    return FAST_UART_BASE | (bt8d << 8)


def baud_from_fast_uart(value: int) -> float:
    """Baud rate set by a register 0x28 value: 25 MHz / ((BT8D + 1) * 8), baud."""
    bt8d = (value >> 8) & 0xFF
    return REFCLK_MHZ * 1e6 / ((bt8d + 1) * FAST_UART_DIVISOR)


def bt8d_for_baud(baud: float) -> int:
    """The BT8D divider giving the baud closest to ``baud``."""
    if baud <= 0:
        raise ValueError(f"baud must be positive, got {baud}")
    best = min(range(256), key=lambda d: abs(REFCLK_MHZ * 1e6 / ((d + 1) * FAST_UART_DIVISOR) - baud))
    return best


def fast_uart_for_baud(baud: float) -> int:
    """Register 0x28 value for the reachable baud closest to ``baud`` (1e6 -> 0x11300200)."""
    return fast_uart_value(bt8d_for_baud(baud))


#: Largest host/chip baud mismatch a UART link tolerates (8N1 sampled mid-bit over 10 bits: ~5 %). ESP-Miner
#: itself runs the host at 1,000,000 baud against the chip's 1,041,667 (4 % apart).
BAUD_TOLERANCE = 0.05


def chip_baud(baud: float) -> float:
    """The rate the chip really runs when asked for ``baud``: the nearest 25 MHz / ((BT8D + 1) * 8), baud."""
    return REFCLK_MHZ * 1e6 / ((bt8d_for_baud(baud) + 1) * FAST_UART_DIVISOR)


def baud_problem(baud: float) -> str | None:
    """Why a host at ``baud`` cannot talk to the chip (its nearest rate is over 5 % away), or None."""
    chip = chip_baud(baud)
    off = baud / chip - 1.0
    if abs(off) <= BAUD_TOLERANCE:
        return None
    rates = [REFCLK_MHZ * 1e6 / ((d + 1) * FAST_UART_DIVISOR) for d in range(256)]
    above = min((r for r in rates if r > baud), default=None)
    below = max((r for r in rates if r < baud), default=None)
    near = " or ".join(f"{round(r):,}" for r in (below, above) if r is not None)
    return (
        f"the chip's UART runs only at 25 MHz / ((n+1) x 8) baud; the nearest, {round(chip):,}, is "
        f"{abs(off):.0%} off and host and chip must agree within {BAUD_TOLERANCE:.0%}; use e.g. {near}"
    )


def nextpow2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    if n < 1:
        raise ValueError(f"need n >= 1, got {n}")
    return 1 << (n - 1).bit_length()


def hash_counting_number(chips: int, freq_mhz: float) -> int:
    """Register 0x10 value, ESP-Miner: (2^32 / 128 / nextpow2(chips)) * 25 / f * 0.5, truncated."""
    if freq_mhz <= 0:
        raise ValueError(f"frequency must be positive, got {freq_mhz}")
    value = (2**32 / 128 / nextpow2(chips)) * REFCLK_MHZ / freq_mhz * 0.5
    return int(value) & 0xFFFFFFFF


def frequency_ramp(start_mhz: float, target_mhz: float, step_mhz: float = RAMP_STEP_MHZ) -> list[float]:
    """Frequencies to set in turn from ``start_mhz`` to ``target_mhz`` (ESP-Miner ramp), MHz.

    Off-grid starts snap to the next multiple of ``step_mhz`` toward the target; then whole steps; the last
    element is always ``target_mhz``. ``start_mhz`` itself is not included. Empty when start == target.
    """
    if step_mhz <= 0:
        raise ValueError(f"step must be positive, got {step_mhz}")
    out: list[float] = []
    if start_mhz == target_mhz:
        return out
    up = target_mhz > start_mhz
    cur = float(start_mhz)
    snapped = (math.ceil if up else math.floor)(cur / step_mhz) * step_mhz
    if snapped != cur and (snapped < target_mhz if up else snapped > target_mhz):
        cur = snapped
        out.append(cur)
    while (cur < target_mhz) if up else (cur > target_mhz):
        delta = min(step_mhz, abs(target_mhz - cur))
        cur = cur + delta if up else cur - delta
        if abs(cur - target_mhz) < 1e-9:
            cur = float(target_mhz)
        out.append(cur)
    return out


def expected_nonce_rate(
    freq_mhz: float, ticket_difficulty: float, small_cores: int = SMALL_CORES_PER_CHIP
) -> float:
    """Reported nonces per second per chip: f * 1e6 * small_cores / (difficulty * 2^32), 1/s."""
    return freq_mhz * 1e6 * small_cores / (ticket_difficulty * 2**32)


def hashrate_ghs(freq_mhz: float, small_cores: int = SMALL_CORES_PER_CHIP) -> float:
    """Chip hashrate, GH/s (f * 0.894 at 894 small cores)."""
    return freq_mhz * small_cores / 1000.0
