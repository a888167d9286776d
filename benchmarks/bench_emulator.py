"""Emulator throughput: share-valid replies/s of the core, firehose replies/s through ptys, real-time factor.

Run: ``.venv/bin/python benchmarks/bench_emulator.py [--json] [--seconds S]``. Figures are wall-clock on
this machine (noisy when the machine is shared); each row says what it measured and its target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import time
import tty
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.frames import JobFrame, chain_inactive, set_address, write_reg
from simulator.board_spec import BoardConfig
from simulator.chain import ChainCore
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.pty_server import SimulatedBoard

#: One 3.125 Mbaud link at line rate: 3.125e6 / 110 bits per 11-byte reply (docs/protocol.md "Rates").
LINK_REPLIES_PER_S = 3.125e6 / 110
#: Reader warm-up (s): bytes queued while the reader process started are not counted.
WARMUP_S = 1.0
JOB = JobFrame(8, bytes(range(32)), bytes(range(32, 64)), 0x20000000, 0x1703A30C, 0x65000000)


def brought_up(chips: int, ticket_mask: int, seed: int = 1) -> tuple[ChainCore, float]:
    """A core after an ESP-Miner-like bring-up at 485 MHz, with a job; returns (core, time)."""
    core = ChainCore(chips=chips, seed=seed)
    t = 0.0
    frames = [write_reg(0xA4, 0x9000FFFF).encode(), chain_inactive().encode()]
    frames += [set_address(i * (256 // chips)).encode() for i in range(chips)]
    frames += [write_reg(0x14, ticket_mask).encode(), write_reg(0x08, 0x50C20240).encode(), JOB.encode()]
    for f in frames:
        t += 1e-3
        core.feed(f, t)
    core.advance(t)
    return core, t


def bench_share_valid(seconds: float) -> dict[str, Any]:
    """Share-valid replies per wall second: 128 chips at ticket difficulty 1 (12,900 replies per sim s)."""
    core, t = brought_up(128, 0)
    n = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        t += 0.05
        n += len(core.advance(t))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return _row("share-valid replies/s (core, 1 CPU)", n / wall, LINK_REPLIES_PER_S, wall, cpu)


def bench_realtime(seconds: float, ticket_mask: int, label: str) -> dict[str, Any]:
    """Simulated seconds per wall second with 128 chips at 485 MHz."""
    core, t = brought_up(128, ticket_mask)
    t0 = t
    start, cpu0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        t += 0.05
        core.advance(t)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return _row(f"real-time factor, 128 chips, {label}", (t - t0) / wall, 1.0, wall, cpu)


def _row(name: str, value: float, target: float, wall: float, cpu: float) -> dict[str, Any]:
    """One result; ``per_cpu`` rescales ``value`` by the CPU share this process got (a shared machine)."""
    share = cpu / wall
    return {"name": name, "value": value, "target": target, "cpu_share": share, "per_cpu": value / share}


def _reader(paths: list[str], seconds: float, conn: Any) -> None:
    """Plain blocking reader in another process: count bytes from every pty for ``seconds``."""
    import selectors

    sel = selectors.DefaultSelector()
    fds = []
    for p in paths:
        fd = os.open(p, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        fds.append(fd)
        sel.register(fd, selectors.EVENT_READ)
    conn.send("ready")
    total = 0
    warmup = time.perf_counter() + WARMUP_S  # drain what queued before this reader opened the ptys
    while time.perf_counter() < warmup:
        for key, _ in sel.select(timeout=0.1):
            os.read(key.fd, 1 << 16)
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds:
        for key, _ in sel.select(timeout=0.1):
            total += len(os.read(key.fd, 1 << 16))
    conn.send((total, now - start))
    for fd in fds:
        os.close(fd)


async def _recv(conn: Any) -> Any:
    """Receive from a multiprocessing pipe without blocking the event loop (the boards keep serving)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(conn.fileno(), ready.set)
    try:
        await ready.wait()
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


async def _firehose(boards: int, seconds: float) -> dict[str, Any]:
    rate = 1.2 * LINK_REPLIES_PER_S  # saturate each 3.125 Mbaud link
    sims = [
        SimulatedBoard(BoardConfig(chips=4, seed=i, firehose_rate=rate, name=f"b{i}")) for i in range(boards)
    ]
    for s in sims:
        await s.start()
    try:
        for s in sims:  # the host turns on rolling (11-byte replies) and 3.125 Mbaud; in-process for brevity
            s.core.feed(
                write_reg(0xA4, 0x9000FFFF).encode() + write_reg(0x28, 0x11300000).encode(), s.sim_now()
            )
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_reader, args=([s.data_path for s in sims], seconds, child))
        proc.start()
        await _recv(parent)
        start, cpu0 = time.perf_counter(), time.process_time()
        total, wall = await _recv(parent)
        span, cpu = time.perf_counter() - start, time.process_time() - cpu0
        proc.join()
    finally:
        for s in sims:
            await s.stop()
    name = f"firehose replies/s through {boards} ptys"
    return _row(name, total / 11 / wall, 4 * LINK_REPLIES_PER_S, span, cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    ap.add_argument("--seconds", type=float, default=3.0, help="wall seconds per measurement")
    ap.add_argument("--boards", type=int, default=4, help="ptys (3.125 Mbaud links) in the firehose run")
    args = ap.parse_args()
    rows = [
        bench_share_valid(args.seconds),
        asyncio.run(_firehose(args.boards, args.seconds)),
        bench_realtime(args.seconds, 0x000000FF, "ticket difficulty 256"),
        bench_realtime(args.seconds, 0, "ticket difficulty 1"),
    ]
    meta = {"difficulty_scale": DEFAULT_DIFFICULTY_SCALE, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps({"results": rows, **meta}))
        return 0
    print(f"{'measurement':<52} {'value':>10} {'target':>10} {'ratio':>6} {'cpu':>5} {'per CPU-s':>10}")
    for r in rows:
        ratio = r["value"] / r["target"]
        print(
            f"{r['name']:<52} {r['value']:>10,.1f} {r['target']:>10,.1f} {ratio:>6.2f}"
            f" {r['cpu_share']:>5.2f} {r['per_cpu']:>10,.1f}"
        )
    print("cpu = CPU share the emulator process got (1.0 = a whole core); per CPU-s = value / cpu share")
    print(f"difficulty scale {DEFAULT_DIFFICULTY_SCALE:.3g} (2^-28)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
