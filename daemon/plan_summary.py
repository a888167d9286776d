"""Per-point results of a sweep: what the supervisor counts while a point's dwell window is open
(:class:`PointAccumulator`) and the point's summary with its expected nonce rate (:func:`summarize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daemon.plan_points import SweepPoint
from daemon.safety import Telemetry
from daemon.state import HASHES_PER_DIFF1
from drivers.chipmath import expected_nonce_rate


@dataclass(slots=True)
class PointAccumulator:
    """Counts what the supervisor sees while a point's dwell window is open."""

    nonces: int = 0
    invalid: int = 0
    valid_diff_sum: float = 0.0  # sum of ticket difficulty over valid nonces
    chip_temp_max_c: float | None = None
    regulator_temp_max_c: float | None = None
    power_sum_w: float = 0.0
    power_n: int = 0
    trips: int = 0

    def add_events(self, valid: np.ndarray, ticket_diff: np.ndarray) -> None:
        """Fold one event batch (bool valid, ticket difficulty per row) into the counts."""
        n = len(valid)
        nv = int(np.count_nonzero(valid))
        self.nonces += n
        self.invalid += n - nv
        self.valid_diff_sum += float(ticket_diff[valid].sum(dtype=np.float64))

    def add_telemetry(self, t: Telemetry) -> None:
        if t.chip_temp_c is not None:
            self.chip_temp_max_c = max(t.chip_temp_c, self.chip_temp_max_c or -math.inf)
        if t.regulator_temp_c is not None:
            self.regulator_temp_max_c = max(t.regulator_temp_c, self.regulator_temp_max_c or -math.inf)
        if t.power_w is not None:
            self.power_sum_w += t.power_w
            self.power_n += 1


@dataclass(frozen=True, slots=True)
class PointSummary:
    """Per-point result. Rates in 1/s, hashrate in GH/s, energy in J/TH (None without a power reading)."""

    index: int
    voltage_v: float
    freq_mhz: float
    ticket_diff: float
    dwell_s: float
    nonces: int
    invalid: int
    nonce_rate_hz: float
    expected_rate_hz: float
    rate_ratio: float | None
    invalid_fraction: float
    hashrate_ghs: float
    chip_temp_max_c: float | None
    regulator_temp_max_c: float | None
    power_mean_w: float | None
    j_per_th: float | None
    trips: int
    clamped: str = ""  # the gate's clamp reasons when the point ran at other values (then they are used)


def summarize(
    point: SweepPoint, acc: PointAccumulator, dwell_s: float, chips: int, nonce_scale: float = 1.0
) -> PointSummary:
    """Summary of one point. Expected rate = chips * :func:`drivers.chipmath.expected_nonce_rate` (f * 894e6
    / (d * 2^32) per chip) * nonce_scale (docs/protocol.md, "Rates")."""
    dwell = max(dwell_s, 1e-9)
    expected = chips * expected_nonce_rate(point.freq_mhz, point.ticket_diff) * nonce_scale
    rate = acc.nonces / dwell
    hashrate_ghs = acc.valid_diff_sum * HASHES_PER_DIFF1 / nonce_scale / dwell / 1e9
    power = acc.power_sum_w / acc.power_n if acc.power_n else None
    jth = power / (hashrate_ghs / 1000.0) if power is not None and hashrate_ghs > 0 else None
    return PointSummary(
        index=point.index,
        voltage_v=point.voltage_v,
        freq_mhz=point.freq_mhz,
        ticket_diff=point.ticket_diff,
        dwell_s=dwell_s,
        nonces=acc.nonces,
        invalid=acc.invalid,
        nonce_rate_hz=rate,
        expected_rate_hz=expected,
        rate_ratio=rate / expected if expected > 0 else None,
        invalid_fraction=acc.invalid / acc.nonces if acc.nonces else 0.0,
        hashrate_ghs=hashrate_ghs,
        chip_temp_max_c=acc.chip_temp_max_c,
        regulator_temp_max_c=acc.regulator_temp_max_c,
        power_mean_w=power,
        j_per_th=jth,
        trips=acc.trips,
    )
