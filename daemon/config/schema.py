"""The configuration's sections as frozen dataclasses: every key declared once, with its safe default and its
allowed range or choices in field metadata (read by :mod:`daemon.config.convert`).

The safety defaults come from ``docs/protocol.md`` ("Safety figures in use": ESP-Miner's UI range and the
public sweep tool's hard limits, whichever is tighter).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from daemon.cluster_config import ClusterConfig
from drivers.parts.boards import BOARD_VERSIONS

BOARD_KINDS = ("gamma", "ultra", "generic")
PLAN_KINDS = ("sweep", "modulate", "hold")
DISCOVER = "discover"


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
    fsync_interval_s: float = _f(5.0, 0.0, 3600.0)
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
    """A fault injected into an emulated board ``at_s`` s after its first bring-up (demos, system tests).

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
