"""A plan asking for a setpoint outside the envelope of a board it runs on is refused at load, naming it."""

from __future__ import annotations

from typing import Any

import pytest

from daemon.config import ConfigError, parse_config

BOARD = {"name": "g0", "kind": "gamma", "data_port": "/dev/null"}
LOW = {"name": "low", "kind": "gamma", "data_port": "/dev/null", "safety": {"core_voltage_max_v": 1.15}}


@pytest.mark.parametrize(
    ("plan", "boards", "key", "words"),
    [
        (
            {"kind": "sweep", "points": [[1.2, 485.0, 1.0], [5.0, 485.0, 1.0]]},
            [],
            "plans[0].points[1]",
            "5 V",
        ),
        ({"kind": "sweep", "points": [[1.2, 900.0, 1.0]]}, [BOARD], "plans[0].points[0]", "900 MHz"),
        (
            {"kind": "sweep", "voltage_v": [1.2, 1.35], "freq_mhz": [485.0], "ticket_diff": [1.0]},
            [],
            "plans[0].voltage_v[1]",
            "1.35 V",
        ),
        ({"kind": "hold", "hold_voltage_v": 1.2}, [BOARD, LOW], "plans[0].hold_voltage_v", "board 'low'"),
        ({"kind": "modulate", "input": [0.5], "freq_hi_mhz": 600.0}, [], "plans[0].freq_hi_mhz", "600 MHz"),
    ],
)
def test_out_of_envelope_plan_points_are_refused(
    plan: dict[str, Any], boards: list[dict[str, Any]], key: str, words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"boards": boards, "plans": [{"name": "p", **plan}]})
    assert err.value.path == key
    assert words in str(err.value) and "outside the safety envelope" in str(err.value)


def test_a_plan_for_other_boards_is_checked_against_those_only() -> None:
    plan = {"name": "p", "kind": "hold", "hold_voltage_v": 1.2, "boards": ["g0"]}
    cfg = parse_config({"boards": [BOARD, LOW], "plans": [plan]})  # low's 1.15 V cap does not apply
    assert cfg.plans[0].boards == ("g0",)
