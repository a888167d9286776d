"""``asicrc decode``: a BM1366 protocol analyser for hex strings and serial/logic-analyser captures.

    asicrc decode [HEX] [--file CAPTURE] [--json] [--reply-len 9|11] [--chips N]

Decodes both directions (host->chip ``55 AA``, chip->host ``AA 55``), one line per frame. Candidate frames
with the right shape but a wrong CRC are shown with ``crc_ok`` false; everything else that is not a frame is
skipped and counted. A nonce reply that follows its job (same job id) in the stream gets its share
difficulty. A summary goes to stderr; ``--json`` writes one JSON object per frame on stdout
(docs/decode.md). The decoding is :mod:`daemon.capture_decode`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from daemon.capture_decode import Summary, iter_records
from daemon.cli.errors import UsageError
from daemon.exit_codes import EXIT_OK
from drivers.registers import REPLY_LEN_PLAIN, REPLY_LEN_ROLLING
from drivers.share import NonceByteOrder

_HEX_SEPARATORS = re.compile(r"[\s:,_-]+")


class DecodeInputError(UsageError):
    """Input the user has to fix (bad hex, unreadable file); exit code 2."""


def parse_hex(text: str) -> bytes:
    """Bytes from hex text; spaces, colons, commas, dashes and ``0x`` prefixes are allowed between bytes."""
    cleaned = _HEX_SEPARATORS.sub("", re.sub(r"0[xX]", "", text))
    if not cleaned:
        raise DecodeInputError("no hex digits given")
    bad = re.search(r"[^0-9a-fA-F]", cleaned)
    if bad:
        raise DecodeInputError(f"not a hex digit: {bad.group()!r} in {text!r}")
    if len(cleaned) % 2:
        raise DecodeInputError(f"odd number of hex digits ({len(cleaned)}) in {text!r}")
    return bytes.fromhex(cleaned)


def format_text(record: dict[str, Any]) -> str:
    """One human-readable line for a record."""
    head = f"{record['offset']:>8}  {record['kind']:<8} {'ok ' if record['crc_ok'] else 'BAD'}"
    kind = record["kind"]
    if kind == "nonce":
        diff = record["share_difficulty"]
        share = "share ?" if diff is None else f"share {diff:.6g}"
        body = (
            f"job {record['job_id']:#04x} small_core {record['small_core']} core {record['core']} "
            f"nonce {record['nonce']} vbits {record['version_bits']:#06x} {share}"
        )
    elif kind == "register":
        reg = f"{record['reg_name']} ({record['reg']:#04x})"
        body = f"chip {record['chip_addr']:#04x} {reg} = 0x{record['value']}"
    elif kind == "job":
        body = (
            f"job {record['job_id']:#04x} version 0x{record['version']} nbits 0x{record['nbits']} "
            f"ntime {record['ntime']} prev {record['prev_block_hash'][:16]}.. "
            f"merkle {record['merkle_root'][:16]}.."
        )
    else:
        target = "all" if record["broadcast"] else f"chip {record['chip_addr']:#04x}"
        body = f"{record['cmd']} {target}"
        if record["cmd"] in ("WRITE_REGISTER", "READ_REGISTER"):
            body += f" {record['reg_name']} ({record['reg']:#04x})"
        if record["value"] is not None:
            body += f" = 0x{record['value']}"
    return f"{head}  {body}"


def _read_input(args: argparse.Namespace) -> bytes:
    if args.hex is not None and args.file is not None:
        raise DecodeInputError("give either HEX or --file, not both")
    if args.file is not None:
        if args.file == "-":
            return sys.stdin.buffer.read()
        try:
            return Path(args.file).read_bytes()
        except OSError as exc:
            raise DecodeInputError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.hex is not None:
        return parse_hex(args.hex)
    raise DecodeInputError("nothing to decode: give HEX or --file CAPTURE (--file - reads stdin)")


def run(args: argparse.Namespace) -> int:
    """Handler of ``asicrc decode``; returns the exit code."""
    data = _read_input(args)  # DecodeInputError: one line, exit 2
    order = NonceByteOrder.LITTLE_ENDIAN if args.byte_order == "little-endian" else NonceByteOrder.ESP_MINER
    summary = Summary()
    out = sys.stdout
    try:
        for record in iter_records(data, args.reply_len, args.chips, order, summary):
            out.write((json.dumps(record) if args.json else format_text(record)) + "\n")
        out.flush()
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    print(summary.line(), file=sys.stderr)
    return EXIT_OK


def _chips(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 256:
        raise argparse.ArgumentTypeError(f"chips must be 1..256, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``decode`` subcommand."""
    p = subparsers.add_parser(
        "decode",
        help="decode BM1366 frames from hex or a capture file (protocol analyser)",
        description="Decode BM1366 UART frames in both directions; one line (or JSON object) per frame.",
    )
    p.add_argument("hex", nargs="?", metavar="HEX", help="bytes as hex, e.g. '55 AA 52 05 00 00 0A'")
    p.add_argument("--file", metavar="CAPTURE", help="binary capture file ('-' reads stdin)")
    p.add_argument("--json", action="store_true", help="one JSON object per frame on stdout")
    p.add_argument(
        "--reply-len",
        type=int,
        choices=(REPLY_LEN_PLAIN, REPLY_LEN_ROLLING),
        default=REPLY_LEN_ROLLING,
        help="chip reply length: 11 with version rolling on (default), 9 without",
    )
    p.add_argument(
        "--chips", type=_chips, default=1, help="chips on the chain, for the chip index (default 1)"
    )
    p.add_argument(
        "--byte-order",
        choices=("esp-miner", "little-endian"),
        default="esp-miner",
        help="how core/chip ids are read from the nonce (default: ESP-Miner's big-endian reading)",
    )
    p.set_defaults(func=run)
