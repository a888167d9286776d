"""Opening the daemon's recording at start-up: recover torn segments of earlier runs, then a new run."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from daemon.config import RecorderConfig
from daemon.recorder import Recorder, RecorderPolicy, new_run_id
from daemon.recording import recover_all
from daemon.state import RecorderStats

log = logging.getLogger(__name__)


async def open_recorder(
    root: Path, rc: RecorderConfig, stats: RecorderStats, meta: dict[str, Any], boards: Sequence[str]
) -> Recorder:
    """Recover every run under ``root`` (counted in ``stats``), then a :class:`Recorder` for a new run dir.

    An unreadable ``root`` is logged; the recorder's own open then counts, drops and retries.
    """
    try:
        recovered = await asyncio.to_thread(recover_all, root)
    except OSError as exc:
        log.error("cannot recover recordings under %s: %s", root, exc)
        recovered = []
    for r in recovered:
        log.warning("recovered torn segment: %s", r.to_json())
    stats.recovered_segments += len(recovered)
    stats.recovered_rows += sum(r.rows for r in recovered)
    run_dir = root / new_run_id()
    log.info("recording to %s", run_dir)
    policy = RecorderPolicy.from_config(rc)
    return Recorder(run_dir, policy=policy, stats=stats, meta=meta, boards=list(boards))
