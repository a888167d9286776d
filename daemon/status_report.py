"""The periodic status report: a log block, systemd ``STATUS=`` and ``<state dir>/status.json``.

Everything is read from one set of board snapshots (:meth:`daemon.state.DaemonState.snapshots`) per report.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from daemon.notify import Notifier
from daemon.recording import write_json_atomic
from daemon.state import DaemonState
from daemon.status import BoardSnapshot, daemon_status

log = logging.getLogger(__name__)

#: systemd ``STATUS=`` is one short line (characters).
NOTIFY_STATUS_CHARS = 200


def status_file_body(state: DaemonState, snaps: dict[str, BoardSnapshot], final: bool) -> dict[str, Any]:
    """``status.json``: the ``/status`` body plus each board session's link and envelope counters."""
    body = daemon_status(state, snaps)
    body["final"] = final
    body["supervisors"] = {
        name: sess for name, s in snaps.items() if (sess := s.session_status()) is not None
    }
    return body


class StatusReporter:
    """Every ``interval_s``: heartbeat, log the status lines, set ``STATUS=``, rewrite ``status.json``."""

    def __init__(self, state: DaemonState, notifier: Notifier, state_dir: Path, interval_s: float) -> None:
        self.state = state
        self.notifier = notifier
        self.path = Path(state_dir) / "status.json"
        self.interval_s = interval_s

    async def run(self) -> None:
        """Report until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            self.state.heartbeat()
            snaps = self.state.snapshots()
            lines = [s.status_line() for s in snaps.values()]
            rec = self.state.recorder
            log.info(
                "status\n  %s",
                "\n  ".join(
                    [*lines, f"recorder: {rec.rows} rows, {rec.segments} segments, healthy={rec.healthy}"]
                ),
            )
            ok, reason = self.state.health()
            head = "" if ok else f"UNHEALTHY ({reason}); "
            self.notifier.status((head + "; ".join(lines))[:NOTIFY_STATUS_CHARS])
            await self.write(snaps=snaps)

    async def write(self, final: bool = False, snaps: dict[str, BoardSnapshot] | None = None) -> None:
        """Rewrite ``status.json`` atomically; errors (an unwritable state dir) are logged at debug level and
        the next interval tries again."""
        body = status_file_body(self.state, self.state.snapshots() if snaps is None else snaps, final)
        try:
            await asyncio.to_thread(write_json_atomic, self.path, body)
        except OSError as exc:
            log.debug("cannot write status.json: %s", exc)
