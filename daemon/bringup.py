"""Bring-up failures of one board, made visible: counted by reason, logged once per change, kept for health.

A board whose data port is missing, is not a tty (``/dev/null``) or answers garbage never comes up; the
supervisor retries with backoff forever. :class:`BringUpWatch` turns each failed attempt into:

* a count in :attr:`BoardState.bringup_failures` by reason (``asicrc_bringup_failures_total{board,reason}``);
* the last reason in :attr:`BoardState.bringup_error` (``/status``, ``/healthz``, the status lines);
* one WARNING line per change of reason (not one per retry), and one INFO line when the board comes up after
  failures.

:meth:`daemon.state.DaemonState.health` reports a board that has not come up within the start-up window
(``timing.startup_timeout_s``) as unhealthy; ``asicrc run`` exits 2 when no board came up in it
(docs/daemon.md, "Start-up").
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence

from daemon.state import BoardState
from drivers.chain import ChainError
from drivers.i2c import I2CError

log = logging.getLogger(__name__)

#: Reasons (the ``reason`` label; a closed set). ``open``: the data port could not be opened; ``control``:
#: the control channel (regulator, fan, reset line) failed; ``no_chip``: no chip answered the chip-id read;
#: ``chip_count``: a different number of chips answered; ``chain``: another chain error (a register read
#: timed out); ``link``: the data link failed during bring-up (closed, write error).
REASONS = ("open", "control", "no_chip", "chip_count", "chain", "link")

#: Bring-up stages the supervisor reports a failure in.
STAGE_OPEN = "open"
STAGE_CONTROL = "control"
STAGE_CHAIN = "chain"


def classify(stage: str, exc: BaseException) -> str:
    """The :data:`REASONS` label of a failure of ``stage`` (``open``, ``control`` or ``chain``)."""
    if stage == STAGE_OPEN:
        return "open"
    if stage == STAGE_CONTROL or isinstance(exc, I2CError | TimeoutError):  # e.g. the bitaxe-raw reset line
        return "control"
    if isinstance(exc, ChainError):
        text = str(exc)
        if text.startswith("no chip answered"):
            return "no_chip"
        if text.startswith("found ") and "expected" in text:
            return "chip_count"
        return "chain"
    return "link"


class BringUpWatch:
    """Counts and reports the bring-up attempts of one board into its :class:`BoardState`."""

    def __init__(self, state: BoardState, *, now_ns: int) -> None:
        self.state = state
        self.streak = 0  # failed attempts since the last successful bring-up
        self._last: tuple[str, str] | None = None
        state.not_up_since_ns = now_ns

    @property
    def failing(self) -> bool:
        """True while the latest attempt failed (the owner keeps link transitions out of the log then)."""
        return self.streak > 0

    def failed(self, stage: str, exc: BaseException) -> None:
        """Count a failed attempt (``stage``: open, control, chain); log the reason when it changed."""
        reason = classify(stage, exc)
        text = str(exc) or type(exc).__name__
        st = self.state
        st.bringup_failures[reason] = st.bringup_failures.get(reason, 0) + 1
        st.bringup_error = f"{reason}: {text}"
        self.streak += 1
        key = (reason, re.sub(r"\d+", "#", text))  # request ids, counts and delays vary per attempt
        if self._last != key:
            self._last = key
            log.warning(
                "board %s: not up (%s): %s; retrying with backoff (logged again when the reason changes)",
                st.name,
                reason,
                text,
            )

    def up(self) -> None:
        """The board came up: clear the error (the counts stay)."""
        st = self.state
        if self.streak:
            log.info("board %s: came up after %d failed attempt(s)", st.name, self.streak)
        self.streak = 0
        self._last = None
        st.ever_up = True
        st.bringup_error = None
        st.not_up_since_ns = None


async def wait_first_board_up(
    boards: Sequence[BoardState],
    timeout_s: float,
    clock: Callable[[], int],
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    poll_s: float = 0.05,
) -> str | None:
    """Wait until one of ``boards`` has come up (returns None) or ``timeout_s`` has passed since the call
    (returns the one-line reason naming each board and why it is not up). ``timeout_s`` <= 0 waits forever."""
    start = clock()
    while True:
        if any(b.ever_up for b in boards):
            return None
        waited = (clock() - start) / 1e9
        if 0 < timeout_s <= waited:
            why = "; ".join(f"{b.name}: {b.bringup_error or 'no attempt finished'}" for b in boards)
            return (
                f"no board came up within {timeout_s:g} s (timing.startup_timeout_s): {why}"
                if boards
                else "no board to bring up"
            )
        await sleep(poll_s)
