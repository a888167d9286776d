"""The emulator on real ptys: chip ids, mining, faults observed from the host side, ground truth, the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import tty
from pathlib import Path

import numpy as np
import pytest

from drivers.decoder import FrameDecoder
from drivers.frames import (
    JobFrame,
    NonceReply,
    RegisterReply,
    chain_inactive,
    read_reg,
    set_address,
    write_reg,
)
from simulator.board_spec import BoardConfig
from simulator.pty_server import SimulatedBoard

pytestmark = pytest.mark.system

CHIP_ID_READ = bytes.fromhex("55 AA 52 05 00 00 0A")
ASICRC = Path(sys.executable).parent / "asicrc"


class PtyHost:
    """Host end of a pty, read without blocking the event loop; keeps (monotonic ns, bytes) per read."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.reads: list[tuple[int, bytes]] = []
        self.error: OSError | None = None
        self._event = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.fd, self._on_read)

    def _on_read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other side went away
            self.error = exc
            asyncio.get_running_loop().remove_reader(self.fd)
            self._event.set()
            return
        if not data:  # end of file: the other side hung up
            self.error = OSError("hangup")
            asyncio.get_running_loop().remove_reader(self.fd)
        else:
            self.reads.append((time.monotonic_ns(), data))
        self._event.set()

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def take(self) -> bytes:
        data = b"".join(d for _, d in self.reads)
        self.reads.clear()
        return data

    async def collect(self, seconds: float) -> bytes:
        await asyncio.sleep(seconds)
        return self.take()

    async def until(self, nbytes: int, limit_s: float = 3.0) -> bytes:
        async with asyncio.timeout(limit_s):
            while sum(len(d) for _, d in self.reads) < nbytes and self.error is None:
                self._event.clear()
                await self._event.wait()
        return self.take()

    def close(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


def frames(data: bytes, reply_len: int = 11) -> tuple[list[object], FrameDecoder]:
    dec = FrameDecoder(reply_len=reply_len)
    return [f for f, _ in dec.feed(data)], dec


async def bring_up(host: PtyHost, chips: int) -> None:
    host.write(write_reg(0xA4, 0x9000FFFF).encode() + chain_inactive().encode())
    for i in range(chips):
        host.write(set_address(i * (256 // chips)).encode())
    host.write(write_reg(0x14, 0).encode() + write_reg(0x08, 0x50C20240).encode())
    await asyncio.sleep(0.05)
    host.take()


def control_request(rid: int, page: int, cmd: int, data: bytes) -> bytes:
    body = bytes([rid, 0, page, cmd]) + data
    return (len(body) + 2).to_bytes(2, "little") + body


async def test_chip_ids_and_mining_over_a_pty() -> None:
    async with SimulatedBoard(BoardConfig(chips=4, seed=1, record_truth=True)) as board:
        host = PtyHost(board.data_path)
        try:
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.until(4 * 9), reply_len=9)
            assert len(got) == 4 and all(isinstance(f, RegisterReply) and f.value == 0x13660000 for f in got)
            await bring_up(host, 4)
            job = JobFrame(8, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x65000000)
            host.write(job.encode())
            data = await host.collect(0.5)  # ~4 chips x 101/s at difficulty 1
            nonces, dec = frames(data)
            assert len(nonces) > 50 and dec.stats.bad_frames == 0
            assert all(isinstance(n, NonceReply) and n.job_id == 8 for n in nonces)
            # Ground truth: every delivered reply, host read times close to the emulator's delivery times.
            truth = [g for g in board.ground_truth if g.frame[-1] & 0x80]
            assert len(truth) >= len(nonces)
        finally:
            host.close()


async def test_host_timestamps_against_ground_truth() -> None:
    async with SimulatedBoard(BoardConfig(chips=2, seed=2, record_truth=True)) as board:
        host = PtyHost(board.data_path)
        try:
            await bring_up(host, 2)
            host.write(JobFrame(8, bytes(32), bytes(32), 0x20000000, 0x1703A30C, 1).encode())
            await asyncio.sleep(0.5)
            reads = list(host.reads)
        finally:
            host.close()
        truth = [g for g in board.ground_truth if g.frame[-1] & 0x80]
        # Match the first reply of each read to the ground truth by bytes.
        by_frame = {g.frame: board.host_ns(g.deliver_s) for g in truth}
        errors = [t_ns - by_frame[d[:11]] for t_ns, d in reads if d[:11] in by_frame]
        assert len(errors) > 20
        assert min(errors) > -1_000_000  # never read before the emulator delivered (1 ms clock slack)
        assert float(np.median(errors)) < 50e6  # loose: a busy shared machine


async def test_faults_are_observable_from_the_host() -> None:
    async with SimulatedBoard(BoardConfig(chips=4, seed=3)) as board:
        host = PtyHost(board.data_path)
        ctrl = PtyHost(board.control_path)
        try:
            await bring_up(host, 4)
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.until(44))
            assert len(got) == 4

            board.inject({"kind": "garbage", "n": 64})
            host.write(CHIP_ID_READ)
            got, dec = frames(await host.until(64 + 44))
            assert len(got) == 4 and dec.stats.dropped_bytes >= 32

            board.inject({"kind": "crc_error", "n": 1})
            host.write(CHIP_ID_READ)
            got, dec = frames(await host.until(44))
            assert len(got) == 3 and dec.stats.bad_frames >= 1

            board.inject({"kind": "drop_bytes", "n": 11})
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.collect(0.1))
            assert len(got) == 3

            board.inject({"kind": "stuck_chip", "chip": 2})
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.collect(0.1))
            assert sorted(f.chip_addr for f in got if isinstance(f, RegisterReply)) == [0, 64, 192]
            host.write(read_reg(0x00, chip_addr=128, broadcast=False).encode())
            assert await host.collect(0.1) == b""
            board.inject({"kind": "stuck_chip", "chip": 2, "on": False})

            board.inject({"kind": "chip_reset"})
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.until(36), reply_len=9)  # reset: 9-byte replies, address 0
            assert len(got) == 4 and all(isinstance(f, RegisterReply) and f.chip_addr == 0 for f in got)

            board.inject({"kind": "overheat", "temp_c": 95.0})
            ctrl.write(control_request(1, 0x05, 0x40, bytes([0x4C, 0x01, 1])))
            reply = await ctrl.until(4)
            assert reply[:3] == bytes([1, 0, 1]) and reply[3] >= 90  # the original firmware: len = payload

            board.inject({"kind": "disconnect", "mode": "silence", "duration_s": 0.3})
            host.write(CHIP_ID_READ)
            assert await host.collect(0.1) == b""
            await asyncio.sleep(0.3)
            host.write(CHIP_ID_READ)
            assert len(frames(await host.until(36), reply_len=9)[0]) == 4

            old = board.data_path
            ack = board.inject({"kind": "disconnect", "mode": "reopen"})
            assert ack["data"] == board.data_path != old
            await asyncio.sleep(0.05)
            assert host.error is not None  # the old pty hung up
            host.close()
            host = PtyHost(board.data_path)
            host.write(CHIP_ID_READ)
            assert len(frames(await host.until(36), reply_len=9)[0]) == 4
        finally:
            host.close()
            ctrl.close()


async def test_ftdi_link_batches_reads_on_the_latency_grid() -> None:
    # One chip at difficulty 4: ~0.4 replies per 16 ms, so a 62-byte packet (6 replies) never fills and every
    # flush falls on a latency-timer tick.
    cfg = BoardConfig(chips=1, seed=4, link="ftdi", ftdi_latency_s=0.016, record_truth=True)
    async with SimulatedBoard(cfg) as board:
        host = PtyHost(board.data_path)
        try:
            await bring_up(host, 1)
            host.write(write_reg(0x14, 0x000000C0).encode())
            host.write(JobFrame(8, bytes(32), bytes(32), 0x20000000, 0x1703A30C, 1).encode())
            await asyncio.sleep(1.5)
            got, _ = frames(host.take())
        finally:
            host.close()
    truth = [g for g in board.ground_truth if g.frame[-1] & 0x80]
    assert len(truth) > 15 and len(got) >= len(truth) - 2  # the last flush may still be in flight
    deliveries = np.unique(np.round([g.deliver_s for g in truth], 9))
    steps = np.diff(deliveries) / 0.016
    assert np.allclose(steps, np.round(steps), atol=1e-6)  # on the latency-timer grid


async def test_baud_mismatch_garbles_like_a_uart() -> None:
    import serial

    async with SimulatedBoard(BoardConfig(chips=2, seed=5, check_baud=True)) as board:
        port = serial.Serial(board.data_path, 115200, timeout=0)  # sets the pty speed, as a host would
        host = PtyHost(board.data_path)
        try:
            host.write(CHIP_ID_READ)
            assert len(frames(await host.until(18), reply_len=9)[0]) == 2
            host.write(write_reg(0x28, 0x11300200).encode())  # chain -> 1.04 Mbaud, host still at 115200
            await asyncio.sleep(0.05)
            host.write(CHIP_ID_READ)
            got, _ = frames(await host.collect(0.1), reply_len=9)
            assert got == [] and board.garbled_bytes > 0
            port.baudrate = 1_000_000  # within 5 % of 1.04 M
            host.write(CHIP_ID_READ)
            assert len(frames(await host.until(18), reply_len=9)[0]) == 2
        finally:
            host.close()
            port.close()


def test_asicrc_sim_cli_serves_and_exits_cleanly() -> None:
    proc = subprocess.Popen(
        [str(ASICRC), "sim", "--chips", "4", "--seed", "1", "--stdin-control"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdin is not None
        line = json.loads(proc.stdout.readline())
        assert line["seed"] == 1 and line["difficulty_scale"] == 2.0**-28
        (board,) = line["boards"]
        assert board["data"].startswith("/dev/pts/") and board["control"].startswith("/dev/pts/")
        fd = os.open(board["data"], os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            os.write(fd, CHIP_ID_READ)
            data = b""
            deadline = time.monotonic() + 5
            while len(data) < 36 and time.monotonic() < deadline:
                data += os.read(fd, 64)
            got, _ = frames(data, reply_len=9)
            assert len(got) == 4
        finally:
            os.close(fd)
        proc.stdin.write(json.dumps({"board": 0, "kind": "garbage", "n": 5}) + "\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["ok"] is True
        proc.stdin.write('{"kind": "nope"}\n')
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline())["ok"] is False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
