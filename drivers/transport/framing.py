"""Frame readers: transport read batches -> decoded frames with raw and serialization-corrected timestamps.

For a frame completed by a read that returned at ``t_host_ns``, the bytes that arrived *after* it in the same
read were still on the wire when the frame had already landed, so ``t_ns = t_host_ns - wire_time(after)`` at
the current baud (10 bits per byte, 8N1). ``read_id`` ties frames of one read together.

:class:`FrameReader` yields codec dataclasses (decoded by :class:`VectorFrameDecoder` by default, or by
the scalar :class:`drivers.decoder.FrameDecoder`); :class:`ReplyBatchReader` is the hot path and keeps
replies as numpy columns (:class:`drivers.reply_batch.ReplyBatch`) with a vector of corrected times.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from drivers.frames import Frame
from drivers.registers import REPLY_LEN_ROLLING
from drivers.reply_batch import ReplyBatch, ReplyBatchDecoder
from drivers.transport.base import BITS_PER_BYTE, ReadBatch, Transport, TransportClosed, wire_time_ns


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
    """Decode everything a transport delivers; one instance per stream (it keeps the decoder state).

    The default decoder is the vectorised one (about twice the scalar ``FrameDecoder``'s rate over a
    pty, same frames); pass ``FrameDecoder()`` for the scalar reference.
    """

    def __init__(self, transport: Transport, decoder: StreamDecoder | None = None) -> None:
        self.transport = transport
        self.decoder: StreamDecoder = decoder if decoder is not None else VectorFrameDecoder()
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


class VectorFrameDecoder:
    """:class:`StreamDecoder` over the vectorised :class:`drivers.reply_batch.ReplyBatchDecoder`."""

    def __init__(self, reply_len: int = REPLY_LEN_ROLLING) -> None:
        self.inner = ReplyBatchDecoder(reply_len)

    def feed(self, data: bytes) -> list[tuple[Frame, int]]:
        return self.inner.feed(data).frames()


def corrected_t_ns(
    end_offsets: npt.NDArray[np.int64], stream_end: int, t_host_ns: int, baud: int
) -> npt.NDArray[np.int64]:
    """Vectorised ``t_host_ns - wire_time(stream_end - end_offset)`` (ns, 10 bits per byte)."""
    after = stream_end - end_offsets.astype(np.int64)
    return t_host_ns - (after * BITS_PER_BYTE * 1_000_000_000) // baud


@dataclass(frozen=True, slots=True)
class TimedReplyBatch:
    """Replies of one read as numpy columns, with the read's time, corrected times (ns) and read id."""

    replies: ReplyBatch
    t_host_ns: int
    t_ns: npt.NDArray[np.int64]
    read_id: int


class ReplyBatchReader:
    """The hot path: read batches -> :class:`TimedReplyBatch` (numpy columns, no per-frame objects)."""

    def __init__(self, transport: Transport, reply_len: int = REPLY_LEN_ROLLING) -> None:
        self.transport = transport
        self.decoder = ReplyBatchDecoder(reply_len)
        self._stream_end = 0

    def process(self, batch: ReadBatch, baud: int | None = None) -> TimedReplyBatch:
        """Decode one read batch (``baud`` defaults to the transport's current rate)."""
        rate = self.transport.baud if baud is None else baud
        replies = self.decoder.feed(batch.data)
        self._stream_end += len(batch.data)
        t_ns = corrected_t_ns(replies.end_offset, self._stream_end, batch.t_host_ns, rate)
        return TimedReplyBatch(replies, batch.t_host_ns, t_ns, batch.read_id)

    async def read_batch(self) -> TimedReplyBatch:
        """Replies of the next read (possibly empty); raises :class:`TransportClosed` at the end."""
        return self.process(await self.transport.read())
