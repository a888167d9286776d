"""One fleet-collector run until a signal or a duration: the collector, its broker link and the final counts
(``asicrc collect``; docs/mqtt.md, "Fleet collector")."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import Any

from daemon.collect import Collector, run_collector
from daemon.mqtt_link import MqttSettings


async def collect_until_stopped(
    settings: MqttSettings, out: Path, alpha: float | str, duration: float | None, identifier: str
) -> dict[str, Any]:
    """Record into ``out`` until SIGINT/SIGTERM or ``duration`` s; the final counts (``asicrc collect``)."""

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    timer = loop.call_later(duration, stop.set) if duration is not None else None
    collector = Collector(out, topic_root=settings.topic_root, alpha=alpha)
    log = logging.getLogger("daemon.collect")
    try:
        mqtt = await run_collector(
            collector,
            settings,
            stop,
            identifier=identifier,
            ready=lambda: log.info("collect: recording %s/+/events/+ into %s", settings.topic_root, out),
        )
    finally:
        if timer is not None:
            timer.cancel()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    rec = collector.recorder.stats
    result = collector.stats.to_json()
    result.update(
        out=str(out),
        recorded_rows=rec.rows,
        segments=rec.segments,
        recorder_dropped_rows=collector.dropped_rows + rec.error_dropped_rows,
        readout=None if collector.saved_readout is None else str(collector.saved_readout),
        reconnects=mqtt.stats.reconnects,
        last_error=mqtt.stats.last_error,
    )
    log.info("collect: %s", json.dumps(result, sort_keys=True))
    return result
