"""MQTT bridge (aiomqtt): availability, status, batched events, sweep summaries and a guarded command topic.

Topics under ``<root>/<host>/`` (root ``asicrc`` by default, see ``docs/mqtt.md``):

- ``availability``: ``online`` / ``offline``, retained, with ``offline`` as the last will.
- ``status``: the daemon's status JSON, every ``status_interval_s``.
- ``events/<board>``: a batch of event rows as one Arrow IPC stream (schema of ``docs/recording-format.md``).
- ``summary/<board>``: one JSON object per finished sweep point.
- ``cmd`` (in) and ``cmd/result`` (out): commands, only when a shared token is configured; every command
  passes the daemon's safety envelope through the handler. No token configured means no command is accepted.

During a broker outage messages wait in a bounded buffer (the oldest are dropped and counted); the bridge
reconnects with capped exponential backoff, re-announces availability and re-subscribes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import json
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pyarrow as pa

log = logging.getLogger(__name__)

#: Reconnect backoff (s): first wait, cap, factor (pymodbus-style capped exponential backoff).
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
BACKOFF_FACTOR = 2.0

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: Command actions the bridge forwards; anything else is refused before reaching the handler.
COMMAND_ACTIONS = ("set_setpoint", "start_plan", "stop_plan", "status")
#: Largest command payload accepted (bytes); a command is a small JSON object.
MAX_COMMAND_BYTES = 16384


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection and topic settings (the config's ``[mqtt]`` section)."""

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

    @property
    def base(self) -> str:
        return f"{self.topic_root}/{self.host_id}"


@dataclass
class MqttStats:
    """Counters exported as metrics."""

    published: int = 0
    dropped: int = 0
    reconnects: int = 0
    connected: bool = False
    commands_accepted: int = 0
    commands_refused: int = 0
    last_error: str = ""


def encode_events(batch: pa.RecordBatch) -> bytes:
    """One record batch as Arrow IPC stream bytes (what ``events/<board>`` carries)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())


def decode_events(payload: bytes) -> pa.Table:
    """Inverse of :func:`encode_events`; raises ``ValueError`` on a payload that is not an Arrow stream."""
    try:
        return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"not an Arrow IPC stream: {exc}") from exc


def parse_command(payload: bytes, token: str | None) -> tuple[dict[str, Any] | None, str]:
    """Validate a command payload; returns ``(command, "")`` or ``(None, reason)``. Never raises."""
    if token is None:
        return None, "commands are disabled: no [mqtt] token configured"
    if len(payload) > MAX_COMMAND_BYTES:
        return None, f"payload too large: {len(payload)} bytes > {MAX_COMMAND_BYTES}"
    try:
        cmd = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, deep nesting, huge integers
        return None, f"payload is not JSON: {str(exc)[:200]}"
    if not isinstance(cmd, dict):
        return None, "payload must be a JSON object"
    given = cmd.pop("token", None)
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), token.encode("utf-8", "surrogatepass")
    ):
        return None, "unauthorised: missing or wrong token"
    action = cmd.get("action")
    if action not in COMMAND_ACTIONS:
        return None, f"unknown action {action!r}; allowed: {', '.join(COMMAND_ACTIONS)}"
    return cmd, ""


class MqttBridge:
    """Publishes to and listens on one broker; run :meth:`run` as a task and :meth:`close` at shutdown."""

    def __init__(
        self,
        settings: MqttSettings,
        status: Callable[[], dict[str, Any]],
        commands: CommandHandler | None = None,
        client_factory: Callable[..., aiomqtt.Client] = aiomqtt.Client,
        backoff: tuple[float, float, float] = (BACKOFF_START_S, BACKOFF_MAX_S, BACKOFF_FACTOR),
    ) -> None:
        self.settings = settings
        self.stats = MqttStats()
        self._status = status
        self._commands = commands
        self._client_factory = client_factory
        self._backoff = backoff
        self._buffer: collections.deque[tuple[str, bytes, bool]] = collections.deque()
        self._wakeup = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    # ---- producers (never block, never raise) ----
    def _enqueue(self, topic: str, payload: bytes, retain: bool = False) -> None:
        if len(self._buffer) >= self.settings.buffer_messages:
            self._buffer.popleft()
            self.stats.dropped += 1
        self._buffer.append((topic, payload, retain))
        self._wakeup.set()

    def publish_events(self, board: str, batch: pa.RecordBatch) -> None:
        """Queue one event batch for ``events/<board>``."""
        if batch.num_rows:
            self._enqueue(f"{self.settings.base}/events/{board}", encode_events(batch))

    def publish_summary(self, board: str, summary: dict[str, Any]) -> None:
        """Queue a sweep-point summary for ``summary/<board>``."""
        self._enqueue(f"{self.settings.base}/summary/{board}", json.dumps(summary).encode())

    def publish_json(self, subtopic: str, obj: dict[str, Any], retain: bool = False) -> None:
        """Queue any JSON object under the host's base topic."""
        self._enqueue(f"{self.settings.base}/{subtopic}", json.dumps(obj).encode(), retain)

    # ---- connection ----
    def _make_client(self) -> aiomqtt.Client:
        s = self.settings
        tls_context = None
        if s.tls:
            tls_context = ssl.create_default_context(cafile=s.ca_file)
        return self._client_factory(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=f"asicrc-{s.host_id}",
            # Nagle + delayed ACK cost ~40 ms per hop on small messages (benchmarks/bench_live.py).
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            will=aiomqtt.Will(f"{s.base}/availability", b"offline", qos=1, retain=True),
            tls_context=tls_context,
            timeout=10.0,
        )

    async def run(self) -> None:
        """Connect, publish and listen until :meth:`close`; reconnect with capped backoff on any loss."""
        self._task = asyncio.current_task()
        start, cap, factor = self._backoff
        delay = start
        while not self._closing:
            error = await self._connect_once()
            if self._closing:
                break
            if error is not None:
                if self.stats.connected or not self.stats.last_error:
                    log.warning(
                        "MQTT %s:%d lost or unreachable: %s", self.settings.host, self.settings.port, error
                    )
                self.stats.last_error = error
            else:
                delay = start
            self.stats.connected = False
            self.stats.reconnects += 1
            await asyncio.sleep(delay)
            delay = min(cap, delay * factor)

    async def _connect_once(self) -> str | None:
        """One connection's life; returns the error that ended it (None when it ended cleanly)."""
        try:
            async with self._make_client() as client:
                self._client = client
                await self._on_connected(client)
                await self._serve(client)
        except aiomqtt.MqttError as exc:
            return str(exc) or type(exc).__name__
        except ExceptionGroup as group:
            mqtt_errors = group.subgroup(aiomqtt.MqttError)
            if mqtt_errors is None:
                raise
            return str(mqtt_errors.exceptions[0]) or "MQTT error"
        finally:
            self._client = None
        return None

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        s = self.settings
        self.stats.connected = True
        self.stats.last_error = ""
        log.info("MQTT connected to %s:%d as %s", s.host, s.port, s.base)
        await client.publish(f"{s.base}/availability", b"online", qos=1, retain=True)
        if s.token is not None:
            await client.subscribe(f"{s.base}/cmd", qos=1)
        if s.homeassistant:
            await self._announce_homeassistant(client)

    async def _serve(self, client: aiomqtt.Client) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._send_loop(client))
            tg.create_task(self._status_loop())
            if self.settings.token is not None:
                tg.create_task(self._command_loop(client))

    async def _send_loop(self, client: aiomqtt.Client) -> None:
        while True:
            while self._buffer:
                item = self._buffer.popleft()
                try:
                    await client.publish(item[0], item[1], qos=self.settings.qos, retain=item[2])
                except BaseException:
                    self._buffer.appendleft(item)  # not taken by the broker: resend after reconnect
                    raise
                self.stats.published += 1
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _status_loop(self) -> None:
        while True:
            try:
                status = self._status()
            except Exception as exc:  # a status snapshot must never take the bridge down
                status = {"error": f"status unavailable: {exc}"}
            self.publish_json("status", status)
            await asyncio.sleep(self.settings.status_interval_s)

    async def _command_loop(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            try:
                result = await self._handle_command(payload)
            except Exception as exc:  # no payload may end the command loop: it is a refusal
                self.stats.commands_refused += 1
                log.warning("MQTT command refused: %s", type(exc).__name__)
                result = {"ok": False, "reason": f"invalid command: {type(exc).__name__}"}
            self.publish_json("cmd/result", result)

    async def _handle_command(self, payload: bytes) -> dict[str, Any]:
        cmd, reason = parse_command(payload, self.settings.token)
        request_id = cmd.get("id") if cmd else None
        if cmd is None:
            self.stats.commands_refused += 1
            log.warning("MQTT command refused: %s", reason)
            return {"ok": False, "reason": reason}
        if self._commands is None:
            self.stats.commands_refused += 1
            return {"ok": False, "id": request_id, "reason": "this daemon accepts no commands"}
        try:
            result = await self._commands(cmd)
        except Exception as exc:  # the handler validates; anything else is still a refusal, not a crash
            log.exception("MQTT command failed")
            result = {"ok": False, "reason": f"command failed: {exc}"}
        if result.get("ok"):
            self.stats.commands_accepted += 1
        else:
            self.stats.commands_refused += 1
        return {"id": request_id, **result}

    async def _announce_homeassistant(self, client: aiomqtt.Client) -> None:
        """Home Assistant MQTT discovery for a few status values (retained config messages)."""
        s = self.settings
        for key, unit, name in (("nonce_rate_hz", "Hz", "nonce rate"), ("chip_temp_c", "°C", "chip temp")):
            uid = f"asicrc_{s.host_id}_{key}"
            config = {
                "name": f"asicrc {s.host_id} {name}",
                "unique_id": uid,
                "state_topic": f"{s.base}/status",
                "value_template": "{{ value_json.summary." + key + " }}",
                "unit_of_measurement": unit,
                "availability_topic": f"{s.base}/availability",
            }
            await client.publish(
                f"homeassistant/sensor/{uid}/config", json.dumps(config).encode(), retain=True
            )

    async def close(self, timeout_s: float = 2.0) -> None:
        """Flush what is buffered (bounded), announce ``offline``, disconnect and end :meth:`run`."""
        client = self._client
        self._closing = True
        if client is not None and self.stats.connected:
            try:
                async with asyncio.timeout(timeout_s):
                    while self._buffer:
                        topic, payload, retain = self._buffer.popleft()
                        await client.publish(topic, payload, qos=self.settings.qos, retain=retain)
                        self.stats.published += 1
                    await client.publish(f"{self.settings.base}/availability", b"offline", qos=1, retain=True)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                log.warning("MQTT close: %s", exc)
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.stats.connected = False
