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
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import pyarrow as pa

from daemon.mqtt_link import LinkStats, MqttLink, MqttSettings

__all__ = ["MqttBridge", "MqttSettings", "MqttStats", "decode_events", "encode_events", "parse_command"]

log = logging.getLogger(__name__)

CommandHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

#: Command actions the bridge forwards; anything else is refused before reaching the handler.
COMMAND_ACTIONS = ("set_setpoint", "start_plan", "stop_plan", "status")
#: Largest command payload accepted (bytes); a command is a small JSON object.
MAX_COMMAND_BYTES = 16384
#: Commands waiting for the handler; beyond this they are refused (a flood cannot grow memory).
COMMAND_QUEUE = 64


@dataclass
class MqttStats(LinkStats):
    """The bridge's link counters plus its command counters (exported as metrics)."""

    commands_accepted: int = 0
    commands_refused: int = 0


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
    ) -> None:
        self.settings = settings
        self.stats = MqttStats()
        self._status = status
        self._commands = commands
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(COMMAND_QUEUE)
        base = settings.base
        self.link = MqttLink(
            settings,
            [f"{base}/cmd"] if settings.token is not None else [],
            self._on_message,
            identifier=f"asicrc-{settings.host_id}",
            will=aiomqtt.Will(f"{base}/availability", b"offline", qos=1, retain=True),
            on_connect=self._on_connected,
            stats=self.stats,
        )

    # ---- producers (never block, never raise) ----
    def publish_events(self, board: str, batch: pa.RecordBatch) -> None:
        """Queue one event batch for ``events/<board>``."""
        if batch.num_rows:
            self.link.publish(f"{self.settings.base}/events/{board}", encode_events(batch))

    def publish_summary(self, board: str, summary: dict[str, Any]) -> None:
        """Queue a sweep-point summary for ``summary/<board>``."""
        self.link.publish(f"{self.settings.base}/summary/{board}", json.dumps(summary).encode())

    def publish_json(self, subtopic: str, obj: dict[str, Any], retain: bool = False) -> None:
        """Queue any JSON object under the host's base topic."""
        self.link.publish(f"{self.settings.base}/{subtopic}", json.dumps(obj).encode(), retain)

    # ---- tasks ----
    async def run(self) -> None:
        """Connect, publish and listen until :meth:`close`; the link reconnects with capped backoff."""
        async with asyncio.TaskGroup() as tg:
            link = tg.create_task(self.link.run(), name="mqtt-link")
            status = tg.create_task(self._status_loop(), name="mqtt-status")
            commands = tg.create_task(self._command_loop(), name="mqtt-commands")
            await link
            status.cancel()
            commands.cancel()

    async def _on_connected(self, client: aiomqtt.Client) -> None:
        await client.publish(f"{self.settings.base}/availability", b"online", qos=1, retain=True)
        if self.settings.homeassistant:
            await self._announce_homeassistant(client)

    async def _status_loop(self) -> None:
        while True:
            try:
                status = self._status()
            except Exception as exc:  # a status snapshot must never take the bridge down
                status = {"error": f"status unavailable: {exc}"}
            self.publish_json("status", status)
            await asyncio.sleep(self.settings.status_interval_s)

    def _on_message(self, _topic: str, payload: bytes) -> None:
        try:
            self._inbox.put_nowait(payload)
        except asyncio.QueueFull:
            self.stats.commands_refused += 1
            log.warning("MQTT command refused: %d commands already waiting", COMMAND_QUEUE)
            self.publish_json("cmd/result", {"ok": False, "reason": "busy: too many commands waiting"})

    async def _command_loop(self) -> None:
        while True:
            payload = await self._inbox.get()
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
        offline = (f"{self.settings.base}/availability", b"offline", True)
        await self.link.close([offline], timeout_s)
