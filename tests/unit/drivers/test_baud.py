"""Baud rates the chip can really run: 25 MHz / ((n+1) x 8); a configured rate must be within 5 % of one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.config import ConfigError, parse_config
from drivers.chipmath import BAUD_TOLERANCE, baud_problem, chip_baud, fast_uart_for_baud


def _board(baud: int) -> dict[str, object]:
    return {"boards": [{"name": "b", "kind": "gamma", "data_port": "/dev/ttyACM1", "baud": baud}]}


@pytest.mark.parametrize(
    ("baud", "chip", "reg"),
    [
        (1_000_000, 1_041_667, 0x11300200),  # ESP-Miner's rate: the chip runs 4 % faster
        (2_000_000, 1_562_500, 0x11300100),  # the case: 28 % apart, the link fails
        (3_125_000, 3_125_000, 0x11300000),
        (115_200, 115_741, 0x11301A00),
    ],
)
def test_chip_rates_literal(baud: int, chip: int, reg: int) -> None:
    assert round(chip_baud(baud)) == chip
    assert fast_uart_for_baud(baud) == reg


@pytest.mark.parametrize("baud", [115_200, 1_000_000, 1_500_000, 1_562_500, 3_000_000, 3_125_000])
def test_matching_rates_are_accepted(baud: int) -> None:
    assert baud_problem(baud) is None
    assert parse_config(_board(baud)).boards[0].baud == baud


@pytest.mark.parametrize(("baud", "near"), [(2_000_000, "1,562,500 or 3,125,000"), (921_600, "1,041,667")])
def test_a_rate_the_chip_cannot_match_is_a_config_error(baud: int, near: str) -> None:
    with pytest.raises(ConfigError, match=r"boards\[0\]\.baud") as info:
        parse_config(_board(baud))
    text = str(info.value)
    assert "25 MHz / ((n+1) x 8)" in text and "within 5%" in text and near in text


@given(st.integers(115_200, 3_125_000))
def test_accepted_means_within_tolerance(baud: int) -> None:
    off = abs(baud / chip_baud(baud) - 1.0)
    assert (baud_problem(baud) is None) == (off <= BAUD_TOLERANCE)
