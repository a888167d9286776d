"""Chip math on the literal values of docs/protocol.md, plus search invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.chipmath import (
    DIFF1_TARGET,
    FB_DIV_MAX,
    FB_DIV_MIN,
    REACHABLE_MHZ,
    SMALL_CORES_PER_CHIP,
    PllSetting,
    UnreachableFrequency,
    baud_from_fast_uart,
    bt8d_for_baud,
    difficulty_from_ticket_mask,
    expected_nonce_rate,
    fast_uart_for_baud,
    fast_uart_value,
    frequency_from_pll,
    frequency_ramp,
    hash_counting_number,
    hashrate_ghs,
    nextpow2,
    pll_for_frequency,
    ticket_mask,
    version_rolling_value,
)


@pytest.mark.parametrize(
    ("freq", "data"),
    [(485, "50 C2 02 40"), (525, "40 A8 02 30"), (200, "40 A0 02 41")],
)
def test_pll_literals(freq: float, data: str) -> None:
    setting = pll_for_frequency(freq)
    assert setting.data_bytes == bytes.fromhex(data)
    assert setting.register_value == int.from_bytes(bytes.fromhex(data), "big")
    assert setting.freq_mhz == freq
    assert frequency_from_pll(setting.register_value) == freq


def test_pll_485_details() -> None:
    s = pll_for_frequency(485)
    assert s == PllSetting(fb_div=194, refdiv=2, postdiv1=5, postdiv2=1)
    assert s.vco_mhz == 2425.0  # >= 2400 MHz: first byte 0x50


def test_reset_pll_register_is_50_mhz() -> None:
    assert frequency_from_pll(0xC0540165) == 50.0


def test_unreachable_frequency_names_neighbours() -> None:
    with pytest.raises(UnreachableFrequency) as err:
        pll_for_frequency(20.0)
    assert err.value.below is None
    assert err.value.above == REACHABLE_MHZ[0]
    assert f"{REACHABLE_MHZ[0]:.4g} MHz" in str(err.value)
    # Between two reachable frequencies with a tight tolerance: both neighbours are named.
    lo, hi = REACHABLE_MHZ[0], REACHABLE_MHZ[1]
    mid = (lo + hi) / 2
    with pytest.raises(UnreachableFrequency) as err:
        pll_for_frequency(mid, tolerance_mhz=0.01)
    assert (err.value.below, err.value.above) == (lo, hi)
    assert f"{lo:.4g} MHz" in str(err.value) and f"{hi:.4g} MHz" in str(err.value)
    assert isinstance(err.value, ValueError)


@given(st.floats(min_value=45.0, max_value=1200.0))
def test_pll_search_is_the_closest_then_lowest_vco(freq: float) -> None:
    s = pll_for_frequency(freq, tolerance_mhz=100.0)
    assert FB_DIV_MIN <= s.fb_div <= FB_DIV_MAX
    assert s.refdiv in (1, 2) and 1 <= s.postdiv2 < s.postdiv1 <= 7
    best = min(abs(f - freq) for f in REACHABLE_MHZ)
    assert abs(s.freq_mhz - freq) == pytest.approx(best, abs=1e-9)
    # Brute force: no other setting at the same distance has a lower VCO.
    for refdiv in (1, 2):
        for p1 in range(2, 8):
            for p2 in range(1, p1):
                for fb in range(FB_DIV_MIN, FB_DIV_MAX + 1):
                    other = PllSetting(fb, refdiv, p1, p2)
                    if abs(other.freq_mhz - freq) < abs(s.freq_mhz - freq) - 1e-9:
                        raise AssertionError(f"{other} is closer than {s}")
                    if abs(abs(other.freq_mhz - freq) - abs(s.freq_mhz - freq)) < 1e-9:
                        assert other.vco_mhz >= s.vco_mhz - 1e-9


@given(st.integers(0, 0xFFFFFFFF))
def test_pll_register_round_trip(value: int) -> None:
    s = PllSetting.from_register(value)
    if s.refdiv:
        assert frequency_from_pll(value) == pytest.approx(s.freq_mhz)
    assert PllSetting.from_register(s.register_value) == s


def test_ticket_masks() -> None:
    assert ticket_mask(256) == 0x000000FF
    assert ticket_mask(512) == 0x000080FF
    assert ticket_mask(1024) == 0x0000C0FF
    assert ticket_mask(1) == 0
    assert ticket_mask(1000) == ticket_mask(512)  # rounds down to a power of two
    with pytest.raises(ValueError):
        ticket_mask(0)


@given(st.integers(0, 32))
def test_ticket_mask_round_trip(k: int) -> None:
    assert difficulty_from_ticket_mask(ticket_mask(2**k)) == 2**k


def test_version_rolling_and_fast_uart() -> None:
    assert version_rolling_value() == 0x9000FFFF
    assert version_rolling_value(0) == 0x90000000
    assert fast_uart_value(2) == 0x11300200
    assert fast_uart_for_baud(1_000_000) == 0x11300200
    assert baud_from_fast_uart(0x11300200) == pytest.approx(1_041_666.67, rel=1e-6)
    assert baud_from_fast_uart(0x01301A00) == pytest.approx(115_740.74, rel=1e-6)
    assert baud_from_fast_uart(fast_uart_value(0)) == 3_125_000
    assert bt8d_for_baud(3_125_000) == 0
    with pytest.raises(ValueError):
        fast_uart_value(256)


def test_hash_counting_number() -> None:
    assert nextpow2(1) == 1 and nextpow2(3) == 4 and nextpow2(4) == 4
    # ESP-Miner: (2^32 / 128 / nextpow2(chips)) * 25 / f * 0.5
    assert hash_counting_number(1, 485) == int((2**32 / 128) * 25 / 485 * 0.5)
    assert hash_counting_number(3, 485) == hash_counting_number(4, 485)
    assert hash_counting_number(1, 50) == 2**32 // 128 // 4


def test_frequency_ramp() -> None:
    assert frequency_ramp(50, 75) == [56.25, 62.5, 68.75, 75.0]
    assert frequency_ramp(50, 60) == [56.25, 60.0]
    assert frequency_ramp(53, 40) == [50.0, 43.75, 40.0]
    assert frequency_ramp(100, 100) == []
    ramp = frequency_ramp(50, 485)
    assert ramp[-1] == 485 and all(b - a <= 6.25 + 1e-9 for a, b in zip([50.0, *ramp], ramp))
    for f in ramp:
        pll_for_frequency(f)  # every step is reachable within 1 MHz


def test_rates() -> None:
    assert expected_nonce_rate(485, 1) == pytest.approx(101, rel=0.01)
    assert expected_nonce_rate(485, 256) == pytest.approx(0.39, rel=0.02)
    assert hashrate_ghs(485) == pytest.approx(433.6, rel=1e-3)
    assert SMALL_CORES_PER_CHIP == 894
    assert DIFF1_TARGET == 0x00000000FFFF0000000000000000000000000000000000000000000000000000
    assert math.isclose(expected_nonce_rate(485, 2) * 2, expected_nonce_rate(485, 1))
