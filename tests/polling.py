"""The test suite's one way to wait for a condition: poll it, bounded, and say what never happened.

:func:`until` for coroutines (polls with ``asyncio.sleep``), :func:`wait_for` for plain tests
(``time.sleep``).
Both can watch child processes (``procs``): one that exits while waiting fails the wait at once with its
exit code and the tail of its stderr (when piped); on a timeout the watched processes are killed, so a
failed test leaks nothing.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any

Procs = Sequence["subprocess.Popen[Any]"]


def _stderr_tail(p: subprocess.Popen[Any]) -> str:
    if p.stderr is None:
        return ""
    try:
        err = p.communicate(timeout=5)[1]
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return ""
    text = err.decode(errors="replace") if isinstance(err, bytes) else str(err or "")
    return f"; stderr: {text[-3000:]}"


def _check_alive(procs: Procs, what: str) -> None:
    for p in procs:
        if p.poll() is not None:
            raise AssertionError(f"{what}: process {p.args!r} exited with {p.returncode}{_stderr_tail(p)}")


def _timed_out(procs: Procs, what: str, within_s: float) -> AssertionError:
    tails = ""
    for p in procs:
        p.kill()
        tails += _stderr_tail(p)
    return AssertionError(f"timed out after {within_s} s waiting for {what}{tails}")


def _holds(cond: Callable[[], object], tolerate: tuple[type[BaseException], ...]) -> bool:
    try:
        return bool(cond())
    except tolerate:  # e.g. a status file caught half-written: not yet
        return False


def _done(
    cond: Callable[[], object],
    deadline: float,
    within_s: float,
    what: str,
    procs: Procs,
    tolerate: tuple[type[BaseException], ...],
) -> bool:
    """One poll: True when ``cond()`` holds; AssertionError when a process died or the time is up."""
    if _holds(cond, tolerate):
        return True
    _check_alive(procs, what)
    if time.monotonic() > deadline:
        raise _timed_out(procs, what, within_s)
    return False


async def until(
    cond: Callable[[], object],
    *,
    within_s: float = 10.0,
    poll_s: float = 0.005,
    what: str = "the condition",
    procs: Procs = (),
    tolerate: tuple[type[BaseException], ...] = (),
) -> None:
    """Poll ``cond()`` every ``poll_s`` (0: each loop turn) until true; AssertionError after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not _done(cond, deadline, within_s, what, procs, tolerate):  # noqa: ASYNC110 - plain state
        await asyncio.sleep(poll_s)


def wait_for(
    cond: Callable[[], object],
    *,
    within_s: float = 20.0,
    poll_s: float = 0.05,
    what: str = "the condition",
    procs: Procs = (),
    tolerate: tuple[type[BaseException], ...] = (),
) -> None:
    """Blocking :func:`until` for plain (non-async) tests."""
    deadline = time.monotonic() + within_s
    while not _done(cond, deadline, within_s, what, procs, tolerate):
        time.sleep(poll_s)
