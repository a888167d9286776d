"""simulator.emission.Arrivals: exact arrival times whatever the segmenting, holds, the next-arrival bound."""

from __future__ import annotations

import itertools
import random

import numpy as np

from simulator.emission import Arrivals


def _run(segments: int, rate: np.ndarray, t_end: float = 1.0, **kw: float) -> list[tuple[int, float]]:
    arr = Arrivals([random.Random(f"t:{i}") for i in range(len(rate))], **kw)
    out: list[tuple[int, float]] = []
    edges = np.linspace(0.0, t_end, segments + 1)
    for a, b in itertools.pairwise(edges):
        arr.consume(rate, float(a), float(b), lambda i, t: out.append((i, t)))
    return sorted(out, key=lambda e: e[1])


def test_arrivals_do_not_depend_on_how_often_time_advances() -> None:
    rate = np.array([200.0, 50.0, 0.0])
    one, many = _run(1, rate), _run(97, rate)
    assert [i for i, _ in one] == [i for i, _ in many]
    np.testing.assert_allclose([t for _, t in one], [t for _, t in many], rtol=0, atol=1e-9)
    assert {i for i, _ in one} == {0, 1}  # a chip at rate 0 never fires
    n0 = sum(1 for i, _ in one if i == 0)
    assert 120 < n0 < 280  # Poisson(200)


def test_dead_time_spaces_a_chips_arrivals() -> None:
    ev = _run(10, np.array([2000.0]), dead_time_s=0.002)
    gaps = np.diff([t for _, t in ev])
    assert len(ev) > 50 and gaps.min() >= 0.002 - 1e-12


def test_hold_and_next_time() -> None:
    rate = np.array([100.0, 100.0])
    arr = Arrivals([random.Random(1), random.Random(2)])
    arr.hold(0, 0.5)
    first = arr.next_time(rate, 0.0)
    got: list[tuple[int, float]] = []
    arr.consume(rate, 0.0, 1.0, lambda i, t: got.append((i, t)))
    assert min(t for _, t in got) == first
    assert all(t >= 0.5 for i, t in got if i == 0) and any(i == 0 for i, _ in got)
    assert arr.next_time(np.zeros(2), 1.0) == float("inf")
