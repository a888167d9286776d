"""Chip -> host link models: when each reply's bytes reach the host (pure, simulated time in seconds).

* :class:`IdealLink`: the UART serialises replies back to back at the chain's baud (10 bits per byte, 8N1);
  a reply is delivered when its last stop bit has left the wire.
* :class:`FtdiLink`: the same wire into a USB-serial bridge that holds received bytes until its latency timer
  expires (16 ms default, FTDI AN232B-04 and the sysfs ``latency_timer``) or its packet fills (62 payload
  bytes of a 64-byte full-speed bulk packet, 2 being modem status), so host reads arrive in batches.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: Bits per byte on an 8N1 UART (start + 8 data + stop).
BITS_PER_BYTE = 10
#: FTDI default latency timer (s) (FTDI AN232B-04; Linux ftdi_sio sysfs latency_timer default 16 ms).
FTDI_LATENCY_S = 0.016
#: Payload bytes per FTDI full-speed USB packet (64 bytes minus 2 modem-status bytes, AN232B-04).
FTDI_PACKET_PAYLOAD = 62


@dataclass(frozen=True, slots=True)
class Delivery:
    """One chunk reaching the host: delivery time (s), the bytes, and the ground-truth rows it completes.

    ``truth_lo:truth_hi`` indexes :attr:`IdealLink.truth`: the replies whose last byte is in this chunk (an
    empty range when the link does not record).
    """

    t: float
    data: bytes
    truth_lo: int = 0
    truth_hi: int = 0


@dataclass(frozen=True, slots=True)
class GroundTruth:
    """Exact timing of one reply: emitted by the chip, last byte off the wire, delivered to the host (s)."""

    emit_s: float
    wire_end_s: float
    deliver_s: float
    frame: bytes


class IdealLink:
    """Replies leave at line rate, back to back; each is delivered when its last byte is off the wire."""

    def __init__(self, record: bool = False) -> None:
        self._busy_until = 0.0
        self._queue: deque[Delivery] = deque()
        self.record = record
        self.truth: list[GroundTruth] = []

    def push(self, emit_s: float, data: bytes, baud: float) -> None:
        """Queue a reply emitted at ``emit_s`` (non-decreasing) on a wire running at ``baud``."""
        start = max(emit_s, self._busy_until)
        end = start + len(data) * BITS_PER_BYTE / baud
        self._busy_until = end
        self._deliver(emit_s, end, data)

    def _deliver(self, emit_s: float, end: float, data: bytes) -> None:
        if self.record:
            self.truth.append(GroundTruth(emit_s, end, end, data))
            n = len(self.truth)
            self._queue.append(Delivery(end, data, n - 1, n))
        else:
            self._queue.append(Delivery(end, data))

    def pop_ready(self, t: float) -> list[Delivery]:
        """Chunks delivered at or before ``t``."""
        q = self._queue
        out = []
        while q and q[0].t <= t:
            out.append(q.popleft())
        return out

    def next_delivery(self) -> float:
        """Time of the next pending delivery (s), or inf."""
        return self._queue[0].t if self._queue else math.inf

    def clear(self) -> None:
        """Drop everything in flight (disconnect)."""
        self._queue.clear()


class FtdiLink(IdealLink):
    """Wire at line rate into an FTDI-like buffer flushed on a latency-timer grid or when a packet fills."""

    def __init__(
        self, latency_s: float = FTDI_LATENCY_S, packet: int = FTDI_PACKET_PAYLOAD, record: bool = False
    ) -> None:
        super().__init__(record)
        self.latency_s = latency_s
        self.packet = packet
        self._last_flush = 0.0
        self._buf = bytearray()
        self._buf_first = 0.0
        self._pending_truth: list[tuple[float, float, bytes]] = []

    def _flush_time(self) -> float:
        """Next tick of the latency timer (which restarts at every flush) at or after the first held byte."""
        k = max(1, math.ceil((self._buf_first - self._last_flush) / self.latency_s - 1e-12))
        return self._last_flush + k * self.latency_s

    def _flush(self, t: float) -> None:
        lo = len(self.truth)
        if self.record:
            for emit_s, end, frame in self._pending_truth:
                self.truth.append(GroundTruth(emit_s, end, t, frame))
        self._queue.append(Delivery(t, bytes(self._buf), lo, len(self.truth)))
        self._pending_truth.clear()
        self._buf.clear()
        self._last_flush = t

    def _settle(self, t: float) -> None:
        """Fire the latency-timer flush if it falls at or before ``t``."""
        if self._buf and self._flush_time() <= t:
            self._flush(self._flush_time())

    def push(self, emit_s: float, data: bytes, baud: float) -> None:
        start = max(emit_s, self._busy_until)
        byte_s = BITS_PER_BYTE / baud
        end = start + len(data) * byte_s
        self._busy_until = end
        last = len(data) - 1
        for k in range(len(data)):
            arrive = start + (k + 1) * byte_s
            self._settle(arrive)
            if not self._buf:
                self._buf_first = arrive
            self._buf.append(data[k])
            if k == last:
                self._pending_truth.append((emit_s, end, data))
            if len(self._buf) >= self.packet:
                self._flush(arrive)

    def pop_ready(self, t: float) -> list[Delivery]:
        self._settle(t)
        return super().pop_ready(t)

    def next_delivery(self) -> float:
        nxt = super().next_delivery()
        if self._buf:
            nxt = min(nxt, self._flush_time())
        return nxt

    def clear(self) -> None:
        super().clear()
        self._buf.clear()
        self._pending_truth.clear()


def make_link(kind: str, latency_s: float = FTDI_LATENCY_S, record: bool = False) -> IdealLink:
    """``"ideal"`` or ``"ftdi"``."""
    if kind == "ideal":
        return IdealLink(record)
    if kind == "ftdi":
        return FtdiLink(latency_s, record=record)
    raise ValueError(f"link must be 'ideal' or 'ftdi', got {kind!r}")
