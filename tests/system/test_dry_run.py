"""``asicrc run --dry-run``: the bytes it prints are the bytes a real bring-up sends.

The same config is dry-run (nothing opened) and then run for real: a :class:`BoardSupervisor` over serial
transports to the emulator on ptys (data and bitaxe-raw control), brought up and ramped to the first plan
point. Every byte the emulator receives is kept (a spy on its chain and firmware inputs) and compared with
the dry run: the ASIC frames (jobs aside) and the control requests of the bring-up byte for byte, and the
control writes of the first point byte for byte but for the request id (the real run interleaves telemetry
reads, which take ids). Then the command line: output decoded, JSON, no device opened."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from daemon.board_control import PartsControl, serial_factory
from daemon.config import parse_config
from daemon.dry_run import dry_run_board, first_setpoint
from daemon.events import Pipeline
from daemon.state import BoardState
from daemon.supervisor import BoardSupervisor
from drivers import bitaxe_raw_codec as br
from drivers import chipmath
from drivers.chain import REG_PLL0, REG_TICKET_MASK, ChainTiming
from drivers.frames import JobFrame, decode
from simulator.board_spec import BoardConfig as SimBoardConfig
from simulator.pty_server import SimulatedBoard

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
#: The emulator answers at once: short ESP-Miner waits for the real run (they change no byte).
SIM_TIMING = ChainTiming(
    reset_hold_s=0.02, reset_settle_s=0.02, enum_gap_s=0.3, register_timeout_s=2.0, baud_switch_delay_s=0.02
)


def _config(data: str, control: str, rate: float) -> str:
    return f"""
[timing]
control_tick_s = 0.05
job_interval_s = 0.2
telemetry_interval_s = 0.05
[[boards]]
name = "g0"
kind = "gamma"
chips = 2
baud = 1000000
data_port = "{data}"
control_port = "{control}"
[boards.safety]
freq_step_rate_mhz_s = {rate}
[[plans]]
name = "s"
kind = "sweep"
points = [[1.2, 485.0, 64.0], [1.15, 400.0, 1.0]]
"""


def frames(stream: bytes) -> list[bytes]:
    """Host frames in ``stream``, jobs left out (the real run sends work; the dry run lists none)."""
    out, pos = [], 0
    while pos < len(stream):
        frame, used = decode(stream, pos)
        assert frame is not None and used > 0, f"undecodable host bytes at {pos}: {stream[pos:].hex()}"
        if not isinstance(frame, JobFrame):
            out.append(stream[pos : pos + used])
        pos += used
    return out


def packets(stream: bytes) -> list[bytes]:
    """bitaxe-raw request packets (``len`` counts the whole packet)."""
    out, pos = [], 0
    while pos < len(stream):
        n = int.from_bytes(stream[pos : pos + 2], "little")
        assert 6 <= n <= len(stream) - pos
        out.append(stream[pos : pos + n])
        pos += n
    return out


def is_write(p: bytes) -> bool:
    return (p[4] == br.PAGE_I2C and p[5] == br.I2C_WRITE) or (p[4] == br.PAGE_GPIO and len(p) > 6)


def without_id(p: bytes) -> bytes:
    return p[:2] + b"\x00" + p[3:]


async def _real_run(cfg_text: str, sim: SimulatedBoard) -> None:
    cfg = parse_config(tomllib.loads(cfg_text))
    board = cfg.boards[0]
    sup = BoardSupervisor(
        board,
        cfg.timing,
        Pipeline(),
        BoardState(board.name, board.kind, board.chips),
        serial_factory(board.data_port),
        control=PartsControl(serial_factory(board.control_port), board.kind),
        chain_timing=SIM_TIMING,
    )
    task = asyncio.create_task(sup.run())
    try:
        async with asyncio.timeout(30):
            while not sup.connected:  # noqa: ASYNC110 - polling a plain flag of the supervisor
                await asyncio.sleep(0.01)
            assert sup.request(first_setpoint(cfg.plans[0]), 0).outcome == "applied"
            await sup.wait_ready()
            # until the emulator has read the last writes off the pty (a loaded machine delays its reader)
            pll = chipmath.pll_for_frequency(sup.applied.freq_mhz).register_value if sup.applied else -1
            while any(c.regs[REG_PLL0] != pll for c in sim.core.chips):  # noqa: ASYNC110 - plain registers
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sup.control.close()


@pytest.mark.parametrize("rate", [100_000.0, 4_000.0])  # the point in one control tick; a ramp over several
async def test_dry_run_bytes_are_the_bytes_the_emulator_receives(rate: float) -> None:
    sim = SimulatedBoard(SimBoardConfig(chips=2, seed=5, board_kind="gamma", name="g0"))
    got = {"data": bytearray(), "control": bytearray()}
    core_feed, device_feed = sim.core.feed, sim.device.feed

    def spy_core(data: bytes, t: float) -> None:
        got["data"] += data
        core_feed(data, t)

    def spy_device(data: bytes, t: float) -> bytes:
        got["control"] += data
        return device_feed(data, t)

    sim.core.feed = spy_core  # type: ignore[method-assign]
    sim.device.feed = spy_device  # type: ignore[method-assign]
    await sim.start()
    try:
        cfg_text = _config(sim.data_path, sim.control_path, rate)
        cfg = parse_config(tomllib.loads(cfg_text))
        dry = await dry_run_board(cfg, cfg.boards[0])
        assert not got["data"] and not got["control"]  # the dry run opened nothing
        await _real_run(cfg_text, sim)
    finally:
        await sim.stop()
    up = dry.sent[: dry.bring_up_writes]
    dry_up = frames(b"".join(s.data for s in up if s.port == "data"))
    dry_point = frames(b"".join(s.data for s in dry.sent[dry.bring_up_writes :] if s.port == "data"))
    dry_ctrl = [s.data for s in dry.sent if s.port == "control"]
    n_up = sum(1 for s in up if s.port == "control")
    # ASIC frames of the bring-up: equal, byte for byte
    real = frames(bytes(got["data"]))
    assert real[: len(dry_up)] == dry_up and len(dry_up) >= 25
    # the first point: in one control tick the same frames; over a ramp the intermediate PLL steps depend on
    # when the ticks really ran (the envelope ramps by elapsed time); the final PLL word and the ticket mask
    # do not
    real_point = real[len(dry_up) :]
    plls = [[f for f in fs if f[5] == REG_PLL0] for fs in (real_point, dry_point)]
    if rate >= 10_000:
        assert real_point == dry_point and len(dry_point) == 2
    else:  # a loaded machine may take fewer, longer ticks
        assert len(plls[1]) > 2 and plls[0] and plls[0][-1] == plls[1][-1]
        assert [f for f in real_point if f[5] != REG_PLL0] == [f for f in dry_point if f[5] != REG_PLL0]
    assert {f[5] for f in dry_point} == {REG_PLL0, REG_TICKET_MASK}
    # control: the bring-up requests byte for byte, then the first point's writes (ids aside)
    real_ctrl = packets(bytes(got["control"]))
    assert real_ctrl[:n_up] == dry_ctrl[:n_up] and n_up >= 5
    point_writes = [without_id(p) for p in dry_ctrl[n_up:]]
    assert point_writes, "the first point sets the core voltage"
    real_writes = [without_id(p) for p in real_ctrl[n_up:] if is_write(p)]
    assert real_writes[: len(point_writes)] == point_writes
    assert all(is_write(p) for p in dry_ctrl[n_up:])


def _cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "daemon", "run", "--dry-run", "--config", str(cfg), *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_cli_dry_run_prints_decoded_writes_and_opens_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(_config(str(missing / "ttyACM1"), str(missing / "ttyACM0"), 62.5))
    res = _cli(cfg)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("board g0 (gamma, 2 chip(s), data ")
    assert "READ_REGISTER all CHIP_ID (0x00)  [55 aa 52 05 00 00 0a]" in out
    assert "GPIO 0 = low (ASIC reset held)" in out and "I2C write 0x24 TPS546 reg 0x21" in out
    assert "first point of plan s: 1.200 V 485 MHz ticket 64 -> applied:" in out
    assert "host UART -> 1000000 baud" in out
    assert "nothing was opened" in res.stderr and not missing.exists()
    res = _cli(cfg, "--json")
    assert res.returncode == 0, res.stderr
    recs: list[dict[str, Any]] = [json.loads(line) for line in res.stdout.splitlines()]
    assert {r["stage"] for r in recs} == {"bring_up", "first_point"}
    cmds = [r["frame"] for r in recs if r["kind"] == "frame"]
    addrs = [f["chip_addr"] for f in cmds if f["cmd"] == "SET_ADDRESS"]
    assert addrs == [0x00, 0x80]  # two chips, ESP-Miner's spacing
    ramp = [r for r in recs if r["stage"] == "first_point" and r["kind"] == "frame"]
    assert len(ramp) > 5  # 62.5 MHz/s from 50 MHz: many PLL steps, one per control tick
    assert all(b["t_s"] > a["t_s"] for a, b in itertools.pairwise(ramp[1:]))  # one PLL step a tick


def test_cli_dry_run_of_a_board_the_emulator_cannot_stand_in_for_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text('[[boards]]\nname = "big"\ndata_port = "/dev/x"\nchips = 200\n')
    res = _cli(cfg)
    assert res.returncode == 1 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [
        "asicrc run: error: --dry-run: board big: cannot stand in for it: chips must be 1..128, got 200"
    ]


def test_cli_dry_run_option_misuse_is_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text('[[boards]]\nname = "b"\ndata_port = "/dev/x"\n')
    cmd = [sys.executable, "-m", "daemon", "run", "--config", str(cfg)]
    for extra, msg in (
        (["--json"], "asicrc run: error: --json goes with --dry-run"),
        (
            ["--dry-run", "--simulate", "1"],
            "asicrc run: error: --dry-run shows configured boards only; drop --simulate",
        ),
    ):
        res = subprocess.run(cmd + extra, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert (res.returncode, res.stdout, res.stderr.strip()) == (2, "", msg)
