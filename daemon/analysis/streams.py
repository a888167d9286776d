"""Events -> streams: by board, by (board, chip) or by plan point, and each stream's rate extras.

A point stream's events at its setpoint are one stream; ramp steps and events outside any point are
transitions, counted apart and not tested (:func:`daemon.point_streams.point_runs`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from daemon.analysis.read import AnalysisInputError, read_recording
from daemon.point_streams import Transition, point_runs
from drivers.chipmath import expected_nonce_rate
from reservoir.timing import MIN_EVENTS

#: Per-event columns a stream keeps (for the verdict's evidence and the per-stream extras).
STREAM_COLUMNS = ("valid", "freq_mhz", "ticket_diff", "read_id", "read_pos", "read_nonces", "power_w", "chip")


@dataclass
class Stream:
    """Events of one stream: time segments (int64 ns, contiguous runs) and per-event columns."""

    name: str
    segments: list[np.ndarray] = field(default_factory=list)
    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)

    def col(self, key: str) -> np.ndarray | None:
        parts = self.cols.get(key)
        return np.concatenate(parts) if parts else None


def group_streams(
    ev: dict[str, np.ndarray], by: str, clock: str = "t_ns", transitions: list[Transition] | None = None
) -> list[Stream]:
    """Split events into streams by board, (board, chip) or plan point (:func:`point_runs`); a point stream's
    time segments are its contiguous runs within its board's event order (intervals across runs are not used).
    With ``by="point"``, the events of no stream are appended to ``transitions`` (one entry per board)."""
    n = len(ev[clock])
    board = ev.get("board", np.full(n, "-", dtype=object))
    streams: dict[tuple[Any, ...], Stream] = {}
    for b in sorted(set(board.tolist())):
        idx = np.flatnonzero(board == b)
        if by == "board":
            runs: list[tuple[tuple[Any, ...], np.ndarray]] = [((b,), np.arange(len(idx)))]
        elif by == "chip":
            if "chip" not in ev:
                raise AnalysisInputError("--by chip: the recording has no 'chip' column")
            chips = ev["chip"][idx]
            runs = [((b, int(c)), np.flatnonzero(chips == c)) for c in np.unique(chips)]
        else:
            if "voltage_v" not in ev or "freq_mhz" not in ev:
                raise AnalysisInputError("--by point: the recording has no voltage_v/freq_mhz columns")
            keys = ("voltage_v", "freq_mhz", "ticket_diff", "point")
            sub: dict[str, np.ndarray] = {k: ev[k][idx] for k in keys if k in ev}
            found, trans = point_runs(sub, ev[clock][idx], MIN_EVENTS)
            runs = [((b, *key), sel) for key, sel in found]
            if trans is not None and transitions is not None:
                transitions.append(dataclasses.replace(trans, board=str(b)))
        for key, pos in runs:
            st = streams.setdefault(key, Stream(name=_name(by, key), labels=_labels(by, key)))
            # a point's events are cut where another point or a transition came between them; a chip's
            # events interleave with the other chips' and stay one segment
            parts = np.split(pos, np.flatnonzero(np.diff(pos) != 1) + 1) if by == "point" else [pos]
            for part in parts:
                if not len(part):
                    continue
                sel = idx[part]
                st.segments.append(ev[clock][sel])
                for c in (*STREAM_COLUMNS, "voltage_v"):
                    if c in ev:
                        st.cols.setdefault(c, []).append(ev[c][sel])
    return list(streams.values())


def _name(by: str, key: tuple[Any, ...]) -> str:
    if by == "board":
        return str(key[0])
    if by == "chip":
        return f"{key[0]}/chip{key[1]}"
    point = f"/p{key[1]}" if key[1] >= 0 else ""
    return f"{key[0]}{point}@{key[2]:g}V/{key[3]:g}MHz"


def _labels(by: str, key: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"board": key[0]}
    if by == "chip":
        out["chip"] = key[1]
    if by == "point":
        if key[1] >= 0:
            out["point"] = key[1]
        out["voltage_v"], out["freq_mhz"] = key[2], key[3]
    return out


def read_streams(
    dirs: list[Path],
    by: str,
    clock: str,
    transitions: list[Transition],
    step: Callable[[str], None] = lambda _s: None,
    track: Callable[[list[Path]], Iterable[Path]] = lambda d: d,
) -> tuple[list[Stream], list[dict[str, np.ndarray]]]:
    """Streams of every recording (named ``<run-id>/<stream>`` when there are several) and their events;
    with ``by="point"`` the untested transitions are appended to ``transitions``. ``step`` and ``track``
    report progress (a step description; an iterable over the directories)."""
    streams: list[Stream] = []
    evs: list[dict[str, np.ndarray]] = []
    for d in track(dirs) if len(dirs) > 1 else dirs:
        step(f"reading {d}")
        ev = read_recording(d, clock)
        found = group_streams(ev, by, clock, transitions)
        if len(dirs) > 1:
            for st in found:
                st.name = f"{d.name}/{st.name}"
                st.labels["recording"] = d.name
        streams.extend(found)
        evs.append(ev)
    return streams, evs


def stream_extras(st: Stream, rate_hz: float) -> dict[str, Any]:
    """Invalid fraction, nonce rate vs expected and J/TH (when power_w is recorded) for one stream."""
    out: dict[str, Any] = dict(st.labels)
    valid = st.col("valid")
    if valid is not None:
        out["invalid_fraction"] = float(1.0 - np.mean(valid.astype(bool)))
    f, td, chip = st.col("freq_mhz"), st.col("ticket_diff"), st.col("chip")
    if f is not None and td is not None and len(f):
        chips = len(np.unique(chip)) if chip is not None else 1
        f_med, td_med = float(np.median(f)), float(np.median(td))
        if td_med > 0:
            expected = chips * expected_nonce_rate(f_med, td_med)
            out["expected_rate_hz"] = expected
            out["rate_vs_expected"] = rate_hz / expected if expected > 0 else None
            power = st.col("power_w")
            if power is not None and len(power):
                th_s = rate_hz * td_med * 2.0**32 / 1e12
                out["power_w"] = float(np.nanmean(power))
                out["j_per_th"] = out["power_w"] / th_s if th_s > 0 else None
    return out
