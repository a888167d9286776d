"""The hot path, pure: transport reads -> numpy columns of decoded replies, one call per group of reads.

:class:`ReadDecoder` is the only place a nonce gets its timestamps, its bit fields and its share check
(docs/recording-format.md, docs/protocol.md §2-3). No I/O, never raises on garbage (bad bytes are counted):

1. the reads' bytes are joined and fed to :class:`drivers.reply_batch.ReplyBatchDecoder` (state carried
   across calls: a frame split over two calls is completed by the second);
2. each frame belongs to the read that delivered its last byte (``read_index``): ``t_ns`` is that read's
   raw time (``t_host_ns``), ``read_id`` its id, ``read_pos`` / ``read_nonces`` the frame's position among
   the read's nonce frames and their number (register replies are not counted);
3. ``t_wire_ns``, a separate estimate: the read time minus the wire time of the bytes after the frame in
   that read at the read's baud (10 bits a byte), at most :data:`MAX_CORRECTION_NS` earlier, and never
   earlier than the previous read's time (the frame was not complete then);
4. nonce bit fields (ESP-Miner order): chip = ((n >> 17) & 0xFF) // (256 // chips), core = (n >> 25) &
   0x7F, job id = ``b7 & 0xF8``, small core = ``b7 & 0x07``;
5. share difficulty per nonce against a :class:`drivers.share.JobTable` (0 where the job is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from drivers.registers import REPLY_LEN_ROLLING
from drivers.reply_batch import ReplyBatchDecoder
from drivers.share import JobTable
from drivers.transport.base import BITS_PER_BYTE, ReadBatch

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

#: Cap on the serialization correction of ``t_wire_ns`` (ns): 1 ms, i.e. 390 bytes at 3.125 Mbaud or ~11
#: bytes at the 115,200 reset baud. Bytes that arrive together (an FTDI latency-timer flush, a late read) did
#: not necessarily stream behind the frame at line rate, so a long tail is no evidence of an early frame.
MAX_CORRECTION_NS = 1_000_000
_NO_FLOOR = np.iinfo(np.int64).min


@dataclass(frozen=True, slots=True)
class NonceColumns:
    """The nonce replies of one :meth:`ReadDecoder.decode` call, one element each, in stream order.

    ``read_index``: index of the delivering read in the call's ``reads`` (to attach per-read context such as
    the setpoint in force). Times in ns on the transport's clock.
    """

    read_index: I64
    t_ns: I64
    t_wire_ns: I64
    read_id: I64
    read_pos: I32
    read_nonces: I32
    nonce: npt.NDArray[np.uint32]
    b6: npt.NDArray[np.uint8]
    b7: npt.NDArray[np.uint8]
    version_bits: npt.NDArray[np.uint16]
    job_id: npt.NDArray[np.uint8]
    small_core: npt.NDArray[np.int8]
    chip: npt.NDArray[np.int16]
    core: npt.NDArray[np.int16]
    share_diff: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return int(self.nonce.size)


@dataclass(frozen=True, slots=True)
class RegisterColumns:
    """Register replies of one call: delivering read, raw time, value, chip address (b6), register (b7)."""

    read_index: I64
    t_ns: I64
    value: npt.NDArray[np.uint32]
    chip_addr: npt.NDArray[np.uint8]
    reg: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.value.size)


@dataclass(frozen=True, slots=True)
class DecodedReads:
    """What one :meth:`ReadDecoder.decode` call found (host frames echoed on the line are dropped)."""

    nonces: NonceColumns
    registers: RegisterColumns


def read_structure(read_index: npt.ArrayLike) -> tuple[I32, I32]:
    """(position in its read, frames in its read) per frame, both int32, from each frame's read index.

    ``read_index`` is non-decreasing within one decode (frames come in stream order) or, for a recording,
    any key whose runs of equal consecutive values are the reads. Position counts from 0.
    """
    idx = np.asarray(read_index)
    n = len(idx)
    if n == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    start = np.flatnonzero(np.concatenate(([True], idx[1:] != idx[:-1])))
    lengths = np.diff(np.append(start, n))
    run = np.repeat(np.arange(len(start)), lengths)
    pos = (np.arange(n) - start[run]).astype(np.int32)
    return pos, lengths[run].astype(np.int32)


def wire_time_estimate(t_read_ns: I64, t_prev_read_ns: I64, bytes_after: I64, baud: I64) -> I64:
    """``t_wire_ns``: when each frame's last byte left the wire (ns), estimated from its read's time.

    Subtracts the wire time of the ``bytes_after`` the frame in the same read at ``baud`` (10 bits a byte),
    at most :data:`MAX_CORRECTION_NS`, and never goes before ``t_prev_read_ns`` (the previous read on the
    transport returned without the frame) nor after ``t_read_ns``. All arrays int64, elementwise.
    """
    corr = np.minimum(bytes_after * (BITS_PER_BYTE * 1_000_000_000) // baud, MAX_CORRECTION_NS)
    out: I64 = np.minimum(t_read_ns, np.maximum(t_read_ns - corr, t_prev_read_ns))
    return out


def nonce_chip_core(nonce: npt.NDArray[np.uint32], chips: int) -> tuple[npt.NDArray[np.int16], ...]:
    """(chip index, core id) per nonce, ESP-Miner bit order (docs/protocol.md §2), both int16."""
    per = np.uint32(256 // max(1, chips))
    chip = (((nonce >> np.uint32(17)) & np.uint32(0xFF)) // per).astype(np.int16)
    core = ((nonce >> np.uint32(25)) & np.uint32(0x7F)).astype(np.int16)
    return chip, core


class ReadDecoder:
    """Reads -> :class:`DecodedReads`; one instance per byte stream (a new session gets a new one).

    ``chips``: chain length for the chip index. Counters since creation: ``crc_errors``, ``dropped_bytes``
    (from the frame decoder), ``nonces`` and ``register_replies`` returned.
    """

    def __init__(self, *, chips: int = 1, reply_len: int = REPLY_LEN_ROLLING) -> None:
        self.chips = chips
        self._decoder = ReplyBatchDecoder(reply_len)
        self._stream_end = 0  # bytes fed so far
        self._prev_read_ns = _NO_FLOOR  # time of the last read decoded (floor of t_wire_ns)
        self.nonces = 0
        self.register_replies = 0

    @property
    def crc_errors(self) -> int:
        return self._decoder.crc_errors

    @property
    def dropped_bytes(self) -> int:
        return self._decoder.dropped_bytes

    def decode(
        self, reads: Sequence[ReadBatch], baud: int | Sequence[int], jobs: JobTable | None = None
    ) -> DecodedReads:
        """Decode ``reads`` (in stream order) read at ``baud`` (one rate, or one per read).

        ``jobs``: the jobs the chips hold, for ``share_diff`` (all 0 without a table).
        """
        k = len(reads)
        sizes = np.fromiter((len(r.data) for r in reads), np.int64, k)
        ends = self._stream_end + np.cumsum(sizes)
        rb = self._decoder.feed(b"".join(r.data for r in reads))
        if k:
            self._stream_end = int(ends[-1])
        t_read = np.fromiter((r.t_host_ns for r in reads), np.int64, k)
        prev = np.empty_like(t_read)  # the previous read's time, per read
        if k:
            prev[0] = self._prev_read_ns
            prev[1:] = t_read[:-1]
            self._prev_read_ns = int(t_read[-1])
        ri_all = np.searchsorted(ends, rb.end_offset, side="left")
        m = rb.is_nonce
        reg = ~m
        ri = ri_all[m]
        fe = rb.end_offset[m]
        baud_r = np.broadcast_to(np.asarray(baud, np.int64), (k,))
        nonce, b7, vbits = rb.value[m], rb.b7[m], rb.version_bits[m]
        job_id = b7 & np.uint8(0xF8)
        t_ns = t_read[ri]
        pos, per_read = read_structure(ri)
        chip, core = nonce_chip_core(nonce, self.chips)
        share = jobs.difficulties(job_id, nonce, vbits) if jobs is not None else np.zeros(nonce.size)
        nonces = NonceColumns(
            read_index=ri,
            t_ns=t_ns,
            t_wire_ns=wire_time_estimate(t_ns, prev[ri], ends[ri] - fe, baud_r[ri]),
            read_id=np.fromiter((r.read_id for r in reads), np.int64, k)[ri],
            read_pos=pos,
            read_nonces=per_read,
            nonce=nonce,
            b6=rb.b6[m],
            b7=b7,
            version_bits=vbits,
            job_id=job_id,
            small_core=(b7 & np.uint8(0x07)).astype(np.int8),
            chip=chip,
            core=core,
            share_diff=share,
        )
        rri = ri_all[reg]
        registers = RegisterColumns(rri, t_read[rri], rb.value[reg], rb.b6[reg], rb.b7[reg])
        self.nonces += len(nonces)
        self.register_replies += len(registers)
        return DecodedReads(nonces, registers)
