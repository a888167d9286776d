"""Serve emulated boards on their ptys until SIGINT/SIGTERM (``asicrc sim``; docs/emulator.md).

:func:`serve_boards` starts one :class:`~simulator.pty_server.SimulatedBoard` per config, hands their
``info()`` (pty paths, link) to ``announce`` once they listen, optionally applies fault JSON lines read from
stdin (each answered by one JSON line on stdout: :func:`stdin_faults`), and stops every board on the way out.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from simulator.board_spec import BoardConfig
from simulator.pty_server import SimulatedBoard


async def serve_boards(
    configs: Sequence[BoardConfig],
    announce: Callable[[list[dict[str, Any]]], None],
    *,
    stdin_control: bool = False,
) -> None:
    """Run the boards of ``configs`` until SIGINT or SIGTERM."""
    boards = [SimulatedBoard(c) for c in configs]
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reader_task: asyncio.Task[None] | None = None
    try:
        for b in boards:
            await b.start()
        announce([b.info() for b in boards])
        if stdin_control:
            reader_task = asyncio.create_task(stdin_faults(boards, stop))
        await stop.wait()
    finally:
        if reader_task is not None:
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)
        for b in boards:
            await b.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def stdin_faults(boards: Sequence[SimulatedBoard], stop: asyncio.Event) -> None:
    """Apply fault JSON lines from stdin (``{"board": 0, "kind": ...}``); answer each with one JSON line."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not stop.is_set():
        raw = await reader.readline()
        if not raw:
            return
        try:
            msg = json.loads(raw)
            board = boards[int(msg.get("board", 0))]
            ack = board.inject(msg)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            ack = {"ok": False, "error": str(exc)}
        print(json.dumps(ack), flush=True)
