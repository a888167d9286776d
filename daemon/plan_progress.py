"""Sweep progress saved as JSON in the state directory (crash-safe, see
:func:`daemon.recording.write_json_atomic`), resumed after a restart when the plan's points are unchanged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from daemon.recording import write_json_atomic

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SweepProgress:
    """Saved state of one sweep on one board: points done and their summaries."""

    plan: str
    board: str
    fingerprint: str
    total: int
    done: int = 0
    summaries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.done >= self.total


class ProgressStore:
    """Progress files ``<dir>/<plan>.<board>.json``; unreadable or mismatched files start afresh."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)

    def path(self, plan: str, board: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{plan}.{board}")
        return self.dir / f"{safe}.json"

    def load(self, plan: str, board: str, fp: str, total: int) -> SweepProgress:
        """Saved progress when it matches ``fp`` and is incomplete; otherwise a fresh start."""
        p = self.path(plan, board)
        fresh = SweepProgress(plan, board, fp, total)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            prog = SweepProgress(**data)
        except FileNotFoundError:
            return fresh
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "plan %s on %s: progress file %s unreadable (%s); starting afresh", plan, board, p, exc
            )
            return fresh
        if prog.fingerprint != fp or prog.total != total:
            log.info("plan %s on %s: points changed since the saved progress; starting afresh", plan, board)
            return fresh
        if prog.complete:
            log.info("plan %s on %s: previous run complete; starting a new run", plan, board)
            return fresh
        return prog

    def save(self, prog: SweepProgress) -> None:
        write_json_atomic(self.path(prog.plan, prog.board), asdict(prog))
