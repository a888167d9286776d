"""Driver stack end to end over real ptys: the serial transport, then bring-up against ``asicrc sim``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tty
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from drivers import chipmath
from drivers.bitaxe_raw import BitaxeRaw
from drivers.chain import Chain, ChainTiming
from drivers.frames import JobFrame, NonceReply
from drivers.parts import board_power
from drivers.read_decoder import ReadDecoder
from drivers.transport import SerialTransport, TransportClosed, TransportError

pytestmark = pytest.mark.system

ASICRC = Path(sys.executable).with_name("asicrc")
#: Bounded waits (s): sim start-up (imports numpy etc.), each nonce, shutdown.
START_TIMEOUT_S = 30.0
NONCE_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
#: The emulator answers at once: shrink the ESP-Miner waits (the gap still has to cover scheduling jitter).
SIM_TIMING = ChainTiming(
    reset_hold_s=0.02,
    reset_settle_s=0.02,
    enum_gap_s=0.3,
    ramp_step_delay_s=0.002,
    register_timeout_s=2.0,
    baud_switch_delay_s=0.02,
)


async def test_serial_transport_on_a_pty() -> None:
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    t = SerialTransport(path, reset_pin="dtr")
    try:
        await t.open()
        assert t.is_open
        os.write(master, b"\xaa\x55hello")
        batch = await asyncio.wait_for(t.read(), 5.0)
        assert batch.data == b"\xaa\x55hello" and batch.read_id == 0 and batch.t_host_ns > 0
        await t.write(b"\x55\xaa" * 100)
        got = b""
        for _ in range(100):
            if len(got) >= 200:
                break
            await asyncio.sleep(0.01)
            with contextlib.suppress(BlockingIOError):
                got += os.read(master, 4096)
        assert got == b"\x55\xaa" * 100
        await t.set_baud(1_000_000)
        assert t.baud == 1_000_000
        # ptys may refuse modem-line ioctls: either the pin works, or it is switched off (no crash, no retry)
        assert t.has_reset
        try:
            await t.set_reset(True)
        except TransportError:
            assert not t.has_reset
            with pytest.raises(TransportError, match="no usable reset line"):
                await t.set_reset(False)
        # a decoded frame from the pty, timestamped
        reply = NonceReply(0x12345678, 0, 0x28, 0x0001).encode()
        os.write(master, reply)
        batch = await asyncio.wait_for(t.read(), 5.0)
        cols = ReadDecoder().decode([batch], t.baud).nonces
        assert cols.nonce.tolist() == [0x12345678] and cols.job_id.tolist() == [0x28]
        assert cols.read_id.tolist() == [1] and cols.t_ns.tolist() == cols.t_wire_ns.tolist() == [
            batch.t_host_ns
        ]
    finally:
        await t.close()
        os.close(master)
        os.close(slave)
    with pytest.raises(TransportClosed):
        await t.read()


async def test_serial_transport_reports_lost_pty() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    t = SerialTransport(path)
    await t.open()
    os.close(slave)
    os.close(master)  # hang-up: the next read fails with EIO
    with pytest.raises(TransportClosed):
        await asyncio.wait_for(t.read(), 5.0)
    assert not t.is_open
    await t.close()


@pytest.fixture
async def sim() -> AsyncIterator[dict[str, Any]]:
    if not ASICRC.exists():
        pytest.fail(f"{ASICRC} missing: install the project (make venv)")
    proc = await asyncio.create_subprocess_exec(
        str(ASICRC),
        "sim",
        "--chips",
        "4",
        "--seed",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)
        if not line:
            assert proc.stderr is not None
            err = await proc.stderr.read()
            pytest.fail(f"asicrc sim exited before printing its ptys: {err.decode(errors='replace')[-2000:]}")
        yield json.loads(line)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def test_bring_up_jobs_and_board_power_against_the_emulator(sim: dict[str, Any]) -> None:
    board = sim["boards"][0]
    data = SerialTransport(board["data"])
    ctrl_t = SerialTransport(board["control"])
    await data.open()
    await ctrl_t.open()
    try:
        control = BitaxeRaw(ctrl_t, timeout_s=2.0)
        async with Chain(data, reset=control, timing=SIM_TIMING) as chain:
            info = await chain.bring_up(freq_mhz=485.0, ticket_difficulty=256, baud=1_000_000)
            assert info.chip_count == 4
            assert info.addresses == (0, 64, 128, 192)
            assert info.chip_ids == (0x1366,) * 4
            assert info.baud == 1_000_000 and info.freq_mhz == pytest.approx(485.0)

            assert await chain.read_register(2, 0x14) == chipmath.ticket_mask(256)
            assert await chain.read_register(3, 0x08) == chipmath.pll_for_frequency(485.0).register_value
            await chain.write_register(0x54, 0x00000007, chip=1)
            assert await chain.read_register(1, 0x54) == 0x00000007
            assert await chain.read_register(0, 0x54) == 0x00000003

            job = JobFrame(0x08, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x64000000)
            await chain.send_job(job)
            first = await chain.next_nonce(timeout_s=NONCE_TIMEOUT_S)
            assert isinstance(first.frame, NonceReply) and first.frame.job_id == 0x08
            assert first.t_wire_ns <= first.t_ns
            assert await chain.read_hash_counter(0) >= 0

            power = board_power(sim.get("board_kind", "gamma"), control)
            await power.start()  # start-up configuration over bitaxe-raw, read back
            await power.set_core_voltage(1.15)
            await asyncio.sleep(0.2)  # let the emulated regulator settle
            tel = await power.read_telemetry()
            assert tel.vin == pytest.approx(5.0, abs=0.1)
            assert tel.vout == pytest.approx(1.15, abs=0.05)
            assert tel.chip_temp_c is not None and 0.0 < tel.chip_temp_c < 120.0
            assert tel.fan_pct is not None and 0.0 <= tel.fan_pct <= 100.0
            assert await control.read_vdd_mv() > 0
    finally:
        await data.close()
        await ctrl_t.close()
