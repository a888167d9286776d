"""The live reservoir service on an emulated board (ptys, supervisor, safety envelope) against a real
mosquitto: inputs on ``live/input`` are answered on ``live/prediction`` in order, with measured latency and
metrics; malformed inputs are counted. Prediction accuracy is checked on the toy substrate in
tests/unit/daemon/test_live.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from daemon.config import SimulateConfig
from daemon.live import (
    LiveModel,
    LiveParams,
    LiveService,
    SubstrateSource,
    live_connection,
    run_live,
    train_live_model,
)
from daemon.mqtt import MqttSettings
from daemon.substrate import BoardSubstrate
from tests.system.mqtt_fixture import Broker

pytestmark = pytest.mark.system

#: Emulator speed-up and slot length (emulated ns): 40 ms of host time per slot (lenient on a loaded host),
#: ~20 nonces per chip per slot.
TIME_SCALE = 5.0
PARAMS = LiveParams(n_sub=4, slot_ns=200_000_000, seed=2, n_chips=2)


async def _serve_and_ask(
    broker: Broker, model: LiveModel, substrate: BoardSubstrate, inputs: np.ndarray, within_s: float = 60.0
) -> tuple[list[dict[str, Any]], CollectorRegistry]:
    registry = CollectorRegistry()
    settings = MqttSettings(port=broker.port, host_id="live-test", reconnect_min_s=0.05, reconnect_max_s=0.2)
    source = SubstrateSource(model.params, substrate)
    service, loop = live_connection(settings, lambda pub: LiveService(model, source, pub, registry=registry))
    task = asyncio.create_task(run_live(service, loop))
    got: list[dict[str, Any]] = []
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port) as cli:
            await cli.subscribe("asicrc/live-test/live/prediction", qos=1)
            async with asyncio.timeout(10):
                await loop.subscribed.wait()
            await cli.publish("asicrc/live-test/live/input", b'{"seq": "x"}', qos=1)
            for i, u in enumerate(inputs):
                await cli.publish("asicrc/live-test/live/input", json.dumps({"seq": i, "u": float(u)}), qos=1)
            async with asyncio.timeout(within_s):
                async for msg in cli.messages:
                    got.append(json.loads(bytes(msg.payload)))
                    if len(got) == len(inputs):
                        break
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return got, registry


def _train(
    substrate: BoardSubstrate, n: int, seed: int, path: Path, params: LiveParams = PARAMS
) -> LiveModel:
    """Blocking on purpose (nothing else runs yet): a stuck board is then interrupted by pytest-timeout."""
    u = np.random.default_rng(seed).uniform(0.0, 1.0, n)
    model = train_live_model(substrate, list(u), list(u), params, alpha="gcv")
    model.save(path)
    return LiveModel.load(path)  # the service runs from the file, as deployed


async def test_live_service_answers_inputs_on_the_emulator(mosquitto: Broker, tmp_path: Path) -> None:
    with BoardSubstrate(sim=SimulateConfig(chips=2, time_scale=TIME_SCALE, seed=3)) as substrate:
        model = _train(substrate, 30, 0, tmp_path / "live.npz")
        inputs = np.random.default_rng(1).uniform(0.0, 1.0, 10)
        got, registry = await _serve_and_ask(mosquitto, model, substrate, inputs)
    assert [m["seq"] for m in got] == list(range(len(inputs)))
    assert all(np.isfinite(m["y"]) for m in got)
    # a prediction cannot come before its sub-slots have run on the board (host seconds)
    step_s = PARAMS.n_sub * PARAMS.slot_ns / 1e9 / TIME_SCALE
    assert min(m["latency_s"] for m in got) >= step_s
    assert registry.get_sample_value("asicrc_live_predictions_total") == len(inputs)
    assert registry.get_sample_value("asicrc_live_latency_seconds_count") == len(inputs)
    assert registry.get_sample_value("asicrc_live_malformed_total") == 1
    assert registry.get_sample_value("asicrc_live_errors_total") == 0
