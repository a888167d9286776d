"""Synthetic event batches at one held operating point (1.2 V, 485 MHz, ticket 256), for analyser tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from daemon.events import make_event_batch


def held_point_batch(
    board: str,
    t_host_ns: np.ndarray,
    read_id: np.ndarray,
    *,
    point: int,
    t_wire_ns: np.ndarray | None = None,
) -> pa.RecordBatch:
    """Events read at ``t_host_ns`` (also ``t_ns``, format 2) in reads ``read_id``; all valid, chip 0."""
    n = len(t_host_ns)
    extra = {} if t_wire_ns is None else {"t_wire_ns": t_wire_ns}
    return make_event_batch(
        board,
        t_host_ns=t_host_ns,
        t_ns=t_host_ns,
        chip=np.zeros(n, np.int16),
        core=np.zeros(n, np.int16),
        small_core=np.zeros(n, np.int8),
        job_id=np.zeros(n, np.uint8),
        nonce=np.arange(n, dtype=np.uint32),
        version_bits=np.zeros(n, np.uint16),
        share_diff=np.full(n, 512.0),
        valid=np.ones(n, bool),
        voltage_v=np.full(n, 1.2),
        freq_mhz=np.full(n, 485.0),
        ticket_diff=np.full(n, 256.0),
        read_id=read_id,
        point=np.full(n, point, np.int32),
        **extra,
    )
