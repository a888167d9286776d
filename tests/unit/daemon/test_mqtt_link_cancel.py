"""MqttLink stops when cancelled even if an aiomqtt await swallows the cancellation (CPython gh-86296).

On Python 3.11 ``asyncio.wait_for`` (which aiomqtt uses for every acknowledged operation) can return
normally when a cancel arrives just as the operation completes. The real race needs that exact timing,
so the client here stands in for aiomqtt only in that one respect: its ``publish`` completes as the cancel
arrives. The link's behaviour against a real broker is in ``tests/system/test_mqtt_link.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from daemon.mqtt_link import MqttLink, MqttSettings


class SwallowingClient:
    """Connects at once; ``publish`` blocks until cancelled, then returns normally (the swallowed cancel)."""

    def __init__(self) -> None:
        self.in_publish = asyncio.Event()
        self.published: list[str] = []
        self.subscribed: list[str] = []

    async def __aenter__(self) -> SwallowingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def subscribe(self, topic: str, qos: int = 0) -> None:
        self.subscribed.append(topic)

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.in_publish.set()
        with contextlib.suppress(asyncio.CancelledError):  # wait_for when the PUBACK and the cancel coincide
            await asyncio.sleep(3600)
        self.published.append(topic)

    @property
    def messages(self) -> AsyncIterator[Any]:
        return self._never()

    async def _never(self) -> AsyncIterator[Any]:
        await asyncio.Event().wait()
        yield None  # pragma: no cover - never reached


async def test_cancel_during_a_publish_that_swallows_it_still_ends_the_link() -> None:
    client = SwallowingClient()
    link = MqttLink(
        MqttSettings(host_id="t"),
        ["in/#"],
        identifier="t",
        client_factory=lambda *_a: client,  # type: ignore[arg-type]
    )
    task = asyncio.create_task(link.run())
    link.publish("out/x", b"1")
    async with asyncio.timeout(5):
        await client.in_publish.wait()
    assert link.stats.connected and client.subscribed == ["in/#"]
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    if not done:  # without the guard the link's task group waits for its sender forever
        await link.close()
    assert done and task.cancelled()
    assert client.published == ["out/x"]  # the publish did complete: the message was taken, not lost
    assert not link.stats.connected
