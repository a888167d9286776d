"""Event columns of a recording directory, and timestamp files, for the analyser (docs/analyze.md).

Segments are read by :func:`daemon.recording.scan_stream`, the recording reader: a torn ``.part`` (the daemon
was killed while writing it) keeps its whole record batches; a finished segment that does not read to its end
is an :class:`AnalysisInputError` naming it (``asicrc record recover DIR`` sets it aside). Older recording
formats are read as the current one (:func:`daemon.event_format.upgrade_events`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from daemon.event_format import FORMAT2_COLUMNS, LEGACY_NAMES, upgrade_events
from daemon.recording import scan_stream

log = logging.getLogger(__name__)

#: Event columns the analyser reads (those present in the recording).
COLUMNS = (
    "t_ns",
    "t_host_ns",
    "t_wire_ns",
    "board",
    "chip",
    "valid",
    "voltage_v",
    "freq_mhz",
    "ticket_diff",
    "read_id",
    "read_pos",
    "read_nonces",
    "point",
    "power_w",
)
#: ``--clock`` choice -> event column ("corrected": the name of ``wire`` before recording format 2).
CLOCKS = {"host": "t_ns", "wire": "t_wire_ns", "corrected": "t_wire_ns"}


class AnalysisInputError(ValueError):
    """Input the user has to fix (bad file, missing directory, damaged segment, too few events)."""


def read_segment(path: Path) -> pa.Table | None:
    """Every whole, valid record batch of one Arrow IPC stream file; None if it holds none.

    A torn ``.part`` keeps its whole batches. Damage in a finished segment raises :class:`AnalysisInputError`
    naming it.
    """
    torn_ok = path.name.endswith(".part")
    try:
        scan = scan_stream(path, keep=True, mmap=True)  # zero-copy: the columns go to numpy as they are
    except OSError as exc:
        raise AnalysisInputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not scan.clean_end:
        what = (
            "not readable as an Arrow stream"
            if scan.schema is None
            else f"torn after {scan.batches} whole batches ({scan.rows} rows) at byte {scan.good_bytes}"
        )
        if not torn_ok:
            raise AnalysisInputError(
                f"{path}: damaged segment ({what}); run `asicrc record recover {path.parent}` to set it aside"
            )
        log.warning("%s: %s; the whole batches are kept", path, what)
    if not scan.kept:
        return None
    return pa.Table.from_batches(scan.kept)


def read_recording(directory: Path, clock: str = "t_ns") -> dict[str, np.ndarray]:
    """The event columns of a recording directory as numpy arrays (board as strings), sorted by time."""
    if not directory.is_dir():
        raise AnalysisInputError(f"{directory}: no such recording directory")
    whole = sorted(directory.glob("events-*.arrows"))
    names = {f.name for f in whole}
    # a .part next to its finished segment (a crash during recovery's rename) would count rows twice
    files = whole + sorted(p for p in directory.glob("events-*.arrows.part") if p.name[:-5] not in names)
    if not files:
        raise AnalysisInputError(f"{directory}: no events-*.arrows segments (is this a recording directory?)")
    cols: dict[str, list[np.ndarray]] = {}
    for f in files:
        t = read_segment(f)
        if t is None or t.num_rows == 0:
            continue
        if tuple(t.column_names) == LEGACY_NAMES:
            t = upgrade_events(t)
        if clock not in t.column_names:
            raise AnalysisInputError(f"{f}: no {clock!r} column (columns: {', '.join(t.column_names)})")
        for name in COLUMNS:
            if name not in t.column_names:
                continue
            c = t.column(name)
            if name in FORMAT2_COLUMNS and c.null_count:
                continue  # unknown in this segment: the column is dropped for the whole recording
            if name == "board":
                cols.setdefault(name, []).append(_strings(c))
            else:
                cols.setdefault(name, []).append(c.to_numpy())
    if clock not in cols:
        if clock == "t_wire_ns" and files:
            raise AnalysisInputError(f"{directory}: no serialization-corrected t_wire_ns (use --clock host)")
        raise AnalysisInputError(f"{directory}: the segments hold no events")
    n = sum(len(a) for a in cols[clock])
    out = {k: np.concatenate(v) for k, v in cols.items() if sum(len(a) for a in v) == n}
    order = np.argsort(out[clock], kind="stable")
    return {k: v[order] for k, v in out.items()}


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    """A (dictionary) string column as a numpy object array, decoding each distinct name once."""
    enc = pc.dictionary_encode(pc.cast(col, pa.string())).combine_chunks()
    names = np.asarray(enc.dictionary.to_pylist(), dtype=object)
    out: np.ndarray = names[enc.indices.to_numpy(zero_copy_only=False)]
    return out


def read_timestamps(path: Path) -> np.ndarray:
    """One integer ns timestamp per line (blank lines and '#' comments skipped); sorted if needed."""
    if not path.exists() or path.is_dir():
        raise AnalysisInputError(f"{path}: no such file")
    vals: list[int] = []
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    with path.open("r", encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            try:
                v = int(s)
            except ValueError:
                raise AnalysisInputError(
                    f"{path}:{lineno}: not an integer timestamp in ns: {s[:40]!r}"
                ) from None
            if not lo <= v <= hi:
                raise AnalysisInputError(f"{path}:{lineno}: timestamp {s[:40]} ns is outside the int64 range")
            vals.append(v)
    t = np.asarray(vals, dtype=np.int64)
    if len(t) > 1 and np.any(np.diff(t) < 0):
        log.warning("%s: timestamps are not in order; sorted", path)
        t = np.sort(t)
    if len(t) > 1 and t[0] == t[-1]:
        raise AnalysisInputError(
            f"{path}: all {len(t)} timestamps are equal ({t[0]} ns): no intervals to analyse"
        )
    return t
