"""What the event time columns mean, the read-structure columns, and reading recordings of older formats.

Format 2 (docs/recording-format.md): ``t_ns`` is the raw host read time (equal to ``t_host_ns``), what the
host actually knows; the serialization-corrected estimate lives apart in ``t_wire_ns``; ``read_pos`` and
``read_nonces`` give each event's position among the nonce frames of its read and their number. Format 1
(before ``t_wire_ns``) stored the corrected estimate in ``t_ns``; :func:`upgrade_events` reads it as format 2:
``t_wire_ns`` = the old ``t_ns``, ``t_ns`` = ``t_host_ns``, and the read structure rebuilt from the runs of
equal (``board``, ``read_id``) rows (each read's frames are consecutive rows of one batch).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import pyarrow as pa

from daemon.events import EVENT_SCHEMA
from drivers.read_decoder import read_structure

#: Recording format written by this version (``meta.json`` ``format``; absent in format 1 recordings).
FORMAT_VERSION = 2
#: Columns added by format 2; a format 1 batch has every other column of :data:`EVENT_SCHEMA`.
FORMAT2_COLUMNS = ("t_wire_ns", "read_pos", "read_nonces")
LEGACY_NAMES = tuple(f.name for f in EVENT_SCHEMA if f.name not in FORMAT2_COLUMNS)

T = TypeVar("T", pa.RecordBatch, pa.Table)


def _runs_key(board: pa.Array | pa.ChunkedArray, read_id: np.ndarray) -> np.ndarray:
    """A key whose consecutive equal runs are the reads: the read id, made unique per board change."""
    b = board.combine_chunks() if isinstance(board, pa.ChunkedArray) else board
    codes = np.asarray(b.indices if isinstance(b, pa.DictionaryArray) else b.dictionary_encode().indices)
    change = np.concatenate(([0], np.cumsum(codes[1:] != codes[:-1]))).astype(np.int64)
    key: np.ndarray = read_id.astype(np.int64) * 2 + (change & 1)  # a board change always breaks the run
    return key


def upgrade_events(data: T) -> T:
    """``data`` (a record batch or a table of events) in :data:`EVENT_SCHEMA` (format 2).

    Format 2 is returned as is; format 1 is converted as the module docstring says. Raises ``ValueError``
    for any other column set.
    """
    names = data.schema.names
    if data.schema.equals(EVENT_SCHEMA):
        return data
    if tuple(names) != LEGACY_NAMES:
        missing = sorted(set(EVENT_SCHEMA.names) - set(names))
        extra = sorted(set(names) - set(EVENT_SCHEMA.names))
        raise ValueError(f"not an event schema of format 1 or 2 (missing {missing}, unknown {extra})")
    wire = data.column("t_ns")
    rid = np.asarray(data.column("read_id"), dtype=np.int64)
    pos, count = read_structure(_runs_key(data.column("board"), rid))
    cols = {name: data.column(name) for name in names}
    cols["t_ns"] = data.column("t_host_ns")
    cols["t_wire_ns"] = wire
    cols["read_pos"] = pa.array(pos, pa.int32())
    cols["read_nonces"] = pa.array(count, pa.int32())
    arrays = [cols[f.name] for f in EVENT_SCHEMA]
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(arrays, schema=EVENT_SCHEMA)
    return pa.Table.from_arrays(arrays, schema=EVENT_SCHEMA)
