"""Streams of ``asicrc analyze --by point``: one per plan point, ramp steps apart as a transition.

A plan point's stream is the events recorded with that ``point`` (the plan's point index, docs/recording-
format.md) at the point's own setpoint: the (voltage, frequency, ticket difficulty) most of its events were
recorded at, i.e. where the safety ramp arrived (or the value the gate clamped it to). Its events at other
setpoints are ramp steps on the way there; they and the events of no point (``point`` -1: before the plan,
between plans) form the board's *transition*, which is counted and reported apart but not tested (the rate
moves with the setpoint by design). Recordings without plan points (every ``point`` -1) fall back to one
stream per setpoint held for at least ``min_events`` events; shorter holds are ramp steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Stream key: (plan point or -1, voltage V, frequency MHz).
Key = tuple[int, float, float]


@dataclass(frozen=True, slots=True)
class Transition:
    """Events of one board outside every point stream: ramp steps and time outside plan points."""

    board: str
    events: int
    setpoints: int  # distinct (voltage, frequency, ticket difficulty) among them
    span_s: float  # first to last such event

    def line(self) -> str:
        """One human-readable line."""
        return (
            f"{self.board}: {self.events} events at {self.setpoints} setpoint(s) over {self.span_s:.3g} s "
            "(transition: ramp steps or no plan point; not tested)"
        )


def _setpoints(cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    """(n, 3) rounded voltage, frequency, ticket difficulty (0 when not recorded)."""
    td = cols.get("ticket_diff")
    return np.column_stack(
        [
            np.round(cols["voltage_v"].astype(np.float64), 4),
            np.round(cols["freq_mhz"].astype(np.float64), 3),
            np.round(td.astype(np.float64), 3) if td is not None else np.zeros(n),
        ]
    )


def point_runs(
    cols: dict[str, np.ndarray], t_ns: np.ndarray, min_events: int
) -> tuple[list[tuple[Key, np.ndarray]], Transition | None]:
    """Point streams of one board's events (``cols`` and ``t_ns`` in the board's time order) as (key, sorted
    positions), and the board's transition (None when every event is in a stream). ``board`` is left "" for
    the caller to fill."""
    n = len(t_ns)
    sp = _setpoints(cols, n)
    point = cols.get("point")
    runs: list[tuple[Key, np.ndarray]] = []
    if point is not None and bool((point >= 0).any()):
        for p in np.unique(point[point >= 0]):
            mine = np.flatnonzero(point == p)
            combos, counts = np.unique(sp[mine], axis=0, return_counts=True)
            held = combos[int(np.argmax(counts))]
            at = mine[np.all(sp[mine] == held, axis=1)]
            runs.append(((int(p), float(held[0]), float(held[1])), at))
    else:
        combos, inverse, counts = np.unique(sp, axis=0, return_inverse=True, return_counts=True)
        inverse = inverse.reshape(-1)
        for j in np.flatnonzero(counts >= min_events):
            runs.append(((-1, float(combos[j][0]), float(combos[j][1])), np.flatnonzero(inverse == j)))
    used = np.zeros(n, dtype=bool)
    for _, sel in runs:
        used[sel] = True
    rest = np.flatnonzero(~used)
    if not len(rest):
        return runs, None
    tr = t_ns[rest]
    span = (int(tr.max()) - int(tr.min())) / 1e9
    return runs, Transition("", len(rest), len(np.unique(sp[rest], axis=0)), span)
