"""Vectorised incremental decoder for chip->host replies (the frame stage of the hot path,
:class:`drivers.read_decoder.ReadDecoder`), numpy over the whole buffer.

Gives exactly the frames :class:`drivers.decoder.FrameDecoder` gives on the same stream, fed in any chunking:

1. find every ``AA 55`` candidate with numpy and check its CRC5 column-wise (the byte CRC over bytes 2..end
   of a good reply leaves 0);
2. check the rare ``55 AA`` (host preamble) candidates one by one with the scalar codec, so that a valid host
   frame hidden in the stream is consumed (and returned) exactly as the scalar decoder does;
3. select non-overlapping valid candidates left to right: a candidate that starts at or after the furthest
   end of every earlier candidate is always taken (vectorised); only runs of overlapping candidates are
   resolved in a Python loop;
4. stop at the first candidate that is not complete yet and keep it (with everything after it) for the next
   feed; keep a last lone ``55``/``AA`` byte too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from drivers.crc import CRC5_INIT, CRC5_POLY, CRC5_TABLE_NP
from drivers.decoder import MAX_PENDING
from drivers.frames import Frame, NonceReply, RegisterReply, check_frame, decode, frame_length
from drivers.registers import REPLY_LEN_PLAIN, REPLY_LEN_ROLLING

_I64 = npt.NDArray[np.int64]
_EMPTY_I64: _I64 = np.zeros(0, dtype=np.int64)


@dataclass(slots=True)
class ReplyBatch:
    """Replies decoded from one feed, as parallel numpy arrays (one element per reply, stream order).

    ``end_offset``: stream offset (bytes since the decoder was made) just past each reply. ``value``: d0..d3
    read big-endian (the nonce for a nonce reply, the register value otherwise). ``b6``/``b7``: bytes 6 and 7
    (chip address / register for register replies; ``b7`` = job id | small core for nonces).
    ``version_bits``: v0 v1 big-endian (0 with 9-byte replies). ``is_nonce``: bit 7 of the last byte.
    ``host_frames``: any valid host->chip frames met in the stream, ``(frame, end_offset)``.
    """

    end_offset: npt.NDArray[np.int64]
    value: npt.NDArray[np.uint32]
    b6: npt.NDArray[np.uint8]
    b7: npt.NDArray[np.uint8]
    version_bits: npt.NDArray[np.uint16]
    is_nonce: npt.NDArray[np.bool_]
    host_frames: list[tuple[Frame, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.end_offset.size)

    @property
    def job_id(self) -> npt.NDArray[np.uint8]:
        """Job id of each reply (``b7 & 0xF8``; meaningful for nonces)."""
        return self.b7 & np.uint8(0xF8)

    @property
    def small_core(self) -> npt.NDArray[np.uint8]:
        """Small-core id of each reply (``b7 & 0x07``; meaningful for nonces)."""
        return self.b7 & np.uint8(0x07)

    @classmethod
    def empty(cls) -> ReplyBatch:
        return cls(
            _EMPTY_I64.copy(),
            np.zeros(0, np.uint32),
            np.zeros(0, np.uint8),
            np.zeros(0, np.uint8),
            np.zeros(0, np.uint16),
            np.zeros(0, np.bool_),
        )

    def frames(self) -> list[tuple[Frame, int]]:
        """All frames as codec dataclasses with their end offsets, host frames merged in stream order."""
        out: list[tuple[Frame, int]] = []
        for end, value, b6, b7, vb, nonce in zip(
            self.end_offset.tolist(),
            self.value.tolist(),
            self.b6.tolist(),
            self.b7.tolist(),
            self.version_bits.tolist(),
            self.is_nonce.tolist(),
        ):
            frame: Frame = NonceReply(value, b6, b7, vb) if nonce else RegisterReply(value, b6, b7)
            out.append((frame, end))
        if self.host_frames:
            out.extend(self.host_frames)
            out.sort(key=lambda fe: fe[1])
        return out


def crc_ok_windows(windows: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Per row of ``windows`` (k x reply_len, preamble included): True when the reply CRC5 residue is 0."""
    reg = np.full(windows.shape[0], CRC5_INIT << 3, dtype=np.uint8)
    for j in range(2, windows.shape[1]):
        reg = CRC5_TABLE_NP[reg ^ windows[:, j]]
    ok: npt.NDArray[np.bool_] = reg == 0
    return ok


def _greedy(starts: _I64, ends: _I64) -> npt.NDArray[np.bool_]:
    """Left-to-right non-overlapping selection over sorted ``starts`` (vectorised except overlap runs)."""
    k = starts.size
    if k == 0:
        return np.zeros(0, dtype=np.bool_)
    prev_max = np.empty(k, dtype=np.int64)
    prev_max[0] = -1
    np.maximum.accumulate(ends[:-1], out=prev_max[1:])
    clean = starts >= prev_max
    taken = clean.copy()
    tangled = np.flatnonzero(~clean)
    if tangled.size:
        # Only the few overlapping candidates are looked at one by one.
        cur_end = 0
        for i in tangled.tolist():
            if clean[i - 1]:
                cur_end = int(ends[i - 1])
            if int(starts[i]) >= cur_end:
                taken[i] = True
                cur_end = int(ends[i])
    return taken


@dataclass(slots=True)
class ReplyBatchDecoder:
    """Incremental vectorised decoder: ``feed(data) -> ReplyBatch``; never raises on bad input.

    Counters since creation: ``frames`` (replies and host frames returned), ``dropped_bytes`` (bytes consumed
    outside returned frames), ``crc_errors`` (candidate frames reached by the scan whose CRC or shape was
    wrong; equals ``FrameDecoder.stats.bad_frames``), ``bytes_in``.
    """

    reply_len: int = REPLY_LEN_ROLLING
    frames: int = 0
    dropped_bytes: int = 0
    crc_errors: int = 0
    bytes_in: int = 0
    _pending: bytes = b""
    _offset: int = 0  # stream offset of _pending[0]

    def __post_init__(self) -> None:
        if self.reply_len not in (REPLY_LEN_ROLLING, REPLY_LEN_PLAIN):
            raise ValueError(f"reply_len must be 9 or 11, got {self.reply_len}")

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._pending)

    def flush(self) -> int:
        """Drop whatever is pending (end of stream); returns the number of bytes dropped."""
        n = len(self._pending)
        self.dropped_bytes += n
        self._offset += n
        self._pending = b""
        return n

    def feed(self, data: bytes | bytearray | memoryview) -> ReplyBatch:
        """Add bytes; return the replies (and any host frames) completed by them."""
        self.bytes_in += len(data)
        buf = self._pending + bytes(data) if self._pending else bytes(data)
        n = len(buf)
        if n == 0:
            return ReplyBatch.empty()
        arr = np.frombuffer(buf, dtype=np.uint8)
        rl = self.reply_len

        # Reply candidates (AA 55): complete ones get a CRC check, the rest are "incomplete" stops.
        is_55, is_aa = arr == 0x55, arr == 0xAA
        aa = np.flatnonzero(is_aa[:-1] & is_55[1:]).astype(np.int64, copy=False)
        last_start = int(np.searchsorted(aa, n - rl, side="right"))
        complete = aa[:last_start]
        incomplete = aa[last_start:].tolist()
        if complete.size:
            windows = np.lib.stride_tricks.sliding_window_view(arr, rl)[complete]
            ok = crc_ok_windows(windows)
        else:
            windows = np.zeros((0, rl), dtype=np.uint8)
            ok = np.zeros(0, dtype=np.bool_)

        # Host candidates (55 AA): rare on a chip->host line; checked with the scalar codec.
        host_pos = np.flatnonzero(is_55[:-1] & is_aa[1:])
        host_valid: list[tuple[int, int]] = []  # (start, length)
        host_bad: list[int] = []
        for s in host_pos.tolist():
            ln = frame_length(buf, s, rl) if n - s >= 4 else 0
            if ln == 0 or s + ln > n:
                incomplete.append(s)
            elif ln < 0 or check_frame(buf[s : s + ln], rl) is not None:
                host_bad.append(s)
            else:
                host_valid.append((s, ln))

        # Greedy selection over every valid candidate (replies and host frames), in stream order.
        valid_idx = np.flatnonzero(ok)
        starts = complete[valid_idx]
        kinds = np.zeros(starts.size, dtype=np.int64)  # 0 reply, 1 host
        lens = np.full(starts.size, rl, dtype=np.int64)
        if host_valid:
            hs = np.array([h[0] for h in host_valid], dtype=np.int64)
            hl = np.array([h[1] for h in host_valid], dtype=np.int64)
            starts = np.concatenate([starts, hs])
            lens = np.concatenate([lens, hl])
            kinds = np.concatenate([kinds, np.ones(hs.size, dtype=np.int64)])
            order = np.argsort(starts, kind="stable")
            starts, lens, kinds = starts[order], lens[order], kinds[order]
            src = np.concatenate([valid_idx, np.arange(hs.size)])[order]
        else:
            src = valid_idx
        ends = starts + lens
        taken = _greedy(starts, ends)
        sel_starts, sel_ends = starts[taken], ends[taken]

        # Stop at the first incomplete candidate not inside a taken frame.
        stop = n
        if incomplete:
            inc = np.sort(np.array(incomplete, dtype=np.int64))
            uncovered = inc[~_covered(sel_starts, sel_ends, inc)]
            if uncovered.size:
                stop = int(uncovered[0])
        if stop == n and arr[-1] in (0x55, 0xAA) and not (sel_ends.size and sel_ends[-1] == n):
            stop = n - 1
        keep = sel_starts < stop
        taken_idx = np.flatnonzero(taken)[keep]
        sel_starts, sel_ends = sel_starts[keep], sel_ends[keep]

        # Failed candidates the scalar scan would have reached (not inside a taken frame, before the stop).
        bad = complete[~ok]
        if host_bad:
            bad = np.concatenate([bad, np.array(host_bad, dtype=np.int64)])
        if bad.size:
            bad = bad[bad < stop]
            self.crc_errors += int(np.count_nonzero(~_covered(sel_starts, sel_ends, bad)))

        if not host_valid and taken_idx.size == complete.size:
            rep, w = taken_idx, windows  # common case: every candidate was a good reply and is returned
        else:
            rep = taken_idx[kinds[taken_idx] == 0]
            w = windows[src[rep]]
        base = self._offset
        end_offset = (starts[rep] + rl + base).astype(np.int64)
        batch = _batch_from_windows(w, end_offset, rl)
        host_sel = taken_idx[kinds[taken_idx] == 1]
        for i in host_sel.tolist():
            s, ln = int(starts[i]), int(lens[i])
            frame, _ = decode(buf, s, rl)
            if frame is not None:
                batch.host_frames.append((frame, base + s + ln))

        consumed_frames = int((sel_ends - sel_starts).sum())
        self.frames += int(sel_starts.size)
        self.dropped_bytes += stop - consumed_frames
        if n - stop > MAX_PENDING:
            self.dropped_bytes += n - stop - MAX_PENDING
            stop = n - MAX_PENDING
        self._pending = buf[stop:]
        self._offset += stop
        return batch


def _covered(sel_starts: _I64, sel_ends: _I64, pos: _I64) -> npt.NDArray[np.bool_]:
    """For each position, True when it lies strictly inside (after the start of) a selected frame."""
    if sel_starts.size == 0 or pos.size == 0:
        return np.zeros(pos.size, dtype=np.bool_)
    j = np.searchsorted(sel_starts, pos, side="left") - 1
    inside = (j >= 0) & (sel_ends[np.maximum(j, 0)] > pos)
    covered: npt.NDArray[np.bool_] = inside
    return covered


def _batch_from_windows(w: npt.NDArray[np.uint8], end_offset: _I64, rl: int) -> ReplyBatch:
    """Decode reply windows (k x rl, preamble included) into a :class:`ReplyBatch`."""
    value = np.ascontiguousarray(w[:, 2:6]).view(">u4").ravel()
    if rl == REPLY_LEN_ROLLING:
        vb = np.ascontiguousarray(w[:, 8:10]).view(">u2").ravel().astype(np.uint16)
    else:
        vb = np.zeros(w.shape[0], dtype=np.uint16)
    return ReplyBatch(
        end_offset=end_offset,
        value=value.astype(np.uint32),
        b6=w[:, 6].copy(),
        b7=w[:, 7].copy(),
        version_bits=vb,
        is_nonce=(w[:, rl - 1] & 0x80) != 0,
    )


def encode_replies(
    value: npt.ArrayLike,
    b6: npt.ArrayLike,
    b7: npt.ArrayLike,
    version_bits: npt.ArrayLike = 0,
    is_nonce: npt.ArrayLike = True,
    reply_len: int = REPLY_LEN_ROLLING,
) -> npt.NDArray[np.uint8]:
    """Vectorised chip->host reply encoder (k x reply_len bytes; ``.tobytes()`` gives the stream).

    Byte for byte what :meth:`NonceReply.encode` / :meth:`RegisterReply.encode` give; for emulators and
    benchmarks that need millions of replies.
    """
    if reply_len not in (REPLY_LEN_ROLLING, REPLY_LEN_PLAIN):
        raise ValueError(f"reply_len must be 9 or 11, got {reply_len}")
    values = np.asarray(value, dtype=np.uint32).ravel()
    k = values.size
    w = np.zeros((k, reply_len), dtype=np.uint8)
    w[:, 0], w[:, 1] = 0xAA, 0x55
    w[:, 2:6] = values.astype(">u4").view(np.uint8).reshape(k, 4)
    w[:, 6] = np.broadcast_to(np.asarray(b6, dtype=np.uint8), k)
    w[:, 7] = np.broadcast_to(np.asarray(b7, dtype=np.uint8), k)
    if reply_len == REPLY_LEN_ROLLING:
        vb = np.broadcast_to(np.asarray(version_bits, dtype=np.uint16), k)
        w[:, 8:10] = vb.astype(">u2").view(np.uint8).reshape(k, 2)
    top = np.where(np.broadcast_to(np.asarray(is_nonce, dtype=np.bool_), k), 0x80, 0x00).astype(np.uint8)
    reg = np.full(k, CRC5_INIT << 3, dtype=np.uint8)
    for j in range(2, reply_len - 1):
        reg = CRC5_TABLE_NP[reg ^ w[:, j]]
    # Fold the top 3 bits of the last byte bit by bit (the CRC covers only those 3 bits of it).
    crc = (reg >> 3).astype(np.int64)
    for bit in (7, 6, 5):
        fb = ((crc >> 4) & 1) ^ ((top.astype(np.int64) >> bit) & 1)
        crc = ((crc << 1) & 0x1F) ^ (fb * CRC5_POLY)
    w[:, reply_len - 1] = top | crc.astype(np.uint8)
    return w
