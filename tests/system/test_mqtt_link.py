"""MqttLink, the one reconnecting MQTT connection, against a real mosquitto (and a port nobody listens on)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from daemon.mqtt_link import LinkStats, MqttLink, MqttSettings
from tests.polling import until
from tests.system.mqtt_fixture import Broker
from tests.system.netutil import free_port

pytestmark = pytest.mark.system


def _settings(port: int, **kw: Any) -> MqttSettings:
    return MqttSettings(port=port, host_id="link", reconnect_min_s=0.02, reconnect_max_s=0.08, **kw)


def test_backoff_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="reconnect_min_s <= reconnect_max_s"):
        MqttSettings(reconnect_min_s=2.0, reconnect_max_s=1.0)
    with pytest.raises(ValueError, match="reconnect_min_s"):
        MqttSettings(reconnect_min_s=0.0)
    with pytest.raises(ValueError, match="buffer_messages"):
        MqttSettings(buffer_messages=0)


async def test_unreachable_broker_retries_with_capped_backoff_logs_once_and_closes_fast(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "daemon.mqtt_link")
    link = MqttLink(_settings(free_port()), ["t/#"], identifier="nobody")
    task = asyncio.create_task(link.run())
    t0 = time.monotonic()
    await until(lambda: link.stats.reconnects >= 8)
    elapsed = time.monotonic() - t0
    # 0.02 + 0.04 + 0.08 * 5 = 0.46 s of backoff before the 8th retry: capped, not doubling forever
    # (0.02 * (2^8 - 1) = 5.1 s) and not a busy loop.
    assert 0.4 < elapsed < 4.0
    assert not link.stats.connected and "refused" in link.stats.last_error.lower()
    lost = [r for r in caplog.records if "lost or unreachable" in r.getMessage()]
    assert len(lost) == 1  # a streak of failures is logged once
    t1 = time.monotonic()
    await link.close()  # in the middle of a backoff wait
    assert task.done() and task.exception() is None  # run() returned, it was not cancelled
    assert time.monotonic() - t1 < 1.0


async def test_outage_buffers_in_order_drops_oldest_counted_and_recovers(mosquitto: Broker) -> None:
    got: list[bytes] = []
    sub = MqttLink(_settings(mosquitto.port), ["link/x"], lambda _t, p: got.append(p), identifier="sub")
    stats = LinkStats()

    async def after_sub(_client: object) -> None:  # publish only once the subscriber listens again
        async with asyncio.timeout(10):
            await sub.subscribed.wait()

    pub = MqttLink(
        _settings(mosquitto.port, buffer_messages=20), identifier="pub", stats=stats, on_connect=after_sub
    )
    tasks = [asyncio.create_task(sub.run()), asyncio.create_task(pub.run())]
    try:
        await until(lambda: sub.subscribed.is_set() and pub.subscribed.is_set())
        pub.publish("link/x", b"0")
        await until(lambda: got == [b"0"])
        mosquitto.stop()
        await until(lambda: not pub.stats.connected)
        for i in range(1, 31):  # 30 messages into a buffer of 20: the 10 oldest go, counted
            pub.publish("link/x", str(i).encode())
        assert pub.pending == 20 and stats.dropped == 10
        mosquitto.start()
        await until(lambda: pub.stats.connected and sub.subscribed.is_set(), within_s=10)
        await until(lambda: pub.pending == 0 and len(got) >= 21, within_s=10)
        assert got == [b"0"] + [str(i).encode() for i in range(11, 31)]
        assert stats is pub.stats and stats.reconnects >= 1 and stats.published == 21
        assert sub.stats.received == 21 and sub.stats.reconnects >= 1  # the subscriber re-subscribed
    finally:
        await pub.close()
        await sub.close()
    assert all(t.done() and t.exception() is None for t in tasks)


async def test_close_flushes_the_queue_and_last_messages_then_returns(mosquitto: Broker) -> None:
    got: list[tuple[str, bytes]] = []
    sub = MqttLink(_settings(mosquitto.port), ["link/#"], lambda t, p: got.append((t, p)), identifier="sub2")
    pub = MqttLink(_settings(mosquitto.port), identifier="pub2")
    sub_task, pub_task = asyncio.create_task(sub.run()), asyncio.create_task(pub.run())
    try:
        await until(lambda: sub.subscribed.is_set() and pub.subscribed.is_set())
        for i in range(50):
            pub.publish("link/q", str(i).encode())
        await pub.close([("link/bye", b"offline", True)])
        assert pub_task.done() and pub.pending == 0 and not pub.stats.connected
        await until(lambda: len(got) >= 51)
        assert got[-1] == ("link/bye", b"offline")
        assert [p for t, p in got if t == "link/q"] == [str(i).encode() for i in range(50)]
    finally:
        await sub.close()
        await pub.close()  # idempotent
    assert sub_task.done()
