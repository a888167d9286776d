"""``[mqtt] host_id`` and ``[live]``: defaults, validation errors naming the key, and the bridge settings."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import ConfigError, parse_config
from daemon.mqtt_link import MqttSettings

MQTT_ON = {"enabled": True}
BOARD = {"name": "g0", "data_port": "/dev/ttyACM1"}


def _live(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    model = tmp_path / "live.npz"
    model.write_bytes(b"")  # only its existence is checked at parse time; the daemon loads it at start
    return {"enabled": True, "readout": str(model), "board": "g0"} | kw


def _error(data: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value


def test_host_id_defaults_to_the_hostname_and_reaches_the_bridge() -> None:
    cfg = parse_config({})
    assert cfg.mqtt.host_id == socket.gethostname()
    assert MqttSettings.from_config(cfg.mqtt).host_id == socket.gethostname()
    cfg = parse_config({"mqtt": {"host_id": "rig-2", "topic_root": "lab"}})
    settings = MqttSettings.from_config(cfg.mqtt)
    assert settings.host_id == "rig-2"
    assert settings.base == "lab/rig-2"


@given(st.text(min_size=1, max_size=20).filter(lambda s: not set(s) & set("/+#\x00")))
def test_any_single_topic_level_is_a_valid_host_id(host_id: str) -> None:
    assert parse_config({"mqtt": {"host_id": host_id}}).mqtt.host_id == host_id


@pytest.mark.parametrize("bad", ["", "a/b", "a+", "#", "x\x00y"])
def test_host_id_that_is_not_one_topic_level_is_refused(bad: str) -> None:
    err = _error({"mqtt": {"host_id": bad}})
    assert err.path == "mqtt.host_id"


def test_live_is_off_by_default_and_needs_nothing() -> None:
    cfg = parse_config({})
    assert not cfg.live.enabled and not cfg.live.publish_stats
    assert cfg.live.queue_size == 64


def test_a_valid_live_section(tmp_path: Path) -> None:
    live = _live(tmp_path, voltage_v=1.15, ticket_diff=4.0, queue_size=8, publish_stats=True)
    cfg = parse_config({"mqtt": MQTT_ON, "boards": [BOARD], "live": live})
    assert cfg.live.board == "g0" and cfg.live.voltage_v == 1.15 and cfg.live.ticket_diff == 4.0
    assert cfg.live.queue_size == 8 and cfg.live.publish_stats


def test_an_emulated_board_name_is_accepted(tmp_path: Path) -> None:
    cfg = parse_config({"mqtt": MQTT_ON, "live": _live(tmp_path, board="sim0")})
    assert cfg.live.board == "sim0"


def test_live_errors_name_the_key(tmp_path: Path) -> None:
    base: dict[str, Any] = {"mqtt": MQTT_ON, "boards": [BOARD]}
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"boards": [BOARD], "live": _live(tmp_path)}, "live.enabled", "[mqtt]"),
        (
            base | {"live": _live(tmp_path, readout=str(tmp_path / "none.npz"))},
            "live.readout",
            "no such file",
        ),
        (base | {"live": _live(tmp_path, readout="")}, "live.readout", "missing"),
        (base | {"live": _live(tmp_path, board="nope")}, "live.board", "not a configured board"),
        (base | {"live": _live(tmp_path, board="")}, "live.board", "not a configured board"),
        (base | {"live": _live(tmp_path, ticket_diff=0.5)}, "live.ticket_diff", "out of range"),
        (base | {"live": _live(tmp_path, queue_size=0)}, "live.queue_size", "out of range"),
        (base | {"live": _live(tmp_path, extra=1)}, "live.extra", "unknown key"),
        # inside the absolute range but outside the board's (tighter) safety limits
        (base | {"live": _live(tmp_path, voltage_v=1.35)}, "live.voltage_v", "safety limits"),
        (base | {"live": _live(tmp_path, voltage_v=1.5)}, "live.voltage_v", "out of range"),
    ]
    for data, path, words in cases:
        err = _error(data)
        assert err.path == path, (data, err)
        assert words in str(err)


def test_live_board_must_have_no_plan(tmp_path: Path) -> None:
    hold = {"name": "h", "kind": "hold"}
    base: dict[str, Any] = {"mqtt": MQTT_ON, "boards": [BOARD, {**BOARD, "name": "g1"}]}
    for plan in (hold, hold | {"boards": ["g0"]}):  # every board, or that one by name
        err = _error(base | {"plans": [plan], "live": _live(tmp_path)})
        assert err.path == "live.board" and "'h'" in str(err)
    cfg = parse_config(base | {"plans": [hold | {"boards": ["g1"]}], "live": _live(tmp_path)})
    assert cfg.live.board == "g0"


def test_live_voltage_follows_the_boards_own_limits(tmp_path: Path) -> None:
    board = BOARD | {"safety": {"core_voltage_min_v": 1.0, "core_voltage_max_v": 1.35}}
    cfg = parse_config({"mqtt": MQTT_ON, "boards": [board], "live": _live(tmp_path, voltage_v=1.05)})
    assert cfg.live.voltage_v == 1.05


def test_live_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    not_a_model = tmp_path / "x.npz"
    not_a_model.write_bytes(b"junk")
    cases = [
        (["live", "train", "--out", str(tmp_path / "m.npz")], "--simulate"),
        (["live", "train", "--simulate", "--out", str(tmp_path / "no" / "m.npz")], "does not exist"),
        (["live", "train", "--simulate", "--out", str(tmp_path / "m.npz"), "--steps", "3"], "--steps"),
        (["live", "serve", "--mqtt", "127.0.0.1:1883", "--readout", str(not_a_model)], "--simulate"),
        (
            ["live", "serve", "--mqtt", "h:1", "--readout", str(tmp_path / "none"), "--simulate"],
            "no such file",
        ),
        (["live", "serve", "--mqtt", "nohost", "--readout", str(not_a_model), "--simulate"], "HOST:PORT"),
        (["live", "serve", "--mqtt", "h:1", "--readout", str(not_a_model), "--simulate"], "not a LiveModel"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        err = captured.err
        assert f"asicrc live {argv[1]}: error:" in err and words in err, (argv, err)
        assert captured.out == ""
    assert not (tmp_path / "m.npz").exists()
    assert main(["live"]) == 2


async def test_commands_cannot_take_the_live_board(tmp_path: Path) -> None:
    """set_setpoint / start_plan on the live board are refused (its setpoints belong to the live service);
    the other boards still take them."""
    from types import SimpleNamespace

    from daemon.app import Daemon

    cfg = parse_config({"mqtt": MQTT_ON, "boards": [BOARD, {**BOARD, "name": "g1"}], "live": _live(tmp_path)})
    d = Daemon(cfg, state_dir=tmp_path)
    for name in ("g0", "g1"):
        d.sups[name] = SimpleNamespace(name=name)  # type: ignore[assignment]
    for cmd in ({"action": "set_setpoint", "voltage_v": 1.2, "freq_mhz": 400}, {"action": "start_plan"}):
        res = await d.commands(cmd | {"board": "g0"})
        assert res["ok"] is False and "live service" in res["reason"]
    res = await d.commands({"action": "start_plan", "board": "g1", "plan": "none"})
    assert res == {"ok": False, "reason": "unknown plan 'none'"}  # reaches the normal handling
