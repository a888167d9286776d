"""MQTT bridge against a real mosquitto on a loopback port."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt
import numpy as np
import pytest

from daemon.events import make_event_batch
from daemon.mqtt import MqttBridge, MqttSettings, decode_events, parse_command
from tests.polling import until
from tests.system.mqtt_fixture import Broker

pytestmark = pytest.mark.system


def _settings(broker: Broker, **kw: Any) -> MqttSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker.port,
        "host_id": "testhost",
        "status_interval_s": 0.2,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.2,
    }
    base.update(kw)
    return MqttSettings(**base)


def _batch(n: int, t0: int = 0) -> Any:
    t = np.arange(t0, t0 + n, dtype=np.int64) * 1000
    zeros = np.zeros(n, np.int64)
    return make_event_batch(
        "b0",
        t_host_ns=t,
        t_ns=t,
        chip=zeros,
        core=zeros,
        small_core=zeros,
        job_id=zeros,
        nonce=np.arange(n, dtype=np.uint32),
        valid=np.ones(n, bool),
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=256.0,
        read_id=zeros,
    )


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bridge.run())
    try:
        yield task
    finally:
        await bridge.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _collect(client: aiomqtt.Client, n: int, within_s: float = 5.0) -> list[aiomqtt.Message]:
    out: list[aiomqtt.Message] = []
    async with asyncio.timeout(within_s):
        async for msg in client.messages:
            out.append(msg)
            if len(out) >= n:
                break
    return out


async def test_availability_status_and_events_arrive(mosquitto: Broker) -> None:
    bridge = MqttBridge(_settings(mosquitto), status=lambda: {"boards": 2})
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("asicrc/testhost/#", qos=1)
        async with running(bridge):
            await until(lambda: bridge.stats.connected)
            bridge.publish_events("b0", _batch(50))
            bridge.publish_summary("b0", {"point": 0, "rate_hz": 1.0})
            seen: dict[str, bytes] = {}
            async with asyncio.timeout(5):
                async for msg in sub.messages:
                    seen[str(msg.topic)] = bytes(msg.payload)
                    if {
                        "asicrc/testhost/events/b0",
                        "asicrc/testhost/status",
                        "asicrc/testhost/summary/b0",
                    } <= set(seen):
                        break
    assert seen["asicrc/testhost/availability"] == b"online"
    table = decode_events(seen["asicrc/testhost/events/b0"])
    assert table.num_rows == 50 and table.column("nonce").to_pylist() == list(range(50))
    assert json.loads(seen["asicrc/testhost/status"]) == {"boards": 2}
    assert json.loads(seen["asicrc/testhost/summary/b0"])["rate_hz"] == 1.0


async def test_retained_offline_after_close(mosquitto: Broker) -> None:
    bridge = MqttBridge(_settings(mosquitto), status=dict)
    async with running(bridge):
        await until(lambda: bridge.stats.connected)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as sub:
        await sub.subscribe("asicrc/testhost/availability")
        (msg,) = await _collect(sub, 1)
    assert msg.payload == b"offline" and msg.retain


async def test_wrong_password_is_a_clear_error(mosquitto_auth: Broker) -> None:
    bridge = MqttBridge(_settings(mosquitto_auth, username="asicrc", password="wrong"), status=dict)
    async with running(bridge):
        await until(lambda: bool(bridge.stats.last_error))
        assert not bridge.stats.connected
    assert "not authori" in bridge.stats.last_error.lower() or "bad user" in bridge.stats.last_error.lower()
    assert "wrong" not in bridge.stats.last_error  # the secret is never echoed


async def test_right_password_connects(mosquitto_auth: Broker) -> None:
    settings = _settings(mosquitto_auth, username=mosquitto_auth.username, password=mosquitto_auth.password)
    bridge = MqttBridge(settings, status=dict)
    async with running(bridge):
        await until(lambda: bridge.stats.connected)


async def test_broker_restart_loses_nothing_within_buffer(mosquitto_persistent: Broker) -> None:
    """The bridge's buffer plus a persistent session: nothing is lost, whichever reconnects first."""
    mosquitto = mosquitto_persistent
    bridge = MqttBridge(_settings(mosquitto, buffer_messages=100), status=dict)
    got: list[int] = []

    async def consume() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", mosquitto.port, identifier="sub", clean_session=False
                ) as c:
                    await c.subscribe("asicrc/testhost/events/b0", qos=1)
                    async for msg in c.messages:
                        got.append(int(decode_events(bytes(msg.payload)).column("t_ns")[0].as_py()))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    async with running(bridge):
        consumer = asyncio.create_task(consume())
        try:
            await until(lambda: bridge.stats.connected)
            for i in range(10):
                bridge.publish_events("b0", _batch(1, t0=i))
            await until(lambda: len(got) >= 10)
            mosquitto.stop()
            await until(lambda: not bridge.stats.connected)
            for i in range(10, 60):  # during the outage: buffered, bound 100
                bridge.publish_events("b0", _batch(1, t0=i))
            mosquitto.start()
            await until(lambda: bridge.stats.connected, within_s=10)
            await until(lambda: len(set(got)) >= 60, within_s=10)
        finally:
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
    assert sorted(set(got)) == [i * 1000 for i in range(60)]
    assert bridge.stats.dropped == 0 and bridge.stats.reconnects >= 1


async def test_commands_need_the_token_and_pass_the_handler(mosquitto: Broker) -> None:
    calls: list[dict[str, Any]] = []

    async def handler(cmd: dict[str, Any]) -> dict[str, Any]:
        calls.append(cmd)
        return {"ok": cmd.get("freq_mhz", 0) <= 500, "reason": "checked by the envelope"}

    bridge = MqttBridge(_settings(mosquitto, token="tok"), status=dict, commands=handler)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as cli, running(bridge):
        await cli.subscribe("asicrc/testhost/cmd/result", qos=1)
        await until(lambda: bridge.stats.connected)
        await asyncio.sleep(0.1)  # the bridge's subscription is in place after CONNACK + SUBACK
        for payload in (
            {"action": "set_setpoint", "freq_mhz": 480, "token": "tok", "id": "a"},
            {"action": "set_setpoint", "freq_mhz": 480, "id": "b"},
            {"action": "set_setpoint", "freq_mhz": 480, "token": "nope", "id": "c"},
            {"action": "rm -rf", "token": "tok", "id": "d"},
        ):
            await cli.publish("asicrc/testhost/cmd", json.dumps(payload), qos=1)
        await cli.publish("asicrc/testhost/cmd", b"\xff not json", qos=1)
        results = [json.loads(bytes(m.payload)) for m in await _collect(cli, 5)]
    assert [c["id"] for c in calls] == ["a"]
    assert results[0]["ok"] is True and results[0]["id"] == "a"
    assert all(r["ok"] is False for r in results[1:])
    assert "token" in results[1]["reason"] and "token" in results[2]["reason"]
    assert "unknown action" in results[3]["reason"] and "JSON" in results[4]["reason"]
    assert bridge.stats.commands_accepted == 1 and bridge.stats.commands_refused == 4


def test_commands_without_configured_token_are_refused() -> None:
    cmd, reason = parse_command(b'{"action": "stop_plan", "token": ""}', token=None)
    assert cmd is None and "disabled" in reason
