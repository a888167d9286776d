"""``asicrc run --dry-run``: print what the bring-up and the first plan point would send, opening nothing.

One line per write, in order, for each configured board: the ASIC frames decoded like ``asicrc decode``
(docs/decode.md) and the bitaxe-raw control requests decoded into I2C transactions and GPIO levels, each with
its raw bytes; ``--json`` gives one JSON object per write instead. See :mod:`daemon.dry_run` and
:mod:`daemon.dry_run_records`.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from daemon.cli.decode_cmd import format_text
from daemon.cli.errors import RuntimeFailure
from daemon.config import Config
from daemon.dry_run import DryRun, DryRunError, dry_run
from daemon.dry_run_records import records
from daemon.exit_codes import EXIT_OK
from drivers.bitaxe_raw import PIN_ASIC_RESET


def _hex(b: bytes) -> str:
    return b.hex(" ")


def control_text(f: dict[str, Any]) -> str:
    """One line for :func:`daemon.dry_run_records.control_fields`."""
    op = f["op"]
    if op.startswith("i2c_") and "addr" in f:
        who = f"0x{f['addr']:02X} {f['part']}"
        data = bytes.fromhex(f.get("bytes", ""))
        if op == "i2c_write":
            reg = f" reg 0x{data[0]:02X}" if data else ""
            val = f" = {_hex(data[1:])}" if len(data) > 1 else ""
            return f"I2C write {who}{reg}{val}"
        if op == "i2c_read":
            return f"I2C read {who} {f['n']} byte(s)"
        reg = " ".join(f"0x{x:02X}" for x in data)
        return f"I2C read {who} reg {reg}, {f['n']} byte(s)"
    if op == "i2c_frequency":
        return f"I2C bus clock {f['hz']} Hz"
    if op == "gpio":
        if f["level"] is None:
            return f"GPIO {f['pin']} read"
        note = " (ASIC reset held)" if f["pin"] == PIN_ASIC_RESET and not f["level"] else ""
        note = note or (" (ASIC reset released)" if f["pin"] == PIN_ASIC_RESET else "")
        return f"GPIO {f['pin']} = {'high' if f['level'] else 'low'}{note}"
    return f"{op} {json.dumps({k: v for k, v in f.items() if k != 'op'})}"


def _line(r: dict[str, Any]) -> str:
    head = f"  {r['t_s']:9.3f} s  {r['port']:<7}"
    if r.get("kind") == "baud":
        return f"{head}  host UART -> {r['baud']} baud"
    if r.get("kind") == "control":
        return f"{head}  {control_text(r)}  [{_hex(bytes.fromhex(r['raw']))}]"
    if r.get("kind") == "frame":
        fr = r["frame"]
        text = format_text(fr).split(None, 3)[-1]  # without the offset, kind and CRC columns
        return f"{head}  {text}  [{_hex(bytes.fromhex(fr['raw']))}]"
    return f"{head}  bytes [{_hex(bytes.fromhex(r['raw']))}]"


def _header(run: DryRun) -> str:
    b = run.board
    ctrl = b.control_port or "none"
    return f"board {b.name} ({b.kind}, {b.chips} chip(s), data {b.data_port}, control {ctrl}):"


def print_dry_run(cfg: Config, as_json: bool) -> int:
    """Print the dry run of every configured board; :class:`RuntimeFailure` (exit 1) when a bring-up failed
    against the stand-in."""
    for name in ("daemon.supervisor", "drivers"):  # "board up" and chain progress lines would mislead here
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        runs = dry_run(cfg)
    except DryRunError as exc:
        raise RuntimeFailure(f"--dry-run: {exc}") from exc
    out = sys.stdout
    for run in runs:
        recs = records(run)
        if as_json:
            for r in recs:
                out.write(json.dumps(r) + "\n")
            continue
        out.write(_header(run) + "\n")
        out.write("  bring-up (what start-up and every reconnect send):\n")
        for i, r in enumerate(recs):
            if r["stage"] == "first_point" and (i == 0 or recs[i - 1]["stage"] == "bring_up"):
                sp = run.point
                assert sp is not None
                out.write(
                    f"  first point of plan {run.plan}: {sp.voltage_v:.3f} V {sp.freq_mhz:g} MHz ticket"
                    f" {sp.ticket_diff:g} -> {run.outcome}:\n"
                )
            out.write(_line(r) + "\n")
        if run.point is None:
            out.write("  no plan for this board: it stays at the floor above\n")
        elif not any(r["stage"] == "first_point" for r in recs):
            out.write(f"  first point of plan {run.plan}: {run.outcome}; nothing more is written\n")
    print(
        "dry run: nothing was opened; the answers came from the emulator's chain and bitaxe-raw parts "
        "(job frames and telemetry reads are not listed)",
        file=sys.stderr,
    )
    return EXIT_OK
