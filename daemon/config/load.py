"""Reading a TOML file or document into a validated :class:`~daemon.config.schema.Config`."""

from __future__ import annotations

import dataclasses
import importlib.resources
import tomllib
from pathlib import Path
from typing import Any

from daemon.cluster_config import cluster_problem
from daemon.config.checks import check_live, check_mqtt, check_plan, check_plan_envelope, check_safety
from daemon.config.convert import build
from daemon.config.errors import ConfigError
from daemon.config.schema import BoardConfig, Config, PlanConfig, SafetyLimits
from drivers import chipmath
from drivers.parts.boards import version_mismatch
from simulator.plant import parse_plants


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
    cfg = build(Config, top, "")
    check_safety("safety", cfg.safety)
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
        board = build(BoardConfig, raw, path)
        if not isinstance(safety_raw, dict):
            raise ConfigError(f"{path}.safety", "expected a table")
        safety = build(SafetyLimits, safety_raw, f"{path}.safety", base=cfg.safety)
        check_safety(f"{path}.safety", safety)
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
        plan = build(PlanConfig, raw, path)
        check_plan(path, plan, names)
        check_plan_envelope(path, plan, boards, cfg.safety)
        if any(p.name == plan.name for p in plans):
            raise ConfigError(f"{path}.name", f"value {plan.name!r} is used by another plan")
        plans.append(plan)
    check_mqtt(cfg.mqtt)
    for section, sec in (("timing", cfg.timing), ("mqtt", cfg.mqtt)):
        if sec.reconnect_min_s > sec.reconnect_max_s:
            raise ConfigError(
                f"{section}.reconnect_min_s", f"value {sec.reconnect_min_s} above reconnect_max_s"
            )
    cfg = dataclasses.replace(cfg, boards=tuple(boards), plans=tuple(plans))
    check_live(cfg)
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
