"""systemd notification protocol (sd_notify) without dependencies: READY, STATUS, WATCHDOG, STOPPING.

Datagrams go to ``$NOTIFY_SOCKET`` (a path, or an abstract socket when it starts with ``@``). Outside systemd
(no ``NOTIFY_SOCKET``) every call is a cheap no-op returning False. See sd_notify(3), sd_watchdog_enabled(3).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

#: Fraction of WatchdogSec between keep-alives (sd_watchdog_enabled(3) recommends half the interval).
WATCHDOG_FRACTION = 0.5


def watchdog_interval_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when the watchdog is off.

    Honours ``WATCHDOG_PID``: a watchdog meant for another process is off for this one.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wpid = env.get("WATCHDOG_PID", "")
    if wpid and wpid.isdigit() and int(wpid) != (os.getpid() if pid is None else pid):
        return None
    return int(usec) * 1e-6 * WATCHDOG_FRACTION


class Notifier:
    """Sends sd_notify datagrams to ``socket_path`` (default ``$NOTIFY_SOCKET``); no-op when unset."""

    def __init__(self, socket_path: str | None = None, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        path = socket_path if socket_path is not None else env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if path:
            self.address = "\0" + path[1:] if path.startswith("@") else path
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent = 0
        self.errors = 0

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=value`` fields in one datagram; True when sent. Errors are logged once, never raised."""
        if self.address is None:
            return False
        message = "\n".join(fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(message, self.address)
        except OSError as exc:
            self.errors += 1
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self.address.replace("\0", "@"), exc)
                self._warned = True
            return False
        self.sent += 1
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1`` (plus ``STATUS=``): start-up finished (Type=notify units become active)."""
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by ``systemctl status``."""
        return self.notify("STATUS=" + text.replace("\n", " "))

    def watchdog(self) -> bool:
        """Keep-alive ``WATCHDOG=1``."""
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun."""
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def watchdog_loop(
    notifier: Notifier,
    interval_s: float,
    healthy: Callable[[], bool] = lambda: True,
    *,
    report: Callable[[], tuple[bool, str]] | None = None,
) -> None:
    """Ping ``WATCHDOG=1`` every ``interval_s`` while ``healthy()``; run as a task, cancel it at shutdown.

    The ping itself proves the event loop is alive (a stuck loop stops it and systemd restarts the service);
    keep ``healthy`` for liveness only. ``report`` (e.g. ``DaemonState.health``) is shown through ``STATUS=``
    whenever its (ok, reason) changes, so failed boards are visible in ``systemctl status`` without a restart
    loop.
    """
    last: tuple[bool, str] | None = None
    while True:
        if healthy():
            notifier.watchdog()
        if report is not None:
            now = report()
            if now != last:
                if last is not None or not now[0]:
                    notifier.status("healthy" if now[0] else f"unhealthy: {now[1]}")
                last = now
        await asyncio.sleep(interval_s)
