"""Checks across keys: ordered limits, plans inside every board's envelope, MQTT topic levels, ``[live]``."""

from __future__ import annotations

import re
from pathlib import Path

from daemon.config.errors import ConfigError
from daemon.config.schema import BoardConfig, Config, MqttConfig, PlanConfig, SafetyLimits


def check_safety(path: str, s: SafetyLimits) -> None:
    if s.core_voltage_min_v > s.core_voltage_max_v:
        raise ConfigError(
            f"{path}.core_voltage_min_v",
            f"value {s.core_voltage_min_v} above core_voltage_max_v {s.core_voltage_max_v}",
        )
    if s.freq_min_mhz > s.freq_max_mhz:
        msg = f"value {s.freq_min_mhz} above freq_max_mhz {s.freq_max_mhz}"
        raise ConfigError(f"{path}.freq_min_mhz", msg)
    if s.input_voltage_min_v > s.input_voltage_max_v:
        raise ConfigError(
            f"{path}.input_voltage_min_v",
            f"value {s.input_voltage_min_v} above input_voltage_max_v {s.input_voltage_max_v}",
        )


def check_plan(path: str, p: PlanConfig, board_names: set[str]) -> None:
    if not p.name:
        raise ConfigError(f"{path}.name", "missing; every plan needs a name")
    for i, b in enumerate(p.boards):
        if b not in board_names and board_names:
            raise ConfigError(f"{path}.boards[{i}]", f"value {b!r} is not a configured board name")
    if p.kind == "sweep":
        grid = (p.voltage_v, p.freq_mhz, p.ticket_diff)
        if p.points and any(grid):
            raise ConfigError(f"{path}.points", "give points or the voltage_v/freq_mhz/ticket_diff lists")
        if not p.points and not all(grid):
            msg = "a sweep needs points or all of voltage_v, freq_mhz, ticket_diff"
            raise ConfigError(f"{path}.voltage_v", msg)
        for i, pt in enumerate(p.points):
            if len(pt) != 3:
                msg = f"value {list(pt)} must be [voltage_v, freq_mhz, ticket_diff]"
                raise ConfigError(f"{path}.points[{i}]", msg)
            if pt[2] < 1:
                msg = f"ticket difficulty {pt[2]} out of range; allowed >= 1"
                raise ConfigError(f"{path}.points[{i}][2]", msg)
        for i, d in enumerate(p.ticket_diff):
            if d < 1:
                raise ConfigError(f"{path}.ticket_diff[{i}]", f"value {d} out of range; allowed >= 1")
    if p.kind == "modulate":
        if not p.input:
            raise ConfigError(f"{path}.input", "a modulate plan needs a non-empty input list (values 0 .. 1)")
        for i, u in enumerate(p.input):
            if not 0.0 <= u <= 1.0:
                raise ConfigError(f"{path}.input[{i}]", f"value {u} out of range; allowed 0 .. 1")
        if p.freq_lo_mhz > p.freq_hi_mhz:
            msg = f"value {p.freq_lo_mhz} above freq_hi_mhz {p.freq_hi_mhz}"
            raise ConfigError(f"{path}.freq_lo_mhz", msg)


def check_plan_envelope(path: str, p: PlanConfig, boards: list[BoardConfig], default: SafetyLimits) -> None:
    """Every setpoint the plan asks for lies inside the envelope of every board it runs on (else the gate
    would clamp it at run time, and the sweep would not measure the point it names)."""
    envs = [(b.name, b.safety) for b in boards if not p.boards or b.name in p.boards] or [("", default)]
    asks: list[tuple[str, float | None, float | None]] = []
    if p.kind == "sweep" and p.points:
        asks += [(f"{path}.points[{i}]", pt[0], pt[1]) for i, pt in enumerate(p.points)]
    elif p.kind == "sweep":
        asks += [(f"{path}.voltage_v[{i}]", v, None) for i, v in enumerate(p.voltage_v)]
        asks += [(f"{path}.freq_mhz[{i}]", None, f) for i, f in enumerate(p.freq_mhz)]
    else:
        asks.append((f"{path}.hold_voltage_v", p.hold_voltage_v, None))
        if p.kind == "hold":
            asks.append((f"{path}.hold_freq_mhz", None, p.hold_freq_mhz))
        else:
            asks += [
                (f"{path}.freq_lo_mhz", None, p.freq_lo_mhz),
                (f"{path}.freq_hi_mhz", None, p.freq_hi_mhz),
            ]
    for name, lim in envs:
        board = f" of board {name!r}" if name else ""
        for key, v, f in asks:
            if v is not None and not lim.core_voltage_min_v <= v <= lim.core_voltage_max_v:
                env = f"{lim.core_voltage_min_v:g} .. {lim.core_voltage_max_v:g} V"
                raise ConfigError(key, f"voltage {v:g} V outside the safety envelope{board} ({env})")
            if f is not None and not lim.freq_min_mhz <= f <= lim.freq_max_mhz:
                env = f"{lim.freq_min_mhz:g} .. {lim.freq_max_mhz:g} MHz"
                raise ConfigError(key, f"frequency {f:g} MHz outside the safety envelope{board} ({env})")


#: Characters an MQTT topic level may not hold (separator and wildcards, MQTT 3.1.1 section 4.7).
TOPIC_LEVEL_FORBIDDEN = ("/", "+", "#", "\x00")
#: Emulated board names (``--simulate N`` serves sim0 .. sim<N-1>; daemon/sim_boards.py).
SIM_BOARD_RE = re.compile(r"sim[0-9]+")


def check_topic_level(path: str, value: str) -> None:
    """``value`` is usable as one MQTT topic level: not empty, no ``/``, ``+``, ``#`` or NUL."""
    if not value:
        raise ConfigError(path, "empty; give a name usable as one MQTT topic level")
    bad = [c for c in TOPIC_LEVEL_FORBIDDEN if c in value]
    if bad:
        raise ConfigError(
            path, f"value {value!r} holds {', '.join(map(repr, bad))}; an MQTT topic level may not ('/+#')"
        )


def check_mqtt(m: MqttConfig) -> None:
    """``host_id`` is one topic level; ``ca_file`` needs ``tls``, and must be a readable file when MQTT is
    enabled (checked at start)."""
    check_topic_level("mqtt.host_id", m.host_id)
    if not m.ca_file:
        return
    if not m.tls:
        raise ConfigError("mqtt.ca_file", f"value {m.ca_file!r} is set but tls = false; set tls = true")
    if m.enabled and not Path(m.ca_file).is_file():
        raise ConfigError(
            "mqtt.ca_file", f"value {m.ca_file!r}: no such file (a PEM CA certificate to verify the broker)"
        )


def check_live_board(cfg: Config, name: str, safety: SafetyLimits) -> None:
    """The live board ``name`` runs no plan and the live setpoint is inside its ``safety`` limits."""
    for i, p in enumerate(cfg.plans):
        if not p.boards or name in p.boards:
            raise ConfigError(
                "live.board",
                f"value {name!r}: plan {p.name!r} (plans[{i}]) also runs on it; the live board must have no"
                " plan of its own (give the plans a boards list without it)",
            )
    v = cfg.live.voltage_v
    if not safety.core_voltage_min_v <= v <= safety.core_voltage_max_v:
        raise ConfigError(
            "live.voltage_v",
            f"value {v} outside board {name!r}'s safety limits; allowed"
            f" {safety.core_voltage_min_v} .. {safety.core_voltage_max_v}",
        )


def check_live(cfg: Config) -> None:
    """``[live]`` when enabled: MQTT on, the readout file exists, the board is known and has no plans."""
    lv = cfg.live
    if not lv.enabled:
        return
    if not cfg.mqtt.enabled:
        raise ConfigError("live.enabled", "the live service needs [mqtt] enabled = true (its input topic)")
    if not lv.readout:
        raise ConfigError("live.readout", "missing; give the LiveModel .npz (asicrc live train --out FILE)")
    if not Path(lv.readout).is_file():
        raise ConfigError("live.readout", f"value {lv.readout!r}: no such file (a LiveModel .npz)")
    board = next((b for b in cfg.boards if b.name == lv.board), None)
    if board is not None:
        check_live_board(cfg, lv.board, board.safety)
    elif SIM_BOARD_RE.fullmatch(lv.board):
        check_live_board(cfg, lv.board, cfg.safety)  # an emulated board (checked again at start)
    else:
        known = [b.name for b in cfg.boards]
        raise ConfigError(
            "live.board", f"value {lv.board!r} is not a configured board; known: {known} (or sim0.. emulated)"
        )
