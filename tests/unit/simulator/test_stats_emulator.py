"""The emulator's default output is called ``poisson``; through its FTDI link model, ``artifact``."""

from __future__ import annotations

import numpy as np
import pytest

from reservoir.timing import analyze_stream
from simulator.chain import ChainCore
from simulator.link import FtdiLink, IdealLink

SEEDS = range(5)
RUN_S = 800.0  # ~4,000 nonces at 5/s per seed
BAUD = 115200.0


def _delivered_ns(seed: int, link: IdealLink) -> np.ndarray:
    """Host delivery times (ns) of every reply of one emulated chip at 5 nonces/s through ``link``."""
    core = ChainCore(chips=1, seed=seed, firehose_rate=5.0, physics_step_s=1.0)
    for te, data in core.advance(RUN_S):
        link.push(te, data, BAUD)
    link.pop_ready(float("inf"))
    return (np.array([g.deliver_s for g in link.truth]) * 1e9).astype(np.int64)


@pytest.mark.parametrize("seed", SEEDS)
def test_emulator_default_output_is_poisson(seed: int) -> None:
    t = _delivered_ns(seed, IdealLink(record=True))
    assert len(t) > 3000
    r = analyze_stream(t, surrogates=0)
    assert r.verdict == "poisson", (r.rejected, r.p_adjusted)


@pytest.mark.parametrize("seed", SEEDS)
def test_emulator_ftdi_link_is_a_timestamp_quantum_artifact(seed: int) -> None:
    r = analyze_stream(_delivered_ns(seed, FtdiLink(record=True)), surrogates=0)
    assert r.verdict == "artifact" and r.kind == "timestamp-quantum"
    ev = r.artifacts[0]["evidence"]
    assert ev["quantum_ns"] == 16_000_000 and "FTDI" in ev["mechanism"]


def test_emulator_wire_serialisation_at_high_rate_is_a_link_artifact() -> None:
    # 100 nonces/s at 115200 baud: 9-byte replies take 0.78 ms on the wire, so close replies queue behind
    # each other (a dead time the silicon did not make); at 1 Mbaud the hole is too small to matter.
    # seed 2: the ground truth of seed 1 (50 s, 4,900 events) happens to fail the Fano test at 1 s windows
    # (p ~ 0.007), and structure beyond an artefact is now reported rather than masked by it
    core = ChainCore(chips=1, seed=2, firehose_rate=100.0, physics_step_s=1.0)
    out = core.advance(50.0)
    slow, fast = IdealLink(record=True), IdealLink(record=True)
    for te, data in out:
        slow.push(te, data, BAUD)
        fast.push(te, data, 1e6)
    res = []
    for link in (slow, fast):
        link.pop_ready(float("inf"))
        t = (np.array([g.deliver_s for g in link.truth]) * 1e9).astype(np.int64)
        res.append(analyze_stream(t, surrogates=0))
    assert res[0].verdict == "artifact" and res[0].kind == "dead-time"
    assert res[0].artifacts[0]["evidence"]["mechanism"] == "link"
    assert "9-byte reply at 115200" in res[0].artifacts[0]["evidence"]["link"]
    assert res[0].beyond_artifact is not None and not res[0].beyond_artifact["structure"]
    assert res[1].verdict != "artifact"  # 90 us wire time: below the 1 % effect gate at 100/s
