"""Link health on its own: silence never counts time the loop was late, one probe at half the timeout, a
board held in reset is not silent, CRC storms (injected times, no sleeps)."""

from __future__ import annotations

import pytest

from daemon.link_health import HealthError, LinkHealth

S = 1_000_000_000  # ns per second


def test_silence_asks_for_one_probe_then_fails() -> None:
    h = LinkHealth(0, 2 * S, crc_storm_per_s=100.0)
    assert h.check(S // 2, 0, held=False) is False
    assert h.check(S + 1, 0, held=False) is True  # past half the timeout: one probe
    assert h.check(S + 2, 0, held=False) is False  # not twice
    with pytest.raises(HealthError, match=r"no bytes for 2\.0 s"):
        h.check(2 * S + 1, 0, held=False)


def test_bytes_reset_the_silence_and_the_probe() -> None:
    h = LinkHealth(0, 2 * S, crc_storm_per_s=100.0)
    assert h.check(S + 1, 0, held=False) is True
    h.saw_bytes(S + 2)
    assert h.quiet_ns(S + 2) == 0
    assert h.check(2 * S + 3, 0, held=False) is True  # a new probe after the next quiet half


def test_a_late_loop_is_not_silence_and_a_held_board_is_never_silent() -> None:
    h = LinkHealth(0, 2 * S, crc_storm_per_s=100.0)
    h.loop_late(5 * S)  # the process did not run for 5 s
    assert h.quiet_ns(6 * S) == S and h.check(6 * S + 1, 0, held=False) is True
    h.restart(0, 0)
    assert h.check(10 * S, 0, held=True) is False


def test_the_reader_threads_view_of_silence_bounds_the_loops() -> None:
    h = LinkHealth(0, 2 * S, crc_storm_per_s=100.0)
    h.restart(0, 0, reader_quiet=lambda: 0)  # the thread saw bytes the loop has not taken yet
    assert h.check(10 * S, 0, held=False) is False


def test_a_crc_storm_fails_after_a_one_second_window() -> None:
    h = LinkHealth(0, 100 * S, crc_storm_per_s=100.0)
    h.saw_bytes(S)
    assert h.check(S // 2, 1_000, held=False) is False  # the window is not over yet
    h.check(S, 50, held=False)  # 50 bad frames in 1 s: fine, the window restarts
    with pytest.raises(HealthError, match="CRC storm: 150 bad frames/s"):
        h.check(2 * S, 200, held=False)
