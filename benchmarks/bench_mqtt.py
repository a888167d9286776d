"""MQTT event throughput to a local mosquitto: events/s end to end (MqttBridge -> broker -> subscriber) for
several batch sizes (rows per Arrow IPC message), and the collector's ingest rate (decode + relabel + queue).

The script starts its own mosquitto on a free 127.0.0.1 port (config in a temp dir) and stops it at the end.
Reference: one BM1366 link at line rate is ~28,400 replies/s (docs/protocol.md, 3.125 Mbaud).

Run: .venv/bin/python benchmarks/bench_mqtt.py [--events N] [--rows 256,512,1024,2048] [--qos 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pyarrow as pa

from daemon.collect import Collector
from daemon.events import make_event_batch
from daemon.mqtt import MqttBridge, MqttSettings, encode_events

#: One BM1366 chain at 3.125 Mbaud: 11-byte replies per second (docs/protocol.md "Rates").
LINE_RATE = 28_400


def event_batch(n: int, seed: int = 0) -> pa.RecordBatch:
    """A realistic batch: increasing timestamps, random nonces/cores, 4 chips."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.exponential(35_000, n)).astype(np.int64)
    return make_event_batch(
        "sim0",
        t_host_ns=t,
        t_ns=t - 3000,
        chip=rng.integers(0, 4, n),
        core=rng.integers(0, 112, n),
        small_core=rng.integers(0, 8, n),
        job_id=rng.integers(0, 32, n) * 8,
        nonce=rng.integers(0, 2**32, n, dtype=np.uint32),
        version_bits=rng.integers(0, 2**16, n),
        share_diff=rng.exponential(2.0, n),
        valid=rng.random(n) > 0.01,
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=1.0,
        read_id=np.arange(n) // 4,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mosquitto(nodelay: bool = False) -> Iterator[int]:
    """A throwaway anonymous broker on a free loopback port; yields the port. ``nodelay``: the broker sets
    TCP_NODELAY (mosquitto's ``set_tcp_nodelay``; off by default, so Nagle delays small messages)."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        conf = Path(tmp) / "mosquitto.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false", "user root"]
        if nodelay:
            lines.append("set_tcp_nodelay true")
        conf.write_text("\n".join(lines) + "\n")
        proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("mosquitto did not start") from None
                    time.sleep(0.02)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=5)


async def end_to_end(port: int, rows: int, events: int, qos: int) -> dict[str, Any]:
    """Publish ``events`` rows in batches of ``rows`` through an MqttBridge; time until all are received."""
    batch = event_batch(rows)
    n_msgs = max(1, events // rows)
    settings = MqttSettings(
        port=port, host_id="bench", status_interval_s=3600.0, buffer_messages=n_msgs + 10, qos=qos
    )
    bridge = MqttBridge(settings, status=dict)
    got = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-sub") as sub:
        await sub.subscribe("asicrc/bench/events/+", qos=qos)
        task = asyncio.create_task(bridge.run())
        try:
            async with asyncio.timeout(10):
                while not bridge.stats.connected:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            start = time.perf_counter()
            for _ in range(n_msgs):
                bridge.publish_events("sim0", batch)
            async with asyncio.timeout(300):
                async for _msg in sub.messages:
                    got += 1
                    if got == n_msgs:
                        break
            dt = time.perf_counter() - start
        finally:
            await bridge.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    size = len(encode_events(batch))
    return {
        "rows_per_msg": rows,
        "messages": n_msgs,
        "events_per_s": n_msgs * rows / dt,
        "msgs_per_s": n_msgs / dt,
        "bytes_per_row": size / rows,
        "mbyte_per_s": n_msgs * size / dt / 1e6,
        "x_line_rate": n_msgs * rows / dt / LINE_RATE,
    }


async def collector_ingest(rows: int, events: int) -> float:
    """Rows/s through Collector.handle (Arrow decode, board relabel, recorder queue; no disk writes)."""
    payload = encode_events(event_batch(rows))
    n_msgs = max(1, events // rows)
    with tempfile.TemporaryDirectory() as tmp:
        col = Collector(Path(tmp) / "rec", queue=n_msgs + 1)
        start = time.perf_counter()
        for _ in range(n_msgs):
            col.handle("asicrc/bench/events/sim0", payload)
        dt = time.perf_counter() - start
    return n_msgs * rows / dt


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    out = []
    with mosquitto() as port:
        for rows in args.rows:
            runs = [await end_to_end(port, rows, args.events, args.qos) for _ in range(args.repeats)]
            r = sorted(runs, key=lambda x: x["events_per_s"])[len(runs) // 2]  # the median run
            r["collector_rows_per_s"] = float(
                np.median([await collector_ingest(rows, args.events) for _ in range(args.repeats)])
            )
            out.append(r)
            print(f"  {rows} rows/msg done", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=400_000, help="events per batch size (default 400k)")
    ap.add_argument("--rows", default="256,512,1024,2048", help="rows per message, comma separated")
    ap.add_argument("--qos", type=int, default=1, choices=(0, 1), help="MQTT QoS (the bridge uses 1)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per batch size; the median is shown")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    args.rows = [int(r) for r in args.rows.split(",")]
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps({"benchmark": "mqtt", "qos": args.qos, "results": results}))
        return
    print(f"MQTT event throughput, local mosquitto, QoS {args.qos} (line rate of one chain: {LINE_RATE}/s)")
    head = ("rows/msg", "events/s", "msgs/s", "B/row", "MB/s", "x line", "collect rows/s")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (8, 11, 8, 6, 6, 7, 15))))
    for r in results:
        print(
            f"{r['rows_per_msg']:>8} {r['events_per_s']:>11,.0f} {r['msgs_per_s']:>8,.0f}"
            f" {r['bytes_per_row']:>6.1f} {r['mbyte_per_s']:>6.1f} {r['x_line_rate']:>7.1f}"
            f" {r['collector_rows_per_s']:>15,.0f}"
        )


if __name__ == "__main__":
    main()
