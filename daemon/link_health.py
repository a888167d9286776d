"""Is a board's data link healthy? Silence (never counting time the process was not running) and CRC storms.

The supervisor tells :class:`LinkHealth` when bytes arrived and how late its control loop woke; each control
tick :meth:`LinkHealth.check` raises :class:`HealthError` (handled like a lost link: reconnect) or asks for a
liveness probe (docs/operations.md, "Busy hosts": scheduling delay is never taken for a lost board).
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.transport import TransportError


class HealthError(TransportError):
    """The link is alive but unhealthy (silence, CRC storm): handled like a lost link (reconnect)."""


class LinkHealth:
    """Silence and CRC-storm watch of one session; ``silence_ns`` and ``crc_storm_per_s`` from the config.

    ``reader_quiet``: the transport's reader thread's own view of silence (ns), when it has one.
    """

    def __init__(self, now_ns: int, silence_ns: int, crc_storm_per_s: float) -> None:
        self.silence_ns = silence_ns
        self.crc_storm_per_s = crc_storm_per_s
        self.reader_quiet: Callable[[], int] | None = None
        self.restart(now_ns, 0)

    def restart(self, now_ns: int, crc_errors: int, reader_quiet: Callable[[], int] | None = None) -> None:
        """A session starts at ``now_ns`` with the decoder's CRC count ``crc_errors``."""
        self.last_rx_ns = now_ns
        self.late_ns = 0  # control-loop lateness since the loop last saw bytes (not silence)
        self.probe_sent = False
        self._crc_window = (now_ns, crc_errors)
        self.reader_quiet = reader_quiet

    def saw_bytes(self, now_ns: int) -> None:
        """The loop saw bytes at ``now_ns`` (the read may be older if the loop was late)."""
        self.last_rx_ns = now_ns
        self.late_ns = 0
        self.probe_sent = False

    def loop_late(self, late_ns: int) -> None:
        """The control loop woke ``late_ns`` after it asked to: no evidence of a silent board."""
        self.late_ns += max(0, late_ns)

    def quiet_ns(self, now_ns: int) -> int:
        """How long (ns) the link has been silent, never counting time the process was not running.

        The loop's view (since it last saw bytes, minus its own lateness since then) and, when the transport
        has a reader thread, that thread's view on its own clock: silence needs both, so reads that wait for
        a late loop are not taken for a lost board.
        """
        quiet = now_ns - self.last_rx_ns - self.late_ns
        return min(quiet, self.reader_quiet()) if self.reader_quiet is not None else quiet

    def check(self, now_ns: int, crc_errors: int, *, held: bool) -> bool:
        """Raise :class:`HealthError` on silence or a CRC storm; True when a liveness probe is due now.

        A board held in reset is silent by design: no silence check then.
        """
        quiet = self.quiet_ns(now_ns)
        probe = False
        if not held:
            if quiet > self.silence_ns:
                raise HealthError(f"no bytes for {quiet / 1e9:.1f} s")
            if quiet > self.silence_ns // 2 and not self.probe_sent:
                self.probe_sent = probe = True
        t0, c0 = self._crc_window
        if now_ns - t0 >= 1_000_000_000:
            rate = (crc_errors - c0) * 1e9 / (now_ns - t0)
            self._crc_window = (now_ns, crc_errors)
            if rate > self.crc_storm_per_s:
                raise HealthError(f"CRC storm: {rate:.0f} bad frames/s")
        return probe
