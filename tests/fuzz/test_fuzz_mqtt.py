"""Fuzz MQTT command payloads: :func:`daemon.mqtt.parse_command` and the bridge's command handler path.

``parse_command`` promises never to raise; the bridge turns every payload into a result dict, forwards to the
daemon's handler only authorised commands with a known action, and counts each as accepted or refused.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.mqtt import COMMAND_ACTIONS, MqttBridge, MqttSettings, parse_command

TOKEN = "s3cret-token"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**30), 10**30) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)
commands = st.fixed_dictionaries(
    {},
    optional={
        "token": st.sampled_from([TOKEN, TOKEN + "x", "", TOKEN[:-1]]) | json_values,
        "action": st.sampled_from([*COMMAND_ACTIONS, "reboot", ""]) | json_values,
        "id": json_values,
        "board": st.sampled_from(["sim0", "nope"]) | json_values,
        "voltage_v": json_values,
        "freq_mhz": json_values,
    },
).map(lambda d: json.dumps(d).encode())
payloads = commands | st.binary(max_size=64) | json_values.map(lambda v: json.dumps(v).encode())


@settings(max_examples=500)
@given(payloads, st.sampled_from([TOKEN, None]))
def test_parse_command_never_raises(payload: bytes, token: str | None) -> None:
    cmd, reason = parse_command(payload, token)
    if cmd is None:
        assert reason
    else:
        assert token is not None and reason == ""
        assert cmd["action"] in COMMAND_ACTIONS and "token" not in cmd
        assert json.loads(payload)["token"] == token  # only the exact token authorises


async def _bridge_results(payloads_: list[bytes], token: str | None) -> tuple[list[dict[str, Any]], Any]:
    seen: list[dict[str, Any]] = []

    async def handler(cmd: dict[str, Any]) -> dict[str, Any]:
        seen.append(cmd)
        if cmd.get("board") == "boom":
            raise RuntimeError("handler failure")
        return {"ok": cmd.get("action") == "status"}

    bridge = MqttBridge(MqttSettings(token=token, host_id="fuzz"), status=dict, commands=handler)
    results = [await bridge._handle_command(p) for p in payloads_]
    for cmd in seen:  # the handler saw only authorised, known actions
        assert cmd["action"] in COMMAND_ACTIONS
    return results, bridge.stats


@settings(max_examples=200)
@given(st.lists(payloads, max_size=5), st.sampled_from([TOKEN, None]))
def test_bridge_handler_answers_every_payload(batch: list[bytes], token: str | None) -> None:
    results, stats = asyncio.run(_bridge_results(batch, token))
    assert len(results) == len(batch)
    for r in results:
        assert isinstance(r["ok"], bool)
        json.dumps(r)  # publishable as cmd/result
        if token is None:
            assert not r["ok"]
    assert stats.commands_accepted + stats.commands_refused == len(batch)
    assert stats.commands_accepted == sum(r["ok"] for r in results)


def test_bridge_handler_failure_is_a_refusal() -> None:
    payload = json.dumps({"token": TOKEN, "action": "set_setpoint", "board": "boom"}).encode()
    results, stats = asyncio.run(_bridge_results([payload], TOKEN))
    assert results[0]["ok"] is False and "handler failure" in results[0]["reason"]
    assert stats.commands_refused == 1


#: Payloads found by fuzzing that made parse_command raise and end the bridge's command task (fixed).
CRASHERS = {
    "lone-surrogate-token": b'{"token": "\\ud800", "action": "status"}',
    "deep-nesting": b"[" * 100_000,
    "huge-integer": b'{"token": "x", "n": ' + b"1" * 5000 + b"}",
}


@pytest.mark.parametrize("name", list(CRASHERS))
def test_parse_command_survives_hostile_json(name: str) -> None:
    cmd, reason = parse_command(CRASHERS[name], TOKEN)
    assert cmd is None and reason
