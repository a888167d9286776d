# ruff: noqa: ASYNC220, ASYNC221 - set-up before the timed part may block
"""In-daemon live service latency: asicrc run --simulate 1 with [live] (PlanSource), local mosquitto.

    .venv/bin/python benchmarks/bench_live_daemon.py [N] [SLOT_MS]
Prints one JSON object: service latency (input arrival -> prediction published) and client rtt, ms.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiomqtt
import numpy as np

sys.path.insert(0, os.getcwd())
from tests.system.mqtt_fixture import free_port, wait_port
from tests.system.test_daemon import BASE

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
SLOT_MS = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-live-"))
    port = free_port()
    (tmp / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(tmp / "m.conf")], stderr=subprocess.DEVNULL)
    wait_port(port)
    model = tmp / "live.npz"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "daemon",
            "live",
            "train",
            "--simulate",
            "--out",
            str(model),
            "--steps",
            "40",
            "--slot-ms",
            str(SLOT_MS),
            "--time-scale",
            "10",
        ],
        check=True,
        capture_output=True,
    )
    cfg = tmp / "a.toml"
    cfg.write_text(
        BASE + f'\n[mqtt]\nenabled = true\nport = {port}\nhost_id = "bench"\n'
        f'[live]\nenabled = true\nreadout = "{model}"\nboard = "sim0"\n'
    )
    d = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "daemon",
            "run",
            "--config",
            str(cfg),
            "--state-dir",
            str(tmp / "s"),
            "--simulate",
            "1",
        ],
        stderr=subprocess.DEVNULL,
    )
    lat: list[float] = []
    rtt: list[float] = []
    try:
        async with aiomqtt.Client("127.0.0.1", port) as cli:
            await cli.subscribe("asicrc/bench/live/prediction", qos=1)
            it = cli.messages.__aiter__()
            while True:  # wait for the service to subscribe
                await cli.publish("asicrc/bench/live/input", b'{"seq": -1, "u": 0.5}', qos=1)
                try:
                    async with asyncio.timeout(1.0):
                        await it.__anext__()
                    break
                except TimeoutError:
                    pass
            await asyncio.sleep(1.0)
            while True:  # drain the knocks
                try:
                    async with asyncio.timeout(0.5):
                        await it.__anext__()
                except TimeoutError:
                    break
            u = np.random.default_rng(0).uniform(0, 1, N)
            for i in range(N):
                t0 = time.perf_counter()
                await cli.publish("asicrc/bench/live/input", json.dumps({"seq": i, "u": float(u[i])}), qos=1)
                msg = json.loads(bytes((await it.__anext__()).payload))
                rtt.append((time.perf_counter() - t0) * 1e3)
                lat.append(msg["latency_s"] * 1e3)
    finally:
        d.send_signal(signal.SIGTERM)
        rc = d.wait(30)
        broker.terminate()
        broker.wait()

    def q(a: list[float], p: float) -> float:
        return round(float(np.percentile(a, p)), 1)

    print(
        json.dumps(
            {
                "n": N,
                "slot_ms": SLOT_MS,
                "n_sub": 4,
                "step_board_ms": 4 * SLOT_MS,
                "service_median_ms": q(lat, 50),
                "service_p99_ms": q(lat, 99),
                "rtt_median_ms": q(rtt, 50),
                "rtt_p99_ms": q(rtt, 99),
                "daemon_exit": rc,
                "loadavg": os.getloadavg()[0],
            }
        )
    )


asyncio.run(main())
