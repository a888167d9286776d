"""Detection power of the asic reservoir: dose-response analysis, experiment planning (docs/asic-results.md).

Two halves:

* :func:`paired` and :func:`detection_table` turn dose-response rows (asic beside its matched poisson-null at
  several planted gains and event rates, benchmarks/bench_detection.py) into a minimum detectable effect
  (MDE) per event rate;
* :func:`plan` answers, before a run on hardware: how many events per sub-slot and chip will there be, how
  noisy is each feature, and which planted gain could this experiment detect?

Scaling model of the planning aid (an approximation, stated): a planted effect of gain ``g`` moves the counts
by ``~g`` relative, against a shot noise ``1 / sqrt(m)`` at ``m`` events per sub-slot and chip, so its r^2 in
a readout grows ~``g^2 m``; the paired interval of MC or NMSE shrinks ~``1 / sqrt(N)`` with ``N`` test
samples. The detectable gain then scales as ``m^-1/2 N^-1/4``; the constant comes from :data:`REFERENCE`
(the measured MDE per event rate) at its own ``N``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reservoir.bench import ci95
from reservoir.features import LOG_EXP_SD

#: Small cores per BM1366 (docs/protocol.md, "Rates"): hashes per clock cycle.
SMALL_CORES = 894
#: Washout steps of the generated series tasks (reservoir.tasks).
WASHOUT = 200
#: Metric direction: +1 when a higher asic - null difference means "more computation".
DIRECTION = {"mc": 1.0, "nmse": -1.0}

#: Measured MDE (planted gain) per task and kind at ``events`` per sub-slot and chip, from
#: ``benchmarks/bench_detection.py`` (docs/asic-results.md, "Detection power"), with the test samples
#: ``n_eff`` = n_test x seeds they were measured with (2 chips x 2 sub-slots, positive full-range masks, the
#: 2026-12-03 evening grid, with the null matched in chips and averaged over 5 draws per seed). ``inf`` = not
#: detected at any tested gain.
REFERENCE: dict[str, Any] = {
    "n_eff": 1000,
    "rows": [
        {"task": "memory-capacity", "kind": "echo", "events": 10.0, "mde_gain": 0.908},
        {"task": "memory-capacity", "kind": "echo", "events": 40.1, "mde_gain": 0.615},
        {"task": "memory-capacity", "kind": "echo", "events": 160.5, "mde_gain": 0.627},
        {"task": "memory-capacity", "kind": "threshold", "events": 10.0, "mde_gain": 0.153},
        {"task": "memory-capacity", "kind": "threshold", "events": 40.1, "mde_gain": 0.104},
        {"task": "memory-capacity", "kind": "threshold", "events": 160.5, "mde_gain": 0.0659},
        {"task": "narma10", "kind": "echo", "events": 10.0, "mde_gain": 0.139},
        {"task": "narma10", "kind": "echo", "events": 40.1, "mde_gain": 0.17},
        {"task": "narma10", "kind": "echo", "events": 160.5, "mde_gain": 0.115},
        {"task": "narma10", "kind": "threshold", "events": 10.0, "mde_gain": 0.588},
        {"task": "narma10", "kind": "threshold", "events": 40.1, "mde_gain": 0.677},
        {"task": "narma10", "kind": "threshold", "events": 160.5, "mde_gain": 0.888},
    ],
}


def paired(asic: Sequence[float], null: Sequence[float]) -> list[float]:
    """Per-seed ``asic - null`` (same seed = same input mask)."""
    if len(asic) != len(null):
        raise ValueError(f"paired: {len(asic)} asic values against {len(null)} null values")
    return [float(a) - float(b) for a, b in zip(asic, null, strict=True)]


def _detected(metric: str, ci: Sequence[float] | None) -> bool:
    if ci is None:
        return False
    return ci[0] > 0 if DIRECTION[metric] > 0 else ci[1] < 0


def detection_table(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (task, kind, event rate), the planted effect measured against the bare emulator (gain 0, kind
    ``none``), paired by seed: ``excess(g) = sign x ((asic - null)_g - (asic - null)_0)`` per seed, ``sign``
    the metric's direction. ``first_detected``: the smallest tested gain whose excess interval is above 0;
    ``mde_gain``: the gain where the mean excess reaches the mean half-width of the excess intervals (the
    95 % resolution), interpolated linearly between tested gains from 0 at gain 0 (inf if never).
    ``false_discovery``: gain 0 itself beats the null in the metric's direction. ``events``: the bare
    emulator's events per sub-slot and chip (a plant may lower the rate)."""
    rows = list(rows)
    out = []
    keys = sorted({(r["task"], r["kind"], r["events_target"]) for r in rows if r["kind"] != "none"})
    for task, kind, ev in keys:
        rs = [
            r for r in rows if (r["task"], r["events_target"]) == (task, ev) and r["kind"] in (kind, "none")
        ]
        rs.sort(key=lambda r: r["gain"])
        metric = rs[0]["metric"]
        sign = DIRECTION[metric]
        zero = next((r for r in rs if r["gain"] == 0), None)
        first, mde = None, math.inf
        pts: list[tuple[float, float, float]] = []  # gain, mean excess, half-width
        if zero is not None:
            base = np.asarray(zero["diff"])
            pts.append((0.0, 0.0, 0.0))
            for r in rs:
                if r["gain"] <= 0 or len(r["diff"]) != len(base):
                    continue
                ex = sign * (np.asarray(r["diff"]) - base)
                ci = ci95(ex.tolist())
                half = math.inf if ci is None else (ci[1] - ci[0]) / 2
                pts.append((r["gain"], float(ex.mean()), half))
                if first is None and ci is not None and ci[0] > 0:
                    first = r["gain"]
            halves = [h for g, _, h in pts if g > 0 and math.isfinite(h)]
            res = float(np.mean(halves)) if halves else math.inf  # the 95 % resolution of the excess
            for (g0, d0, _), (g1, d1, _) in itertools.pairwise(pts):
                if d0 < res <= d1:
                    mde = g0 + (res - d0) * (g1 - g0) / (d1 - d0)
                    break
        events = float(zero["events_per_subslot"] if zero else np.mean([r["events_per_subslot"] for r in rs]))
        out.append(
            {
                "task": task,
                "kind": kind,
                "metric": metric,
                "events": events,
                "first_detected": first,
                "mde_gain": mde,
                "excess": [(g, d, h) for g, d, h in pts],
                "zero_vs_null_ci95": None if zero is None else zero["diff_ci95"],
                "false_discovery": bool(zero is not None and _detected(metric, zero["diff_ci95"])),
                "n_eff": rs[0]["n_test"] * len(rs[0]["seeds"]),
            }
        )
    return out


# ------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class Experiment:
    """A planned run: ``chips`` on the chain, ``hashrate_ghs`` per chip, ``ticket_diff``, ``slot_s`` per
    sub-slot, ``n_sub`` sub-slots per input step, ``duration_s`` of experiment time, ``p_invalid``."""

    chips: int
    hashrate_ghs: float
    ticket_diff: float
    slot_s: float
    n_sub: int = 2
    duration_s: float = 3600.0
    p_invalid: float = 1e-4

    def __post_init__(self) -> None:
        for name in ("chips", "hashrate_ghs", "ticket_diff", "slot_s", "n_sub", "duration_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.p_invalid < 1:
            raise ValueError(f"p_invalid must be in [0, 1), got {self.p_invalid}")


def hashrate_ghs(freq_mhz: float) -> float:
    """BM1366 hash rate per chip (GH/s) at ``freq_mhz``: f x 894 small cores."""
    return freq_mhz * 1e6 * SMALL_CORES / 1e9


def events_per_subslot(e: Experiment) -> float:
    """Expected nonces per sub-slot and chip: hash rate / (ticket difficulty x 2^32) x slot."""
    return e.hashrate_ghs * 1e9 / (e.ticket_diff * 2.0**32) * e.slot_s


def feature_floors(m: float, p_invalid: float = 1e-4) -> dict[str, float]:
    """Shot-noise floor of the features at ``m`` events per sub-slot (as reservoir.asic.NoiseStats.floor):
    relative count noise, log-interval mean sd (log units), invalid-fraction sd."""
    return {
        "count": 1.0 / math.sqrt(m) if m > 0 else math.inf,
        "log_iv_mean": LOG_EXP_SD / math.sqrt(m - 1.0) if m > 1 else math.inf,
        "invalid_frac": math.sqrt(p_invalid * (1 - p_invalid) / m) if m > 0 else math.inf,
    }


def test_samples(e: Experiment) -> int:
    """Test samples of one run filling ``duration_s``: steps after the washout, a third of them for test."""
    steps = int(e.duration_s / (e.n_sub * e.slot_s))
    return max(0, (steps - WASHOUT) // 3)


def mde_constants(reference: dict[str, Any] | None = None) -> dict[tuple[str, str], float]:
    """Per (task, kind): the geometric mean over event rates of ``MDE x sqrt(m)`` (finite rows only)."""
    ref = reference or REFERENCE
    acc: dict[tuple[str, str], list[float]] = {}
    for r in ref["rows"]:
        g = float(r["mde_gain"])
        if math.isfinite(g) and g > 0:
            acc.setdefault((r["task"], r["kind"]), []).append(math.log(g * math.sqrt(r["events"])))
    return {k: math.exp(float(np.mean(v))) for k, v in acc.items()}


def plan(e: Experiment, reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """Events per sub-slot, feature floors and the smallest detectable planted gain per task and kind."""
    ref = reference or REFERENCE
    m = events_per_subslot(e)
    n = test_samples(e)
    mde: dict[str, float] = {}
    for (task, kind), c in sorted(mde_constants(ref).items()):
        mde[f"{task}/{kind}"] = c / math.sqrt(m) * (ref["n_eff"] / n) ** 0.25 if n > 0 and m > 0 else math.inf
    return {
        "events_per_subslot_per_chip": m,
        "events_per_s_chain": m / e.slot_s * e.chips,
        "floors": feature_floors(m, e.p_invalid),
        "test_samples": n,
        "mde_gain": mde,
        "reference_n_eff": ref["n_eff"],
    }
