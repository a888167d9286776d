"""One line of evidence behind a verdict (the line under each row of ``asicrc analyze``'s table)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reservoir.timing.verdict import StreamResult


def summary(res: StreamResult) -> str:
    """One line of evidence behind a verdict, e.g. ``quantum 16 ms (FTDI latency timer default)``."""
    parts: list[str] = []
    for a in res.artifacts:
        ev = a["evidence"]
        if a["name"] == "timestamp-quantum":
            zero = f"{ev['zero_gap_fraction']:.1%} zero gaps"
            parts.append(f"quantum {ev['quantum_s'] * 1e3:.3g} ms ({ev['mechanism']}), {zero}")
        elif a["name"] == "polling":
            poll = ev.get("median_delivery_interval_s")
            period = f", deliveries every {poll:.3g} s" if poll else ""
            reads = ""
            if ev.get("intervals_in_read"):
                reads = f", {ev['share_in_read']:.1%} of intervals inside one read"
            parts.append(f"batches of {ev['mean_batch_size']:.3g} events on average{period}{reads}")
        else:
            parts.append(f"dead time {ev['dead_time_s'] * 1e3:.3g} ms ({ev['link'] or ev['mechanism']})")
    ba = res.beyond_artifact
    if ba is not None and "min_window_s" in ba:
        win = f"counts in windows >= {ba['min_window_s']:.3g} s"
        if ba["structure"]:
            fano = ", ".join(f"{v:.3g}" for v in ba["fano"].values())
            parts.append(f"beyond the artefact ({win}): {ba['kind']}, Fano {fano}")
        elif not ba["fano"]:
            parts.append(f"beyond the artefact: not testable ({win} do not fit 20 times)")
        else:
            parts.append(f"nothing beyond the artefact ({win})")
    if not res.artifacts and res.verdict == "non-poisson":
        s = res.stats
        dt = s.detections["dead-time"].evidence
        if "dead-time" in res.rejected:
            parts.append(f"dead time {dt['dead_time_s'] * 1e3:.3g} ms, events lost (no pile-up)")
        if s.fano:
            lo, hi = min(s.fano.values()), max(s.fano.values())
            parts.append(f"Fano {lo:.3g}-{hi:.3g}")
        parts.append(f"tests rejected: {', '.join(res.rejected)}")
    return "; ".join(parts)
