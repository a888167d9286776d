"""The one MQTT connection loop: settings, a bounded outgoing buffer, capped exponential backoff.

Every broker connection of asicrc (the daemon's bridge in ``daemon/mqtt.py``, the fleet collector in
``daemon/collect.py``, the live service in ``daemon/live.py``) is an :class:`MqttLink`: it connects (TLS,
credentials, last will), subscribes, runs an ``on_connect`` hook, delivers every message to ``on_message``
and publishes what was queued; on any loss it reconnects with capped exponential backoff
(``reconnect_min_s`` doubling up to ``reconnect_max_s``, reset after a successful connection) and does all
of that again. Transitions are logged once (lost, recovered), never every retry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiomqtt

if TYPE_CHECKING:
    from daemon.config import MqttConfig

log = logging.getLogger(__name__)

#: Reconnect backoff factor (the first wait and the cap are settings).
BACKOFF_FACTOR = 2.0
#: Socket options of every client: TCP_NODELAY, so small messages (live inputs and predictions) are not held
#: back by Nagle's algorithm waiting for the peer's delayed ACK (~40 ms per hop on Linux).
SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
#: Seconds a connect or a QoS-1 publish may take before it counts as a lost connection.
CLIENT_TIMEOUT_S = 10.0


async def _cancel_until_done(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that carried on.

    aiomqtt waits with ``asyncio.wait_for``, which on Python 3.11 can swallow a cancellation that arrives as
    the awaited operation completes (CPython gh-86296, fixed in 3.12): a task cancelled once may carry on.
    If this coroutine is itself cancelled meanwhile, it still finishes the job, then re-raises.
    """
    pending = {t for t in tasks if not t.done()}
    interrupted = False
    while pending:
        for t in pending:
            t.cancel()
        try:
            _, pending = await asyncio.wait(pending, timeout=0.1)
        except asyncio.CancelledError:
            interrupted = True
    if interrupted:
        raise asyncio.CancelledError


OnMessage = Callable[[str, bytes], object]
OnConnect = Callable[[aiomqtt.Client], Awaitable[None]]


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection and topic settings (the config's ``[mqtt]`` section). Units: s, messages."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    topic_root: str = "asicrc"
    host_id: str = field(default_factory=socket.gethostname)
    token: str | None = field(default=None, repr=False)
    status_interval_s: float = 10.0
    buffer_messages: int = 1000
    qos: int = 1
    homeassistant: bool = False
    #: Reconnect backoff: first wait after a loss, doubling up to the cap.
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            raise ValueError(
                f"need 0 < reconnect_min_s <= reconnect_max_s, got {self.reconnect_min_s}, "
                f"{self.reconnect_max_s}"
            )
        if self.buffer_messages < 1:
            raise ValueError(f"buffer_messages must be >= 1, got {self.buffer_messages}")

    @classmethod
    def from_config(cls, m: MqttConfig) -> MqttSettings:
        """The settings of the config's ``[mqtt]`` section ("" means unset)."""
        return cls(
            host=m.host,
            port=m.port,
            tls=m.tls,
            ca_file=m.ca_file or None,
            username=m.username or None,
            password=m.password or None,
            topic_root=m.topic_root,
            host_id=m.host_id,
            token=m.token or None,
            status_interval_s=m.status_interval_s,
            buffer_messages=m.buffer_messages,
            homeassistant=m.homeassistant,
            reconnect_min_s=m.reconnect_min_s,
            reconnect_max_s=m.reconnect_max_s,
        )

    @property
    def base(self) -> str:
        """This host's topic prefix, ``<topic_root>/<host_id>``."""
        return f"{self.topic_root}/{self.host_id}"


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ``ValueError`` naming the flag otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--mqtt expects HOST:PORT with a port in 1..65535, got {text!r}")
    return host, int(port)


def read_password(path: str) -> str:
    """The broker password: the first line of ``path`` without its newline."""
    with open(path, encoding="utf-8") as fh:
        return fh.readline().rstrip("\r\n")


@dataclass
class LinkStats:
    """Counters of one link (exported as metrics by the bridge)."""

    connected: bool = False
    reconnects: int = 0
    received: int = 0
    published: int = 0
    dropped: int = 0
    last_error: str = ""


def make_client(settings: MqttSettings, identifier: str, will: aiomqtt.Will | None = None) -> aiomqtt.Client:
    """An aiomqtt client for ``settings`` (TLS with the CA file when ``tls``), client id ``identifier``."""
    tls = ssl.create_default_context(cafile=settings.ca_file) if settings.tls else None
    return aiomqtt.Client(
        settings.host,
        settings.port,
        username=settings.username,
        password=settings.password,
        identifier=identifier,
        will=will,
        tls_context=tls,
        timeout=CLIENT_TIMEOUT_S,
        socket_options=SOCKET_OPTIONS,
    )


#: Makes the client of one connection attempt: (settings, client id, last will) -> client.
ClientFactory = Callable[[MqttSettings, str, aiomqtt.Will | None], aiomqtt.Client]


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return b"" if payload is None else str(payload).encode()


class MqttLink:
    """One broker connection that subscribes ``topics`` and publishes a bounded queue, reconnecting forever.

    ``on_message(topic, payload)`` runs inline and must not raise; ``on_connect(client)`` runs after every
    (re)connection, once the subscriptions are in place (availability, discovery). Run :meth:`run` as a task;
    :meth:`close` flushes (bounded) and ends it, cancelling it also ends it.
    """

    def __init__(
        self,
        settings: MqttSettings,
        topics: Sequence[str] = (),
        on_message: OnMessage | None = None,
        *,
        identifier: str,
        will: aiomqtt.Will | None = None,
        on_connect: OnConnect | None = None,
        stats: LinkStats | None = None,
        client_factory: ClientFactory = make_client,
    ) -> None:
        self.settings = settings
        self.topics = list(topics)
        self.identifier = identifier
        self.stats = stats if stats is not None else LinkStats()
        #: Set while connected and subscribed.
        self.subscribed = asyncio.Event()
        self._on_message = on_message
        self._on_connect = on_connect
        self._will = will
        self._client_factory = client_factory
        self._buffer: collections.deque[tuple[str, bytes, bool]] = collections.deque(
            maxlen=settings.buffer_messages
        )
        self._wakeup = asyncio.Event()
        #: Set while connected with nothing left to publish.
        self._idle = asyncio.Event()
        self._closed = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False

    # ---- producers (never block, never raise) ----
    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """Queue a message at the settings' QoS; when the buffer is full the oldest is dropped (counted)."""
        if len(self._buffer) == self._buffer.maxlen:
            self.stats.dropped += 1
        self._buffer.append((topic, payload, retain))
        self._idle.clear()
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """Messages waiting to be published."""
        return len(self._buffer)

    # ---- the connection loop ----
    async def run(self) -> None:
        """Connect, subscribe, deliver and publish until :meth:`close` or cancellation."""
        self._running = True
        try:
            await self._loop()
        finally:
            self._running = False
            self._stopped.set()

    async def _loop(self) -> None:
        s = self.settings
        delay = s.reconnect_min_s
        while not self._closed.is_set():
            # Each connection runs in its own task, so that ending it never depends on a single cancel
            # being honoured (see _cancel_until_done) and this task's own cancel state stays clean.
            session = asyncio.create_task(self._session(), name=f"mqtt-{self.identifier}")
            try:
                await asyncio.wait([session])
            finally:
                await _cancel_until_done([session])
                was_up = self.stats.connected
                self.stats.connected = False
                self._idle.clear()
                self.subscribed.clear()
            error = session.result()  # an unexpected error (not MqttError) ends the link
            if self._closed.is_set():
                break
            if error is not None:
                if was_up or not self.stats.last_error:
                    log.warning("MQTT %s:%d lost or unreachable: %s", s.host, s.port, error)
                self.stats.last_error = error
            if was_up:
                delay = s.reconnect_min_s
            self.stats.reconnects += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._closed.wait()
            delay = min(s.reconnect_max_s, delay * BACKOFF_FACTOR)

    async def _session(self) -> str | None:
        """One connection's life: the MQTT error that ended it, or None when :meth:`close` ended it."""
        try:
            async with self._client_factory(self.settings, self.identifier, self._will) as client:
                await self._connected(client)
                workers = [
                    asyncio.create_task(self._receive(client)),
                    asyncio.create_task(self._send(client)),
                    asyncio.create_task(self._closed.wait()),
                ]
                try:
                    done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    await _cancel_until_done(workers)
                for t in done:
                    if not t.cancelled() and (exc := t.exception()) is not None:
                        raise exc
        except aiomqtt.MqttError as exc:
            return str(exc) or type(exc).__name__
        return None

    async def _connected(self, client: aiomqtt.Client) -> None:
        s = self.settings
        for topic in self.topics:
            await client.subscribe(topic, qos=s.qos)
        if self.stats.reconnects and self.stats.last_error:
            log.warning("MQTT %s:%d: connection recovered", s.host, s.port)
        self.stats.connected = True
        self.stats.last_error = ""
        log.info("MQTT connected to %s:%d as %s", s.host, s.port, self.identifier)
        if self._on_connect is not None:
            await self._on_connect(client)
        self.subscribed.set()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.stats.received += 1
            if self._on_message is not None:
                self._on_message(message.topic.value, _payload_bytes(message.payload))

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            while self._buffer:
                entry = self._buffer[0]
                await client.publish(entry[0], entry[1], qos=self.settings.qos, retain=entry[2])
                if self._buffer and self._buffer[0] is entry:
                    self._buffer.popleft()  # only once the broker took it (unless overflow dropped it)
                self.stats.published += 1
            self._wakeup.clear()
            self._idle.set()
            await self._wakeup.wait()

    async def close(self, last: Sequence[tuple[str, bytes, bool]] = (), timeout_s: float = 2.0) -> None:
        """Let the connection publish the queue and then ``last`` (topic, payload, retain) for at most
        ``timeout_s``, then disconnect and wait for :meth:`run` to return. What is not sent in time stays
        :attr:`pending`."""
        if self.stats.connected and not self._closed.is_set():
            for item in last:
                self.publish(*item)
            try:
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("MQTT close: %d message(s) not sent within %g s", self.pending, timeout_s)
        self._closed.set()
        if self._running:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLIENT_TIMEOUT_S):
                    await self._stopped.wait()
