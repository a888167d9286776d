"""The one place that (re)connects a transport: capped exponential backoff, transitions logged once.

``connect_with_backoff`` opens a fresh transport from a factory until it works; :class:`Reconnector` keeps a
session running over a link, reconnecting whenever the session ends with a transport error. Logs say
``connected``, ``lost``, ``recovered`` (and the first failure of a streak), never every retry.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.transport.base import Transport, TransportError

log = logging.getLogger(__name__)

#: Backoff defaults (pymodbus-style reconnect: start small, double, cap so a replugged board returns fast).
INITIAL_DELAY_S = 0.1
BACKOFF_FACTOR = 2.0
MAX_DELAY_S = 10.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff: ``initial_s * factor**attempt`` seconds, at most ``max_s``."""

    initial_s: float = INITIAL_DELAY_S
    factor: float = BACKOFF_FACTOR
    max_s: float = MAX_DELAY_S

    def delay(self, attempt: int) -> float:
        """Wait (s) before retry number ``attempt`` (0-based)."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        return min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))


class LinkState(enum.Enum):
    """States a reconnector reports to ``on_state``."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOST = "lost"
    RECOVERED = "recovered"
    STOPPED = "stopped"


Sleep = Callable[[float], Awaitable[None]]


async def connect_with_backoff(
    factory: Callable[[], Transport],
    *,
    backoff: Backoff = Backoff(),
    sleep: Sleep = asyncio.sleep,
    max_attempts: int | None = None,
    name: str = "link",
    on_error: Callable[[TransportError], None] | None = None,
) -> Transport:
    """Open ``factory()`` until it succeeds; raise :class:`TransportError` after ``max_attempts`` failures.

    ``on_error`` sees every failed open; when given, the failures are left to it to report (not logged here).
    """
    attempt = 0
    while True:
        transport = factory()
        try:
            await transport.open()
            if attempt:
                log.info("%s: open succeeded after %d failed attempt(s)", name, attempt)
            return transport
        except TransportError as exc:
            if on_error is not None:
                on_error(exc)
            elif attempt == 0:
                log.warning("%s: cannot open (%s); retrying with backoff", name, exc)
            else:
                log.debug("%s: attempt %d failed: %s", name, attempt + 1, exc)
            attempt += 1
            if max_attempts is not None and attempt >= max_attempts:
                raise TransportError(f"{name}: giving up after {attempt} attempts: {exc}") from exc
            await sleep(backoff.delay(attempt - 1))


class Reconnector:
    """Run ``session(transport)`` over a link, reconnecting with backoff whenever the link fails.

    The session returns normally to stop; a :class:`TransportError` (closed, lost, write failed) from it
    means "link lost" and triggers a reconnect. Other exceptions propagate. ``on_state`` sees transitions.
    ``on_open_error`` sees every failed open (and then reports it: it is not logged here); while ``quiet()``
    is true, transitions are not logged either (the owner is reporting a failure streak itself).
    """

    def __init__(
        self,
        factory: Callable[[], Transport],
        session: Callable[[Transport], Awaitable[None]],
        *,
        backoff: Backoff = Backoff(),
        sleep: Sleep = asyncio.sleep,
        name: str = "link",
        on_state: Callable[[LinkState], None] | None = None,
        max_attempts: int | None = None,
        on_open_error: Callable[[TransportError], None] | None = None,
        quiet: Callable[[], bool] | None = None,
    ) -> None:
        self.factory = factory
        self.on_open_error = on_open_error
        self.quiet = quiet
        self.session = session
        self.backoff = backoff
        self.sleep = sleep
        self.name = name
        self.on_state = on_state
        self.max_attempts = max_attempts
        self.state = LinkState.STOPPED
        self.connects = 0

    def _set(self, state: LinkState) -> None:
        if state is self.state:
            return
        self.state = state
        loud = self.quiet is None or not self.quiet()
        if loud and state in (LinkState.CONNECTED, LinkState.LOST, LinkState.RECOVERED):
            level = logging.WARNING if state is LinkState.LOST else logging.INFO
            log.log(level, "%s: %s", self.name, state.value)
        if self.on_state is not None:
            self.on_state(state)

    async def run(self) -> None:
        """Keep the session going until it returns; transport errors lead to a reconnect."""
        try:
            while True:
                self._set(LinkState.CONNECTING)
                transport = await connect_with_backoff(
                    self.factory,
                    backoff=self.backoff,
                    sleep=self.sleep,
                    max_attempts=self.max_attempts,
                    name=self.name,
                    on_error=self.on_open_error,
                )
                self.connects += 1
                self._set(LinkState.CONNECTED if self.connects == 1 else LinkState.RECOVERED)
                try:
                    await self.session(transport)
                    return
                except TransportError as exc:
                    log.debug("%s: session ended: %s", self.name, exc)
                    self._set(LinkState.LOST)
                finally:
                    await transport.close()
                await self.sleep(self.backoff.delay(0))
        finally:
            self._set(LinkState.STOPPED)
