"""Fuzz the config loader: random TOML values under real and made-up keys, and random file bytes.

The only error allowed is :class:`daemon.config.ConfigError`, whose ``path`` names a key that is in the
document (or the file, for unreadable/syntax errors) and whose message contains that path.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.config import (
    BoardConfig,
    Config,
    ConfigError,
    HttpConfig,
    MqttConfig,
    PlanConfig,
    RecorderConfig,
    SafetyLimits,
    SimFault,
    SimulateConfig,
    TimingConfig,
    load_config,
    parse_config,
)

SECTIONS: dict[str, type[Any]] = {
    "safety": SafetyLimits,
    "recorder": RecorderConfig,
    "http": HttpConfig,
    "mqtt": MqttConfig,
    "timing": TimingConfig,
    "simulate": SimulateConfig,
}


def _keys(cls: type[Any]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.sampled_from([0, 1, 1.2, 485.0, 1e9, -1, "discover", "sweep", "hold", "modulate", "gamma", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


def table(cls: type[Any], extra: dict[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[Any]:
    """A dict with some of ``cls``'s keys (random values) and sometimes a made-up key."""
    keys = st.sampled_from(_keys(cls)) | st.text(min_size=1, max_size=8)
    base = st.dictionaries(keys, values, max_size=4)
    if not extra:
        return base
    return st.tuples(base, st.fixed_dictionaries({}, optional=extra)).map(lambda t: {**t[0], **t[1]})


points = st.lists(st.lists(st.floats(0.5, 2000) | st.integers(-5, 600), max_size=4), max_size=3)
documents = st.fixed_dictionaries(
    {},
    optional={
        **{name: table(cls) | values for name, cls in SECTIONS.items()},
        "boards": st.lists(table(BoardConfig, {"safety": table(SafetyLimits)}), max_size=3) | values,
        "plans": st.lists(table(PlanConfig, {"points": points}), max_size=3) | values,
        "state_dir": values,
        "bogus": values,
    },
)


def _check_error(exc: ConfigError, doc: dict[str, Any]) -> None:
    top = re.split(r"[.\[]", exc.path, maxsplit=1)[0]
    assert top in doc, (exc.path, list(doc))
    assert exc.path in str(exc)


@settings(max_examples=400)
@given(documents)
def test_random_documents_are_accepted_or_refused_naming_the_key(doc: dict[str, Any]) -> None:
    try:
        cfg = parse_config(doc)
    except ConfigError as exc:
        _check_error(exc, doc)
    else:
        assert isinstance(cfg, Config)
        for b in cfg.boards:  # whatever got through is inside the hard limits
            assert 1.0 <= b.safety.core_voltage_min_v <= b.safety.core_voltage_max_v <= 1.4
            assert 50.0 <= b.safety.freq_min_mhz <= b.safety.freq_max_mhz <= 1200.0


@settings(max_examples=200)
@given(st.sampled_from(list(SECTIONS)), st.data())
def test_one_bad_value_names_its_key(section: str, data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(_keys(SECTIONS[section])))
    value = data.draw(values)
    doc = {section: {key: value}}
    try:
        parse_config(doc)
    except ConfigError as exc:
        assert exc.path.startswith(f"{section}.{key}") or exc.path.startswith(f"{section}."), exc.path
        assert exc.path in str(exc)


@settings(max_examples=60)
@given(st.lists(st.sampled_from(_keys(SimFault)), max_size=3), st.data())
def test_simulated_faults_list(keys: list[str], data: st.DataObject) -> None:
    faults = [{k: data.draw(values) for k in keys}]
    try:
        parse_config({"simulate": {"faults": faults}})
    except ConfigError as exc:
        assert exc.path.startswith("simulate.faults")


toml_fragments = st.sampled_from(
    [
        "[safety]\n",
        "[[boards]]\n",
        "[[plans]]\n",
        "name = 'x'\n",
        "freq_max_mhz = 600\n",
        "= 1\n",
        "points = [[1.2, 485, 1]]\n",
        "kind = 'sweep'\n",
        '"\\u00e9" = 1\n',
        "[timing]\ncontrol_tick_s = 0\n",
        'x = "\n',
        "a.b.c = 1\n",
        "[http]\nport = 99999\n",
    ]
)


@settings(max_examples=300)
@given(st.lists(toml_fragments | st.binary(max_size=12).map(lambda b: b.decode("latin-1")), max_size=8))
def test_random_files_give_config_errors_only(tmp_path_factory: Any, parts: list[str]) -> None:
    path = Path(tmp_path_factory.mktemp("cfg")) / "asicrc.toml"
    path.write_text("".join(parts), encoding="utf-8")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.path in str(exc)


@settings(max_examples=100)
@given(st.binary(max_size=64))
def test_raw_bytes_files_give_config_errors_only(tmp_path_factory: Any, blob: bytes) -> None:
    """Not UTF-8 is a config error naming the file, not a UnicodeDecodeError."""
    path = Path(tmp_path_factory.mktemp("cfg")) / "asicrc.toml"
    path.write_bytes(blob)
    try:
        load_config(path)
    except ConfigError as exc:
        assert str(path) in str(exc) or exc.path in str(exc)
