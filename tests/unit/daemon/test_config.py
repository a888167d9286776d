"""Config validation: bad keys, out-of-range values, unknown keys and wrong types are named."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from daemon.config import Config, ConfigError, default_config, load_config, parse_config

ROOT = Path(__file__).resolve().parents[3]


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        parse_config(tomllib.loads(text))
    return ei.value


def test_empty_config_is_all_safe_defaults() -> None:
    cfg = parse_config({})
    assert cfg == Config()
    assert cfg.http.host == "127.0.0.1"
    assert not cfg.mqtt.enabled
    assert cfg.safety.freq_max_mhz <= 575.0
    assert cfg.safety.chip_temp_max_c <= 75.0


def test_shipped_example_and_defaults_parse() -> None:
    ex = load_config(ROOT / "systemd" / "asicrc.example.toml")
    assert ex.boards[0].name == "gamma0"
    # per-board override changes only the keys listed; the rest come from [safety]
    assert ex.boards[0].safety.freq_max_mhz == 525.0
    assert ex.boards[0].safety.chip_temp_max_c == ex.safety.chip_temp_max_c
    d = default_config()
    assert d.boards == ()
    assert d.plans and d.plans[0].kind == "sweep"


def test_unknown_top_level_key_named() -> None:
    e = _err("colour = 'red'\n")
    assert e.path == "colour"
    assert "unknown key" in str(e)


def test_unknown_nested_key_named() -> None:
    e = _err("[[boards]]\nname='a'\ndata_port='/dev/x'\n[boards.safety]\nfreq_maxx_mhz = 400\n")
    assert e.path == "boards[0].safety.freq_maxx_mhz"
    assert "freq_max_mhz" in str(e)  # lists the known keys


def test_out_of_range_names_key_value_and_range() -> None:
    e = _err("[[boards]]\nname='a'\ndata_port='/dev/x'\n[boards.safety]\nfreq_max_mhz = 5000\n")
    assert e.path == "boards[0].safety.freq_max_mhz"
    msg = str(e)
    assert "5000" in msg and "50.0 .. 1200.0" in msg


def test_wrong_type_named() -> None:
    e = _err("[http]\nport = 'eighty'\n")
    assert e.path == "http.port"
    assert "expected an integer" in str(e) and "'eighty'" in str(e)
    e = _err("[mqtt]\nenabled = 1\n")
    assert e.path == "mqtt.enabled"
    e = _err("[safety]\ncool_down_s = true\n")
    assert e.path == "safety.cool_down_s"


def test_bad_choice_named() -> None:
    e = _err("[[boards]]\nname='a'\nkind='s9'\ndata_port='/dev/x'\n")
    assert e.path == "boards[0].kind"
    assert "gamma" in str(e)


def test_min_above_max_refused() -> None:
    e = _err("[safety]\nfreq_min_mhz = 500\nfreq_max_mhz = 400\n")
    assert e.path == "safety.freq_min_mhz"


@pytest.mark.parametrize("section", ["timing", "mqtt"])
def test_reconnect_backoff_min_above_max_refused(section: str) -> None:
    e = _err(f"[{section}]\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0\n")
    assert e.path == f"{section}.reconnect_min_s" and "above reconnect_max_s" in str(e)


def test_duplicate_board_names_refused() -> None:
    e = _err("[[boards]]\nname='a'\n[[boards]]\nname='a'\n")
    assert e.path == "boards[1].name"


def test_plan_errors_named() -> None:
    e = _err("[[plans]]\nname='p'\nkind='sweep'\nvoltage_v=[1.2]\n")
    assert e.path == "plans[0].voltage_v"
    e = _err("[[plans]]\nname='p'\nkind='sweep'\npoints=[[1.2, 400.0]]\n")
    assert e.path == "plans[0].points[0]"
    e = _err("[[plans]]\nname='p'\nkind='modulate'\ninput=[0.5, 1.5]\n")
    assert e.path == "plans[0].input[1]"
    e = _err("[[boards]]\nname='a'\n[[plans]]\nname='p'\nboards=['b']\n")
    assert e.path == "plans[0].boards[0]"
    e = _err("[[plans]]\nname='p'\nsettle_s=-1\n")
    assert e.path == "plans[0].settle_s"


def test_toml_syntax_error_names_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("[http\nport=1\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(p) in str(ei.value) and "syntax" in str(ei.value)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config(tmp_path / "nope.toml")


def test_board_defaults_and_names() -> None:
    cfg = parse_config(tomllib.loads("[[boards]]\ndata_port='/dev/ttyACM1'\n"))
    b = cfg.boards[0]
    assert b.name == "board0" and b.kind == "generic" and b.chips == 1
    assert b.safety == cfg.safety


def test_simulated_faults_parse_and_are_checked() -> None:
    cfg = parse_config(
        tomllib.loads('[simulate]\ntime_scale = 5\nfaults = [{at_s = 1.5, kind = "brownout", value = 4.2}]\n')
    )
    (f,) = cfg.simulate.faults
    assert (f.at_s, f.kind, f.value, f.board) == (1.5, "brownout", 4.2, "")
    e = _err('[[simulate.faults]]\nkind = "flood"\n')
    assert e.path == "simulate.faults[0].kind" and "overheat" in str(e)
    e = _err("[simulate]\ntime_scale = 0\n")
    assert e.path == "simulate.time_scale"


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(b"\x80[http]\n")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert str(p) in str(ei.value) and "UTF-8" in str(ei.value)
