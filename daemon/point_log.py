"""Per-point sweep summaries read back from a recording's log stream (docs/recording-format.md).

For every finished sweep point the daemon writes one ``plan`` log row whose payload is
``{"plan": NAME, "summary": {...}}`` (:class:`daemon.plans.PointSummary`): the point's applied voltage and
frequency, nonce rate, hashrate, mean board power, J/TH and peak temperatures. Events carry no power column;
these rows are where power, temperature and efficiency per point live.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from daemon.recording import SEGMENT_RE, scan_stream

log = logging.getLogger(__name__)

#: Summary fields copied into a point row (PointSummary names), besides ``board`` and ``plan``.
FIELDS = (
    "index",
    "voltage_v",
    "freq_mhz",
    "ticket_diff",
    "dwell_s",
    "nonces",
    "nonce_rate_hz",
    "hashrate_ghs",
    "power_mean_w",
    "j_per_th",
    "chip_temp_max_c",
    "regulator_temp_max_c",
    "clamped",
)


def log_segments(run_dir: Path) -> list[Path]:
    """``log-*.arrows`` in sequence order, plus a torn ``.part`` whose finished twin does not exist."""
    found: dict[int, Path] = {}
    for p in run_dir.iterdir():
        m = SEGMENT_RE.match(p.name)
        if m and m.group(1) == "log":
            seq = int(m.group(2))
            if not m.group(3) or seq not in found:  # a finished segment wins over its .part
                found[seq] = p
    return [found[k] for k in sorted(found)]


def read_point_summaries(run_dir: str | Path) -> list[dict[str, Any]]:
    """One dict per finished sweep point in the recording (log order): ``board``, ``plan`` and FIELDS.

    Whole batches of a torn segment are read; a payload that is not a JSON object is skipped with a
    warning. A recording without log segments or without sweeps gives an empty list.
    """
    d = Path(run_dir)
    rows: list[dict[str, Any]] = []
    for path in log_segments(d):
        scan = scan_stream(path, keep=True)
        if scan.schema is None or not {"board", "kind", "payload"} <= set(scan.schema.names):
            log.warning("%s: not a log segment; skipped", path)
            continue
        for batch in scan.kept:
            for r in batch.select(["board", "kind", "payload"]).to_pylist():
                if r["kind"] != "plan" or '"summary"' not in r["payload"]:
                    continue
                try:
                    payload = json.loads(r["payload"])
                except ValueError:
                    log.warning("%s: unreadable plan payload %.60r; skipped", path, r["payload"])
                    continue
                summ = payload.get("summary") if isinstance(payload, dict) else None
                if not isinstance(summ, dict):
                    continue
                row: dict[str, Any] = {"board": r["board"], "plan": payload.get("plan")}
                row.update({k: summ.get(k) for k in FIELDS})
                rows.append(row)
    return rows
