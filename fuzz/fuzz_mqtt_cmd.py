"""atheris target: MQTT command payloads through ``parse_command`` and the bridge's handler path.

Crash condition: any exception (``parse_command`` promises never to raise; the bridge answers every payload
with a result dict). Run: ``.venv/bin/python fuzz/fuzz_mqtt_cmd.py -max_total_time=600``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import _common  # noqa: F401 - sys.path
import atheris

with atheris.instrument_imports():
    from daemon.mqtt import COMMAND_ACTIONS, MqttBridge, MqttSettings, parse_command

TOKEN = "fuzz-token"


async def _handler(cmd: dict[str, Any]) -> dict[str, Any]:
    if cmd.get("action") not in COMMAND_ACTIONS:
        raise AssertionError(f"handler got an unknown action: {cmd!r}")
    return {"ok": True}


def test_one_input(data: bytes) -> None:
    parse_command(data, TOKEN)
    parse_command(data, None)
    bridge = MqttBridge(MqttSettings(token=TOKEN, host_id="fuzz"), status=dict, commands=_handler)
    result = asyncio.run(bridge._handle_command(data))
    if not isinstance(result.get("ok"), bool):
        raise AssertionError(f"result without ok: {result!r}")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
