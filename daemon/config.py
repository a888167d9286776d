"""The daemon's TOML configuration, validated at start into frozen dataclasses.

One file (``tomllib``). Every key is declared once in a dataclass with its allowed range in field metadata;
:func:`load_config` / :func:`parse_config` reject unknown keys, wrong types and out-of-range values with a
:class:`ConfigError` that names the key path, the value and the allowed range. Every default is safe: the
safety defaults come from ``docs/protocol.md`` ("Safety figures in use": ESP-Miner's UI range and the
public sweep tool's hard limits, whichever is tighter).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import re
import socket
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from daemon.cluster_config import ClusterConfig, cluster_problem
from drivers import chipmath
from drivers.parts.boards import BOARD_VERSIONS, version_mismatch
from simulator.plant import parse_plants

T = TypeVar("T")

BOARD_KINDS = ("gamma", "ultra", "generic")
PLAN_KINDS = ("sweep", "modulate", "hold")
DISCOVER = "discover"


class ConfigError(ValueError):
    """A configuration problem; ``path`` is the dotted key path (``boards[0].safety.freq_max_mhz``)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"config {path}: {message}")


def _rng(lo: float | None = None, hi: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """Field metadata: inclusive numeric range or allowed string choices."""
    return {"lo": lo, "hi": hi, "choices": choices}


def _f(default: Any, lo: float | None = None, hi: float | None = None, **kw: Any) -> Any:
    return field(default=default, metadata=_rng(lo, hi, kw.get("choices")))


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """Per-board limits. Units: V, MHz, MHz/s, degrees C, W, s."""

    # ESP-Miner UI offers 1100-1300 mV; the sweep tool allows 1000-1400 mV (hard range below).
    core_voltage_min_v: float = _f(1.10, 1.0, 1.4)
    core_voltage_max_v: float = _f(1.30, 1.0, 1.4)
    # 50 MHz is the chip's reset clock and ESP-Miner's overheat floor; 575 MHz the top of its UI.
    freq_min_mhz: float = _f(50.0, 50.0, 1200.0)
    freq_max_mhz: float = _f(575.0, 50.0, 1200.0)
    # ESP-Miner ramps 6.25 MHz every 100 ms = 62.5 MHz/s.
    freq_step_rate_mhz_s: float = _f(62.5, 0.1, 100_000.0)
    # The sweep tool's hard limits (chip < 66 C, regulator < 86 C, power < 40 W); tighter than ESP-Miner's.
    chip_temp_max_c: float = _f(66.0, 20.0, 90.0)
    regulator_temp_max_c: float = _f(86.0, 20.0, 125.0)
    power_max_w: float = _f(40.0, 0.5, 500.0)
    # Sweep tool: input 4.8-5.5 V; outside it is a brown-out (or an over-voltage) and the board goes safe.
    input_voltage_min_v: float = _f(4.8, 3.0, 14.0)
    input_voltage_max_v: float = _f(5.5, 3.0, 14.0)
    # ESP-Miner cools at least 30 s; resume only below limit - hysteresis.
    cool_down_s: float = _f(30.0, 0.0, 3600.0)
    hysteresis_c: float = _f(5.0, 0.0, 30.0)
    # Resume after an overheat this much lower (ESP-Miner: 100 mV and 100 MHz).
    derate_voltage_v: float = _f(0.100, 0.0, 0.4)
    derate_freq_mhz: float = _f(100.0, 0.0, 1000.0)
    # Overheat: core voltage off (ESP-Miner) rather than to its floor.
    overheat_voltage_off: bool = True
    # Brown-out: input voltage back in range this long before re-initialising.
    brownout_recover_s: float = _f(2.0, 0.0, 600.0)


@dataclass(frozen=True, slots=True)
class BoardConfig:
    """One board: a data (ASIC UART) port, an optional bitaxe-raw control port, and its limits."""

    name: str = ""
    kind: str = _f("generic", choices=BOARD_KINDS)
    # ESP-Miner board version (docs/drivers.md "Board versions"): start-up writes and chip sensor; "" = kind's
    board_version: str = _f("", choices=("", *sorted(BOARD_VERSIONS)))
    data_port: str = DISCOVER  # a path such as /dev/ttyACM1, or "discover"
    control_port: str = ""  # bitaxe-raw control channel; "" = none ("discover" with data_port discover)
    chips: int = _f(1, 1, 256)
    baud: int = _f(1_000_000, 115_200, 3_125_000)
    safety: SafetyLimits = field(default_factory=SafetyLimits)


@dataclass(frozen=True, slots=True)
class PlanConfig:
    """An experiment. ``kind``: sweep (points), modulate (input sequence), hold (one setpoint)."""

    name: str = ""
    kind: str = _f("hold", choices=PLAN_KINDS)
    boards: tuple[str, ...] = ()  # () = every board
    # sweep: a grid (product of the three lists) or an explicit list of [voltage_v, freq_mhz, ticket_diff].
    voltage_v: tuple[float, ...] = ()
    freq_mhz: tuple[float, ...] = ()
    ticket_diff: tuple[float, ...] = ()
    points: tuple[tuple[float, ...], ...] = ()
    settle_s: float = _f(2.0, 0.0, 3600.0)
    dwell_s: float = _f(10.0, 0.0, 86_400.0)
    shuffle: bool = False
    seed: int = _f(0, 0, 2**63 - 1)
    repeats: int = _f(1, 1, 10_000)
    # modulate: input values in [0, 1], each held symbol_period_s, split in sub_slots masked sub-steps.
    input: tuple[float, ...] = ()
    symbol_period_s: float = _f(1.0, 0.001, 3600.0)
    sub_slots: int = _f(1, 1, 1024)
    freq_lo_mhz: float = _f(400.0, 50.0, 1200.0)
    freq_hi_mhz: float = _f(500.0, 50.0, 1200.0)
    # hold (and the fixed voltage/difficulty of modulate): one setpoint for duration_s (0 = until stopped).
    hold_voltage_v: float = _f(1.20, 0.0, 1.4)
    hold_freq_mhz: float = _f(485.0, 50.0, 1200.0)
    hold_ticket_diff: float = _f(256.0, 1.0, 2.0**40)
    duration_s: float = _f(0.0, 0.0, 10.0**9)


@dataclass(frozen=True, slots=True)
class RecorderConfig:
    """Arrow IPC recordings under ``<state dir>/<dir>``. Units: s, bytes."""

    enabled: bool = True
    dir: str = "recordings"
    flush_interval_s: float = _f(1.0, 0.01, 60.0)
    fsync_interval_s: float = _f(10.0, 0.0, 3600.0)
    segment_bytes: int = _f(64 * 1024 * 1024, 4096, 2**40)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """``/metrics``, ``/healthz``, ``/status``; loopback by default. Port 0 = pick a free one."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = _f(9366, 0, 65535)


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Optional MQTT export (off by default). Units: s, messages.

    ``ca_file``: PEM CA bundle to verify the broker with (``tls = true``; "" = the system CAs); it must exist
    when MQTT is enabled. ``password`` and ``token`` are secrets: never logged nor shown in ``/status``.
    """

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = _f(1883, 1, 65535)
    tls: bool = False
    ca_file: str = ""
    username: str = ""
    password: str = field(default="", repr=False)  # secret
    topic_root: str = "asicrc"
    # this host's topic level (<topic_root>/<host_id>/...): unique per daemon on one broker
    host_id: str = field(default_factory=socket.gethostname)
    token: str = field(default="", repr=False)  # secret
    status_interval_s: float = _f(10.0, 0.1, 3600.0)  # the status topic's period
    buffer_messages: int = _f(1000, 10, 1_000_000)  # outage buffer; the oldest are dropped (counted) beyond
    homeassistant: bool = False  # Home Assistant MQTT discovery for a few status values
    # reconnect after a lost broker: capped exponential backoff, this first wait doubling up to the cap
    reconnect_min_s: float = _f(0.5, 0.001, 60.0)
    reconnect_max_s: float = _f(30.0, 0.01, 3600.0)


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """The live reservoir service (off by default; needs ``[mqtt]``): inputs on ``<base>/live/input`` drive
    ``board`` through the ``modulate`` plan and the trained readout's predictions go to
    ``<base>/live/prediction`` (docs/mqtt.md). Units: V, queued inputs.

    ``readout``: a LiveModel ``.npz`` (``asicrc live train``); ``board``: a configured board without plans of
    its own, or an emulated one (``sim0`` ...) under ``--simulate``; ``voltage_v`` and ``ticket_diff``: the
    fixed core voltage and ticket difficulty of the modulation (inside the board's safety limits);
    ``publish_stats``: publish the readout's sufficient statistics (retained) on ``<base>/readout/stats``
    for ``asicrc collect``.
    """

    enabled: bool = False
    readout: str = ""
    board: str = ""
    voltage_v: float = _f(1.20, 1.0, 1.4)
    ticket_diff: float = _f(1.0, 1.0, 2.0**40)
    queue_size: int = _f(64, 1, 100_000)
    publish_stats: bool = False


@dataclass(frozen=True, slots=True)
class TimingConfig:
    """Supervisor timing; system tests shrink these. Units: s."""

    control_tick_s: float = _f(0.1, 0.001, 10.0)  # ESP-Miner ramps every 100 ms
    job_interval_s: float = _f(2.0, 0.01, 600.0)  # ESP-Miner: a new job every 2 s / nextpow2(chips)
    telemetry_interval_s: float = _f(1.0, 0.01, 600.0)
    silence_timeout_s: float = _f(30.0, 0.1, 3600.0)  # no bytes at all for this long -> reconnect
    crc_storm_per_s: float = _f(1000.0, 1.0, 1e9)  # bad frames per second -> reconnect
    reconnect_min_s: float = _f(0.5, 0.001, 60.0)  # capped exponential backoff (pymodbus style)
    reconnect_max_s: float = _f(30.0, 0.01, 3600.0)
    batch_interval_s: float = _f(0.1, 0.001, 10.0)  # replies are batched into event columns this often
    status_interval_s: float = _f(5.0, 0.1, 3600.0)  # progress lines on stderr
    # start-up window: a board not up this long makes /healthz 503; no board up -> exit 2; 0 = no bound
    startup_timeout_s: float = _f(60.0, 0.0, 86_400.0)


@dataclass(frozen=True, slots=True)
class SimFault:
    """A fault injected into an emulated board ``at_s`` host seconds after start (demos, system tests).

    overheat: chip temperature forced to ``value`` C; brownout: input supply at ``value`` V for
    ``duration_s``; unplug: the data pty hangs up and comes back at a new path behind the same link (a
    replug; ``duration_s`` is not used).
    """

    at_s: float = _f(0.0, 0.0, 1e9)
    board: str = ""  # "" = every emulated board
    kind: str = _f("overheat", choices=("overheat", "brownout", "unplug"))
    value: float = _f(0.0, -50.0, 200.0)
    duration_s: float = _f(1.0, 0.0, 1e9)


@dataclass(frozen=True, slots=True)
class SimulateConfig:
    """Settings for ``--simulate`` boards (the in-process emulator)."""

    chips: int = _f(1, 1, 256)
    time_scale: float = _f(1.0, 0.001, 10_000.0)  # emulator clock speed-up
    link: str = _f("ideal", choices=("ideal", "ftdi"))  # emulated USB-serial bridge timing
    seed: int = _f(1, 0, 2**63 - 1)
    # bitaxe-raw variant on the emulated control port (simulator.bitaxe_raw.FIRMWARES, docs/emulator.md)
    raw_firmware: str = _f("original", choices=("original", "packet", "latest"))
    faults: tuple[SimFault, ...] = ()
    # planted input-dependent dynamics, "KIND=GAIN" and "KIND.NAME=VALUE" (simulator/plant.py), none default
    plant: tuple[str, ...] = ()
    plant_param: tuple[str, ...] = ()
    truth_dir: str = ""  # "" = off; else each board's ground truth <dir>/<name>-truth.csv at stop


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    boards: tuple[BoardConfig, ...] = ()
    safety: SafetyLimits = field(default_factory=SafetyLimits)
    plans: tuple[PlanConfig, ...] = ()
    recorder: RecorderConfig = field(default_factory=RecorderConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    live: LiveConfig = field(default_factory=LiveConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)  # daemon/cluster_config.py
    state_dir: str = "./var"


# ---------------------------------------------------------------------------------------------- parsing


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_range(path: str, value: float, meta: Any) -> None:
    lo, hi = meta.get("lo"), meta.get("hi")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(path, f"value {value!r} out of range; allowed {lo} .. {hi}")


def _convert(path: str, value: object, tp: Any, meta: Any) -> object:
    """Check and convert one TOML value to the field type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected an integer")
        _check_range(path, value, meta)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a number")
        if not math.isfinite(value):
            raise ConfigError(path, f"value {value!r} is not finite")
        _check_range(path, float(value), meta)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a string")
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ConfigError(path, f"value {value!r} not allowed; allowed {', '.join(choices)}")
        return value
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a list")
        return tuple(_convert(f"{path}[{i}]", v, args[0], meta) for i, v in enumerate(value))
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(path, f"value {value!r} has type {_type_name(value)}; expected a table")
        return _build(typing.cast(type[Any], tp), value, path)
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # pragma: no cover - programming error


def _build(cls: type[T], table: dict[str, Any], path: str, base: T | None = None) -> T:
    """Build dataclass ``cls`` from a TOML table: unknown keys and bad values raise :class:`ConfigError`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        sub = f"{path}.{key}" if path else key
        if key not in fields:
            raise ConfigError(sub, f"unknown key; known keys here: {', '.join(sorted(fields))}")
        tp = hints[key]
        if isinstance(tp, types.UnionType):  # pragma: no cover - no optional fields today
            tp = typing.get_args(tp)[0]
        kwargs[key] = _convert(sub, value, tp, fields[key].metadata)
    if base is not None:
        return dataclasses.replace(base, **kwargs)  # type: ignore[type-var]
    return cls(**kwargs)


def _check_safety(path: str, s: SafetyLimits) -> None:
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


def _check_plan(path: str, p: PlanConfig, board_names: set[str]) -> None:
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


def _check_plan_envelope(path: str, p: PlanConfig, boards: list[BoardConfig], default: SafetyLimits) -> None:
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


def _check_mqtt(m: MqttConfig) -> None:
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


def _check_live(cfg: Config) -> None:
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


def parse_config(data: dict[str, Any]) -> Config:
    """Validate a parsed TOML document. Raises :class:`ConfigError` naming the key on any problem."""
    known = {f.name for f in dataclasses.fields(Config)}
    for key in data:
        if key not in known:
            raise ConfigError(key, f"unknown key; known keys here: {', '.join(sorted(known))}")
    top: dict[str, Any] = {}
    for key in ("safety", "recorder", "http", "mqtt", "live", "timing", "simulate", "cluster", "state_dir"):
        if key in data:
            top[key] = data[key]
    cfg = _build(Config, top, "")
    _check_safety("safety", cfg.safety)
    if (why := cluster_problem(cfg.cluster)) is not None:
        raise ConfigError("cluster.address", why)
    boards_raw = data.get("boards", [])
    if not isinstance(boards_raw, list):
        raise ConfigError("boards", "expected an array of tables ([[boards]])")
    boards: list[BoardConfig] = []
    for i, raw in enumerate(boards_raw):
        path = f"boards[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(path, "expected a table")
        raw = dict(raw)
        safety_raw = raw.pop("safety", {})
        board = _build(BoardConfig, raw, path)
        if not isinstance(safety_raw, dict):
            raise ConfigError(f"{path}.safety", "expected a table")
        safety = _build(SafetyLimits, safety_raw, f"{path}.safety", base=cfg.safety)
        _check_safety(f"{path}.safety", safety)
        board = dataclasses.replace(board, safety=safety, name=board.name or f"board{i}")
        if any(b.name == board.name for b in boards):
            raise ConfigError(f"{path}.name", f"value {board.name!r} is used by another board")
        if not board.data_port:
            raise ConfigError(f"{path}.data_port", 'empty; give a port path or "discover"')
        if (why := chipmath.baud_problem(board.baud)) is not None:
            raise ConfigError(f"{path}.baud", f"value {board.baud}: {why}")
        if (why := version_mismatch(board.kind, board.board_version)) is not None:
            raise ConfigError(f"{path}.board_version", why)
        boards.append(board)
    plans_raw = data.get("plans", [])
    if not isinstance(plans_raw, list):
        raise ConfigError("plans", "expected an array of tables ([[plans]])")
    names = {b.name for b in boards}
    plans: list[PlanConfig] = []
    for i, raw in enumerate(plans_raw):
        path = f"plans[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(path, "expected a table")
        plan = _build(PlanConfig, raw, path)
        _check_plan(path, plan, names)
        _check_plan_envelope(path, plan, boards, cfg.safety)
        if any(p.name == plan.name for p in plans):
            raise ConfigError(f"{path}.name", f"value {plan.name!r} is used by another plan")
        plans.append(plan)
    _check_mqtt(cfg.mqtt)
    for section, sec in (("timing", cfg.timing), ("mqtt", cfg.mqtt)):
        if sec.reconnect_min_s > sec.reconnect_max_s:
            raise ConfigError(
                f"{section}.reconnect_min_s", f"value {sec.reconnect_min_s} above reconnect_max_s"
            )
    cfg = dataclasses.replace(cfg, boards=tuple(boards), plans=tuple(plans))
    _check_live(cfg)
    try:
        parse_plants(cfg.simulate.plant, cfg.simulate.plant_param)
    except ValueError as exc:
        raise ConfigError("simulate.plant", str(exc)) from None
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML file; a syntax error is a :class:`ConfigError` with the file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start}): {exc.reason}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), f"TOML syntax error: {exc}") from exc
    return parse_config(data)


def default_config() -> Config:
    """The embedded defaults used by ``--simulate`` (``daemon/defaults.toml``)."""
    text = importlib.resources.files("daemon").joinpath("defaults.toml").read_text(encoding="utf-8")
    return parse_config(tomllib.loads(text))
