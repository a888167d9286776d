"""Timing honesty end to end: the real daemon (``asicrc run`` subprocess) on the default emulator at a held
point is never called "non-poisson", by point or by chip, idle or loaded, while the emulator's ground truth of
the same events is called "poisson" (benchmarks/bench_calibration.py; docs/analyze.md). The truth itself is a
Poisson stream tested at a family-wise alpha of 0.05, so over a matrix of runs a few chance calls on it are
expected: the matrix bounds their number (binomial, 99 %) and only asks that the daemon's recording never
says "non-poisson" where the truth of the same events says "poisson".

The fast tier runs two short seeded 1-chip runs on the host as it is (emulator in the daemon's process and in
its own); the slow tier (``make slow``) the matrix (1 and 4 chips, idle and loaded with two busy processes)
and the planted kinds (4 chips hold at a point the single-phase regulator can supply). No timing
thresholds: only verdicts.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_calibration as cal

pytestmark = pytest.mark.system


def _check_default(r: dict[str, Any], truth_must_be_poisson: bool = True) -> int:
    """Checks one default run; returns how many truth streams were (by chance) called non-poisson."""
    chance = 0
    for by in ("point", "chip"):
        daemon, truth = r[f"daemon_{by}"], r[f"truth_{by}"]
        assert daemon and len(daemon) == len(truth), r
        assert [o["stream"] for o in daemon] == [o["stream"] for o in truth]
        for d, t in zip(daemon, truth):
            assert d["verdict"] != "non-poisson" or t["verdict"] == "non-poisson", (by, d, t)
        chance += sum(o["verdict"] == "non-poisson" for o in truth)
        if truth_must_be_poisson:
            assert all(o["verdict"] == "poisson" for o in truth), (by, truth)
    assert r["matched"] >= 0.95 * sum(o["n_events"] for o in r["daemon_point"])
    assert r["format_ok"], "t_ns is not the read time, or the read structure columns are inconsistent"
    return chance


@pytest.mark.parametrize(
    "case", [cal.Case(1, "inproc", "idle", 11), cal.Case(1, "child", "idle", 12)], ids=lambda c: c.config
)
def test_default_emulator_is_never_called_non_poisson(case: cal.Case) -> None:
    r = cal.run_case(case, 6.0)
    assert {o["stream"].split("@")[0] for o in r["daemon_point"]} == {
        "sim0/p0" if case.emulator == "inproc" else "emu/p0"
    }
    assert len(r["daemon_chip"]) == case.chips
    _check_default(r)


@pytest.mark.slow
def test_calibration_matrix_has_no_false_non_poisson() -> None:
    results = [cal.run_case(c, 20.0) for c in cal.cases(2, "default")]
    print(cal.table(results))
    chance = sum(_check_default(r, truth_must_be_poisson=False) for r in results)
    streams = sum(len(r["truth_point"]) + len(r["truth_chip"]) for r in results)
    assert chance <= binom.ppf(0.99, streams, 0.05), (chance, streams)


@pytest.mark.slow
@pytest.mark.parametrize("knob", list(cal.KNOBS))
def test_planted_kinds_are_named_through_the_daemon(knob: str) -> None:
    """~20,000 events (200 s at ~100/s, one chip): the planted kind is named by point and by chip."""
    r = cal.run_case(cal.Case(1, "child", "idle", 200, knob), 200.0)
    print(cal.table([r]))
    word = cal.KNOBS[knob][1]
    assert all(cal.names_kind(o, word) for o in r["daemon_point"] + r["daemon_chip"]), r
