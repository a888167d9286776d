"""Async byte transports (serial/pty, in-process loopback), the timestamping frame reader, reconnect."""

from drivers.transport.base import (
    BITS_PER_BYTE,
    ReadBatch,
    ResetLine,
    Transport,
    TransportClosed,
    TransportError,
    wire_time_ns,
)
from drivers.transport.framing import (
    FrameReader,
    ReplyBatchReader,
    StreamDecoder,
    TimedFrame,
    TimedReplyBatch,
    VectorFrameDecoder,
    corrected_t_ns,
)
from drivers.transport.loopback import LoopbackTransport, loopback_pair
from drivers.transport.reconnect import Backoff, LinkState, Reconnector, connect_with_backoff
from drivers.transport.serial_port import SerialTransport

__all__ = [
    "BITS_PER_BYTE",
    "Backoff",
    "FrameReader",
    "LinkState",
    "LoopbackTransport",
    "ReadBatch",
    "Reconnector",
    "ReplyBatchReader",
    "ResetLine",
    "SerialTransport",
    "StreamDecoder",
    "TimedFrame",
    "TimedReplyBatch",
    "Transport",
    "TransportClosed",
    "TransportError",
    "VectorFrameDecoder",
    "connect_with_backoff",
    "corrected_t_ns",
    "loopback_pair",
    "wire_time_ns",
]
