"""Input-to-prediction latency of the live reservoir service (daemon/live.py) through a local mosquitto.

For each configuration a readout is trained briefly, the service is started on the broker, and inputs are
sent one at a time (the next when the previous prediction arrived: unloaded latency). Reported, in ms:
the service's own ``latency_s`` (input message arrival -> prediction published) and the client's round trip
(publish -> prediction received), median and p99, next to the nominal board time of one step
(``n_sub * slot`` in host time). ``emulator`` runs a BoardSubstrate (ptys, supervisor, safety envelope);
``rate-model`` is the in-process toy substrate, showing the overhead of the service path alone.

Run: .venv/bin/python benchmarks/bench_live.py [--inputs N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiomqtt
import numpy as np
from bench_mqtt import mosquitto  # the script directory is on sys.path
from prometheus_client import CollectorRegistry

from daemon.config import SimulateConfig
from daemon.live import (
    STEP_TIMEOUT_S,
    LiveParams,
    LiveService,
    SubstrateSource,
    live_connection,
    run_live,
    train_live_model,
)
from daemon.mqtt import MqttSettings
from daemon.mqtt_link import SOCKET_OPTIONS
from daemon.substrate import BoardSubstrate
from reservoir.substrate import RateModelSubstrate, Substrate

#: (name, substrate kind, chips, emulator time scale, LiveParams). Emulated slot / time scale = host slot.
CONFIGS: tuple[tuple[str, str, int, float, LiveParams], ...] = (
    ("rate-model 4x20ms", "rate-model", 1, 1.0, LiveParams(n_sub=4, slot_ns=20_000_000)),
    ("emulator 4x100ms/20", "emulator", 2, 20.0, LiveParams(n_sub=4, slot_ns=100_000_000, n_chips=2)),
    ("emulator 4x400ms/25", "emulator", 2, 25.0, LiveParams(n_sub=4, slot_ns=400_000_000, n_chips=2)),
)
TRAIN_STEPS = 30


def _pct(a: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(a) * 1e3, q))


async def measure(port: int, substrate: Substrate, params: LiveParams, n_inputs: int) -> dict[str, float]:
    u = np.random.default_rng(0).uniform(0.0, 1.0, TRAIN_STEPS)
    model = await asyncio.to_thread(train_live_model, substrate, list(u), list(u), params, alpha=1.0)
    source = SubstrateSource(params, substrate)
    service, loop = live_connection(
        MqttSettings(port=port, host_id="bench"),
        lambda publish: LiveService(model, source, publish, registry=CollectorRegistry()),
    )
    task = asyncio.create_task(run_live(service, loop))
    missed = 0
    service_lat: list[float] = []
    round_trip: list[float] = []
    try:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier="bench-client", socket_options=SOCKET_OPTIONS
        ) as cli:
            await cli.subscribe("asicrc/bench/live/prediction", qos=1)
            async with asyncio.timeout(10):
                await loop.subscribed.wait()
            messages = aiter(cli.messages)
            for i, v in enumerate(np.random.default_rng(1).uniform(0.0, 1.0, n_inputs)):
                t0 = time.perf_counter()
                await cli.publish("asicrc/bench/live/input", json.dumps({"seq": i, "u": float(v)}), qos=1)
                try:
                    async with asyncio.timeout(STEP_TIMEOUT_S + 5):
                        msg = await anext(messages)
                except TimeoutError:
                    missed = n_inputs - i  # the board is stuck: report what was measured
                    print(f"  no prediction for input {i}; stopping this configuration", file=sys.stderr)
                    break
                round_trip.append(time.perf_counter() - t0)
                service_lat.append(float(json.loads(bytes(msg.payload))["latency_s"]))
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return {
        "service_median_ms": _pct(service_lat, 50),
        "service_p99_ms": _pct(service_lat, 99),
        "round_trip_median_ms": _pct(round_trip, 50),
        "round_trip_p99_ms": _pct(round_trip, 99),
        "missed": missed,
    }


async def main_async(n_inputs: int, nodelay: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with mosquitto(nodelay=nodelay) as port:
        for name, kind, chips, scale, params in CONFIGS:
            step_ms = 0.0 if kind == "rate-model" else params.n_sub * params.slot_ns / 1e6 / scale
            if kind == "emulator":
                with BoardSubstrate(sim=SimulateConfig(chips=chips, time_scale=scale, seed=3)) as sub:
                    r = await measure(port, sub, params, n_inputs)
            else:
                r = await measure(port, RateModelSubstrate(rate_hz=20_000.0, seed=1), params, n_inputs)
            out.append(
                {"config": name, "nodelay": nodelay, "inputs": n_inputs, "board_step_ms": step_ms, **r}
            )
            print(f"  {name} done", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=100, help="inputs per configuration (default 100)")
    ap.add_argument(
        "--nagle", action="store_true", help="leave mosquitto's set_tcp_nodelay off (its default)"
    )
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    results = asyncio.run(main_async(args.inputs, nodelay=not args.nagle))
    if args.json:
        print(json.dumps({"benchmark": "live", "results": results}))
        return
    nd = "off (Nagle)" if args.nagle else "on"
    print(f"Live service latency through a local mosquitto, set_tcp_nodelay {nd} (ms; one input at a time)")
    head = ("config", "board step", "service med", "service p99", "rtt med", "rtt p99", "missed")
    print(f"{head[0]:<22}" + "".join(f"{h:>12}" for h in head[1:]))
    for r in results:
        vals = (
            "board_step_ms",
            "service_median_ms",
            "service_p99_ms",
            "round_trip_median_ms",
            "round_trip_p99_ms",
        )
        print(f"{r['config']:<22}" + "".join(f"{r[k]:>12.1f}" for k in vals) + f"{r['missed']:>12}")


if __name__ == "__main__":
    main()
