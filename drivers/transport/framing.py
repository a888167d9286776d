"""Frame reader: transport read batches -> decoded frames with raw and serialization-corrected timestamps.

For a frame completed by a read that returned at ``t_host_ns``, the bytes that arrived *after* it in the same
read were still on the wire when the frame had already landed, so ``t_ns = t_host_ns - wire_time(after)`` at
the current baud (10 bits per byte, 8N1). ``read_id`` ties frames of one read together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from drivers.decoder import FrameDecoder
from drivers.frames import Frame
from drivers.transport.base import ReadBatch, Transport, TransportClosed, wire_time_ns


class StreamDecoder(Protocol):
    """What the reader needs from a decoder: ``feed(bytes) -> [(frame, stream end offset)]``."""

    def feed(self, data: bytes) -> list[tuple[Frame, int]]: ...


@dataclass(frozen=True, slots=True)
class TimedFrame:
    """A decoded frame with the raw read time, the corrected time (both monotonic ns) and the read id."""

    frame: Frame
    t_host_ns: int
    t_ns: int
    read_id: int


class FrameReader:
    """Decode everything a transport delivers; one instance per stream (it keeps the decoder state)."""

    def __init__(self, transport: Transport, decoder: StreamDecoder | None = None) -> None:
        self.transport = transport
        self.decoder: StreamDecoder = decoder if decoder is not None else FrameDecoder()
        self._stream_end = 0  # total bytes fed so far

    def process(self, batch: ReadBatch, baud: int | None = None) -> list[TimedFrame]:
        """Feed one read batch; return its frames with timestamps (``baud`` defaults to the transport's)."""
        rate = self.transport.baud if baud is None else baud
        decoded = self.decoder.feed(batch.data)
        self._stream_end += len(batch.data)
        end = self._stream_end
        t = batch.t_host_ns
        return [
            TimedFrame(frame, t, t - wire_time_ns(end - stop, rate), batch.read_id) for frame, stop in decoded
        ]

    async def read_frames(self) -> list[TimedFrame]:
        """Frames of the next read batch (possibly empty); raises :class:`TransportClosed` at the end."""
        return self.process(await self.transport.read())

    async def __aiter__(self) -> AsyncIterator[TimedFrame]:
        """Yield frames until the transport closes."""
        while True:
            try:
                frames = await self.read_frames()
            except TransportClosed:
                return
            for f in frames:
                yield f
