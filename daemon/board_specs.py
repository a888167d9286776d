"""How the daemon reaches each board: configured ports (with USB discovery) and in-process emulated boards,
each turned into a :class:`~daemon.board_control.BoardSpec` (config, data-port factory, control channel)."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from daemon.board_control import BoardControl, BoardSpec, NullControl, PartsControl, serial_factory
from daemon.config import DISCOVER, BoardConfig, SafetyLimits
from daemon.sim_boards import SIM_CHAIN_TIMING, SimBoard
from drivers.discovery import Candidate, list_candidates

log = logging.getLogger(__name__)


def configured_boards(
    boards: Sequence[BoardConfig],
    clock: Callable[[], int] = time.monotonic_ns,
    discover: Callable[[], list[Candidate]] = list_candidates,
) -> list[BoardSpec]:
    """One spec per configured board; ``discover`` ports are taken from USB candidates in order (a board
    left without one is logged and skipped). Gamma/Ultra boards with a control port get
    :class:`PartsControl`."""
    out: list[BoardSpec] = []
    found: list[Candidate] | None = None
    for b in boards:
        data, ctrl = b.data_port, b.control_port
        if data == DISCOVER:
            if found is None:
                found = discover()
                log.info("discovery: %d candidate board(s) on USB", len(found))
            if not found:
                log.error("board %s: no board found on USB (bitaxe-raw c0de:cafe, FTDI, CP210x)", b.name)
                continue
            c = found.pop(0)
            data = c.data
            if ctrl in ("", DISCOVER) and c.control:
                ctrl = c.control
            log.info("board %s: discovered %s %s: data %s, control %s", b.name, c.kind, c.usb_id, data, ctrl)
            if c.latency_timer_ms is not None and c.latency_timer_ms > 1:
                log.warning(
                    "board %s: FTDI latency timer %d ms quantises timestamps", b.name, c.latency_timer_ms
                )
            b = dataclasses.replace(b, data_port=data, control_port=ctrl)
        control: BoardControl = NullControl()
        if ctrl and ctrl != DISCOVER and b.kind in ("gamma", "ultra"):
            control = PartsControl(serial_factory(ctrl, clock), b.board_version or b.kind)
        out.append(BoardSpec(b, serial_factory(data, clock), control))
    return out


def sim_board_specs(
    sim_boards: Sequence[SimBoard],
    chips: int,
    safety: SafetyLimits,
    clock: Callable[[], int] = time.monotonic_ns,
) -> list[BoardSpec]:
    """Specs for emulated Gamma boards already running on their ptys (data and control links)."""
    out: list[BoardSpec] = []
    for sb in sim_boards:
        bc = BoardConfig(
            name=sb.name,
            kind="gamma",
            data_port=str(sb.data_link),
            control_port=str(sb.control_link),
            chips=chips,
            safety=safety,
        )
        log.info("emulated board %s: data %s, control %s", sb.name, sb.data_link, sb.control_link)
        control = PartsControl(serial_factory(str(sb.control_link), clock), "gamma")
        data = serial_factory(str(sb.data_link), clock)
        out.append(BoardSpec(bc, data, control, sb.valid_scale, SIM_CHAIN_TIMING))
    return out
