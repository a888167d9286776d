"""A board's reads -> Arrow event batches on the pipeline: keep each read with the setpoint in force, decode
them together through the hot path (:class:`drivers.read_decoder.ReadDecoder`), publish one batch.

The supervisor calls :meth:`EventPublisher.keep` per transport read and :meth:`EventPublisher.publish` every
``batch_interval_s`` (and early, when :data:`MAX_PENDING_BYTES` are pending); the columns are those of
docs/recording-format.md. Link counters (:class:`LinkCounters`) are kept across sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from daemon.events import Pipeline, make_event_batch
from daemon.plan_summary import PointAccumulator
from daemon.safety import Setpoint
from daemon.state import BoardState
from drivers.read_decoder import ReadDecoder
from drivers.share import JobTable
from drivers.transport.base import ReadBatch

#: Decode and publish early when this many received bytes are pending (~23,800 replies; bounds memory).
MAX_PENDING_BYTES = 262_144
#: Setpoint column values before anything was applied (after a reconnect, until the first write).
NO_SETPOINT = Setpoint(0.0, 0.0, 0.0)


@dataclass(slots=True)
class LinkCounters:
    """Counters kept across reconnects."""

    reads: int = 0
    bytes: int = 0
    nonces: int = 0
    register_replies: int = 0
    crc_errors: int = 0
    dropped_bytes: int = 0
    published_rows: int = 0
    bring_ups: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class EventPublisher:
    """One board's reads -> event batches (see the module docstring).

    ``valid_scale``: a nonce is valid when its share difficulty >= ticket difficulty * ``valid_scale`` (the
    emulator's difficulty scale; 1 on hardware). ``windows``: the open point windows (shared with the
    telemetry loop), each told about every published nonce.
    """

    def __init__(
        self,
        name: str,
        chips: int,
        pipeline: Pipeline,
        state: BoardState,
        jobs: JobTable,
        counters: LinkCounters,
        windows: list[PointAccumulator],
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        valid_scale: float = 1.0,
    ) -> None:
        self.name = name
        self.chips = chips
        self.pipeline = pipeline
        self.state = state
        self.jobs = jobs
        self.counters = counters
        self.windows = windows
        self.clock = clock
        self.valid_scale = valid_scale
        self.decoder = ReadDecoder(chips=chips)
        self.last_publish_ns = clock()
        self._pending: list[tuple[ReadBatch, int, Setpoint | None, int]] = []
        self._pending_bytes = 0
        self._crc_base = 0
        self._dropped_base = 0

    def new_stream(self) -> None:
        """A new session's byte stream starts: fresh decoder state (the old stream's counts are kept)."""
        self._crc_base = self.counters.crc_errors
        self._dropped_base = self.counters.dropped_bytes
        self.decoder = ReadDecoder(chips=self.chips)

    def keep(self, batch: ReadBatch, baud: int, setpoint: Setpoint | None, point: int) -> bool:
        """Keep one read with what was in force when it arrived; True when enough is pending to publish."""
        self._pending.append((batch, baud, setpoint, point))
        n = len(batch.data)
        self._pending_bytes += n
        self.counters.reads += 1
        self.counters.bytes += n
        return self._pending_bytes >= MAX_PENDING_BYTES

    def publish(self) -> None:
        """Decode what is pending into one event batch and publish it (inline; never blocks)."""
        self.last_publish_ns = self.clock()
        reads = self._pending[:]
        self._pending.clear()
        self._pending_bytes = 0
        if reads:
            self._publish(reads)
        self.sync_counters()

    def _publish(self, reads: list[tuple[ReadBatch, int, Setpoint | None, int]]) -> None:
        c = self.counters
        n_reg = self.decoder.register_replies
        dec = self.decoder.decode([r[0] for r in reads], [r[1] for r in reads], self.jobs)
        c.register_replies += self.decoder.register_replies - n_reg
        cols = dec.nonces
        if len(cols) == 0:
            return
        c.nonces += len(cols)
        ri = cols.read_index
        sps = [r[2] or NO_SETPOINT for r in reads]
        ticket = np.array([sp.ticket_diff for sp in sps], np.float64)[ri]
        valid = cols.share_diff >= ticket * self.valid_scale
        batch = make_event_batch(
            self.name,
            t_host_ns=cols.t_ns,
            t_ns=cols.t_ns,
            t_wire_ns=cols.t_wire_ns,
            read_pos=cols.read_pos,
            read_nonces=cols.read_nonces,
            chip=cols.chip,
            core=cols.core,
            small_core=cols.small_core,
            job_id=cols.job_id,
            nonce=cols.nonce,
            version_bits=cols.version_bits,
            share_diff=cols.share_diff,
            valid=valid,
            voltage_v=np.array([sp.voltage_v for sp in sps], np.float32)[ri],
            freq_mhz=np.array([sp.freq_mhz for sp in sps], np.float32)[ri],
            ticket_diff=ticket.astype(np.float32),
            read_id=cols.read_id,
            point=np.fromiter((r[3] for r in reads), np.int32, len(reads))[ri],
        )
        for acc in self.windows:
            acc.add_events(valid, ticket)
        c.published_rows += batch.num_rows
        self.pipeline.publish(batch, self.name)

    def sync_counters(self) -> None:
        """Copy the decoder's CRC and dropped-byte counts into the counters and the board's state."""
        c, dec = self.counters, self.decoder
        c.crc_errors = self._crc_base + dec.crc_errors
        c.dropped_bytes = self._dropped_base + dec.dropped_bytes
        self.state.crc_errors = c.crc_errors
        self.state.dropped_bytes = c.dropped_bytes
