"""The daemon's TOML configuration, validated at start into frozen dataclasses.

One file (``tomllib``). Every key is declared once in a dataclass of :mod:`~daemon.config.schema` with its
allowed range in field metadata; :func:`load_config` / :func:`parse_config` (:mod:`~daemon.config.load`)
reject unknown keys, wrong types (:mod:`~daemon.config.convert`) and out-of-range or inconsistent values
(:mod:`~daemon.config.checks`) with a :class:`ConfigError` that names the key path, the value and the allowed
range. Every default is safe: the safety defaults come from ``docs/protocol.md`` ("Safety figures in use").
"""

from __future__ import annotations

from daemon.config.checks import SIM_BOARD_RE, TOPIC_LEVEL_FORBIDDEN, check_live_board, check_topic_level
from daemon.config.errors import ConfigError
from daemon.config.load import default_config, load_config, parse_config
from daemon.config.schema import (
    BOARD_KINDS,
    DISCOVER,
    PLAN_KINDS,
    BoardConfig,
    Config,
    HttpConfig,
    LiveConfig,
    MqttConfig,
    PlanConfig,
    RecorderConfig,
    SafetyLimits,
    SimFault,
    SimulateConfig,
    TimingConfig,
)

__all__ = [
    "BOARD_KINDS",
    "DISCOVER",
    "PLAN_KINDS",
    "SIM_BOARD_RE",
    "TOPIC_LEVEL_FORBIDDEN",
    "BoardConfig",
    "Config",
    "ConfigError",
    "HttpConfig",
    "LiveConfig",
    "MqttConfig",
    "PlanConfig",
    "RecorderConfig",
    "SafetyLimits",
    "SimFault",
    "SimulateConfig",
    "TimingConfig",
    "check_live_board",
    "check_topic_level",
    "default_config",
    "load_config",
    "parse_config",
]
