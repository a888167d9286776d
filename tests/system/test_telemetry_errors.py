"""A failed telemetry read does not drop the data link (daemon subprocess, emulated board on ptys).

The emulated bitaxe-raw firmware NACKs the regulator's reads on request (fault ``i2c_nack``): a single failed
read is counted (``asicrc_telemetry_errors_total``) and the board keeps streaming nonces; only a run of
failures (:data:`daemon.supervisor.TELEMETRY_FAILURES_MAX`) is a lost board, which reconnects and mines again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from daemon.config import SimulateConfig, parse_config
from daemon.telemetry_loop import TELEMETRY_FAILURES_MAX
from simulator.bitaxe_raw import FIRMWARES
from tests.system.daemon_child import HOLD, Child, _nonces, assert_no_loss

pytestmark = pytest.mark.system


def test_a_telemetry_error_keeps_the_board_streaming(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    c.inject({"kind": "i2c_nack", "addr": 0x24, "n": 1})
    c.wait_for(lambda: c.metric("asicrc_telemetry_errors_total") >= 1)
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 20)  # still mining on the same link
    assert c.metric("asicrc_reconnects_total") == 0
    assert c.metric("asicrc_board_up", board="sim0") == 1.0
    c.wait_for(lambda: c.status()["boards"]["sim0"]["power_w"] is not None)  # readings again
    err = c.stop()
    assert "I2C WriteRead Error" in err  # the one warning names the firmware's error
    (run,) = c.runs()
    final = assert_no_loss(c, run)
    assert final["boards"]["sim0"]["telemetry_errors"] == 1


def test_a_run_of_telemetry_errors_is_a_lost_board(child_factory: Callable[..., Child]) -> None:
    c = child_factory(HOLD)
    c.wait_for(lambda: _nonces(c) > 20)
    c.inject({"kind": "i2c_nack", "addr": 0x24, "n": TELEMETRY_FAILURES_MAX})
    c.wait_for(lambda: c.metric("asicrc_reconnects_total") >= 1)
    assert c.metric("asicrc_telemetry_errors_total") >= TELEMETRY_FAILURES_MAX
    before = _nonces(c)
    c.wait_for(lambda: _nonces(c) > before + 20)  # back up and mining
    err = c.stop()
    assert "board sim0: lost" in err and "I2C WriteRead Error" in err


@pytest.mark.parametrize("variant", list(FIRMWARES))
def test_the_daemon_runs_each_bitaxe_raw_variant(child_factory: Callable[..., Child], variant: str) -> None:
    """Bring-up, setpoints and telemetry over each published firmware's reply bytes ([simulate] option)."""
    extra = HOLD + f'\n[simulate]\nraw_firmware = "{variant}"\n'
    assert parse_config({"simulate": {"raw_firmware": variant}}).simulate.raw_firmware == variant
    c = child_factory(extra)
    c.wait_for(lambda: _nonces(c) > 20)
    c.wait_for(lambda: c.status()["boards"]["sim0"]["power_w"] is not None)
    c.stop()
    final = c.final()
    assert final["boards"]["sim0"]["telemetry_errors"] == 0 and final["boards"]["sim0"]["reconnects"] == 0


def test_the_config_knows_every_emulated_variant() -> None:
    meta = SimulateConfig.__dataclass_fields__["raw_firmware"].metadata
    assert set(meta["choices"]) == set(FIRMWARES)
