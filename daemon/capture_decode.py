"""Bytes of a serial or logic-analyser capture -> one JSON-ready record per BM1366 frame, both directions.

The protocol analyser's library (``asicrc decode``, ``asicrc run --dry-run``; docs/decode.md). Candidate
frames with the right shape but a wrong CRC are recorded with ``crc_ok`` false; everything else that is not a
frame is skipped and counted in a :class:`Summary`. A nonce reply that follows its job (same job id) gets its
share difficulty.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from drivers.frames import (
    Frame,
    JobFrame,
    NonceReply,
    RegisterReply,
    check_frame,
    decode,
    decode_unchecked,
    frame_length,
)
from drivers.registers import CHIP_PREAMBLE, HOST_PREAMBLE, REPLY_LEN_ROLLING, reg_name
from drivers.share import JobTable, NonceByteOrder, check_share, chip_index, core_id


@dataclass
class Summary:
    """What a decode run saw: frames by kind, CRC failures, skipped bytes."""

    kinds: Counter[str] = field(default_factory=Counter)
    crc_errors: int = 0
    garbage_bytes: int = 0
    total_bytes: int = 0

    def line(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "none"
        return (
            f"decoded {sum(self.kinds.values())} frames ({kinds}); {self.crc_errors} CRC errors; "
            f"{self.garbage_bytes} of {self.total_bytes} bytes skipped as garbage"
        )


def _hash_display(h: bytes) -> str:
    return h[::-1].hex()


def frame_fields(frame: Frame) -> dict[str, Any]:
    """JSON-ready fields of one frame (without the share check), ``kind`` first."""
    if isinstance(frame, NonceReply):
        return {
            "kind": "nonce",
            "job_id": frame.job_id,
            "small_core": frame.small_core,
            "nonce": frame.nonce_bytes.hex(),
            "version_bits": frame.version_bits,
            "b6": frame.b6,
        }
    if isinstance(frame, RegisterReply):
        return {
            "kind": "register",
            "chip_addr": frame.chip_addr,
            "reg": frame.reg,
            "reg_name": reg_name(frame.reg),
            "value": f"{frame.value:08x}",
        }
    if isinstance(frame, JobFrame):
        return {
            "kind": "job",
            "job_id": frame.job_id,
            "version": f"{frame.version:08x}",
            "nbits": f"{frame.nbits:08x}",
            "ntime": frame.ntime,
            "prev_block_hash": _hash_display(frame.prev_block_hash),
            "merkle_root": _hash_display(frame.merkle_root),
            "starting_nonce": frame.starting_nonce,
            "num_midstates": frame.num_midstates,
            "length_byte": frame.length_byte,
        }
    return {
        "kind": "command",
        "cmd": frame.cmd.name,
        "broadcast": frame.broadcast,
        "chip_addr": frame.chip_addr,
        "reg": frame.reg,
        "reg_name": reg_name(frame.reg),
        "value": None if frame.value is None else f"{frame.value:08x}",
    }


def iter_records(
    data: bytes,
    reply_len: int = REPLY_LEN_ROLLING,
    chips: int = 1,
    order: NonceByteOrder = NonceByteOrder.ESP_MINER,
    summary: Summary | None = None,
) -> Iterator[dict[str, Any]]:
    """One record per frame in ``data`` (both directions), in stream order; never raises on bad input.

    Follows :class:`drivers.decoder.FrameDecoder`: a rejected candidate skips one byte to resynchronise.
    Candidates with a good shape and a bad CRC are yielded too, with ``crc_ok`` false.
    """
    summary = summary if summary is not None else Summary()
    summary.total_bytes += len(data)
    jobs = JobTable()
    pos, n = 0, len(data)
    while pos < n:
        frame, consumed = decode(data, pos, reply_len)
        if consumed == 0:  # an incomplete frame at the end of the capture
            summary.garbage_bytes += n - pos
            break
        if frame is not None:
            record = _record(frame, data[pos : pos + consumed], pos, True, jobs, chips, order)
            summary.kinds[record["kind"]] += 1
            yield record
            pos += consumed
            continue
        if data[pos : pos + 2] in (HOST_PREAMBLE, CHIP_PREAMBLE):
            length = frame_length(data, pos, reply_len)
            raw = data[pos : pos + length] if length > 0 else b""
            if raw and len(raw) == length and "CRC" in (check_frame(raw, reply_len) or ""):
                summary.crc_errors += 1
                yield _record(decode_unchecked(raw), raw, pos, False, jobs, chips, order)
        summary.garbage_bytes += consumed
        pos += consumed


def _record(
    frame: Frame,
    raw: bytes,
    offset: int,
    crc_ok: bool,
    jobs: JobTable,
    chips: int,
    order: NonceByteOrder,
) -> dict[str, Any]:
    fields = frame_fields(frame)
    record: dict[str, Any] = {
        "kind": fields.pop("kind"),
        "crc_ok": crc_ok,
        "offset": offset,
        "length": len(raw),
    }
    record.update(fields)
    if isinstance(frame, JobFrame) and crc_ok:
        jobs.add(frame)
    elif isinstance(frame, NonceReply):
        job = jobs.get(frame.job_id) if crc_ok else None
        result = check_share(job, frame, chips, order) if job is not None else None
        record["core"] = core_id(frame.nonce, order)
        record["chip_index"] = chip_index(frame.nonce, chips, order)
        diff = None if result is None else result.difficulty
        record["share_difficulty"] = diff if diff is None or math.isfinite(diff) else None
        record["hash"] = None if result is None else result.hash_hex
    record["raw"] = raw.hex()
    return record
