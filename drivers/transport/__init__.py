"""Async byte transports (serial/pty, in-process loopback, a reader thread per port) and reconnect."""

from drivers.transport.base import (
    BITS_PER_BYTE,
    ReadBatch,
    ResetLine,
    Transport,
    TransportClosed,
    TransportError,
    wire_time_ns,
)
from drivers.transport.loopback import LoopbackTransport, loopback_pair
from drivers.transport.reconnect import Backoff, LinkState, Reconnector, connect_with_backoff
from drivers.transport.serial_port import SerialTransport

__all__ = [
    "BITS_PER_BYTE",
    "Backoff",
    "LinkState",
    "LoopbackTransport",
    "ReadBatch",
    "Reconnector",
    "ResetLine",
    "SerialTransport",
    "Transport",
    "TransportClosed",
    "TransportError",
    "connect_with_backoff",
    "loopback_pair",
    "wire_time_ns",
]
