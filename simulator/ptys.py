"""OS plumbing of the pty emulator: a pseudo-terminal pair and a one-shot Linux ``timerfd`` (no emulation).

:class:`Pty` keeps its slave side open so a host may close and reopen the path freely; :class:`TimerFd` lets
the event loop wake at a reply's modelled delivery time within tens of microseconds (asyncio's own timers
round up to 1 ms). Used by :mod:`simulator.pty_server`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import tty
from collections import deque

#: timerfd constants from <sys/timerfd.h> / <time.h> (Linux): CLOCK_MONOTONIC is the clock of
#: time.monotonic_ns; TFD_TIMER_ABSTIME arms at an absolute time.
CLOCK_MONOTONIC = 1
TFD_NONBLOCK = os.O_NONBLOCK
TFD_CLOEXEC = os.O_CLOEXEC
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A one-shot CLOCK_MONOTONIC ``timerfd`` (Linux, via libc): readable at the armed deadline (ns).

    An event loop watching it wakes within the kernel's hrtimer precision (tens of us) instead of asyncio's
    1 ms timer granularity. Raises OSError where timerfd is unavailable.
    """

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._settime = libc.timerfd_settime
        except (OSError, AttributeError) as exc:
            raise OSError(errno.ENOSYS, f"timerfd unavailable: {exc}") from exc
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        fd = int(libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_create: {os.strerror(err)}")
        self.fd = fd
        self._spec = _Itimerspec()

    def arm(self, deadline_ns: int) -> None:
        """Fire once at ``deadline_ns`` (time.monotonic_ns scale); a deadline in the past fires at once."""
        deadline_ns = max(deadline_ns, 1)  # 0 would disarm
        self._spec.it_value.tv_sec, self._spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        if self._settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"timerfd_settime: {os.strerror(err)}")

    def drain(self) -> None:
        """Consume the expiry count so the fd is no longer readable."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            os.read(self.fd, 8)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Pty:
    """One pty pair; we keep the slave open so the host may close and reopen it freely."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.out = bytearray()
        self.dropped = 0
        #: Bytes ever queued / ever written or dropped, and (stream end offset, truth_lo, truth_hi) of each
        #: queued chunk that completes ground-truth replies, to stamp their actual write time.
        self.queued = 0
        self.done = 0
        self.marks: deque[tuple[int, int, int]] = deque()

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
