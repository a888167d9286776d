"""bitaxe-raw control channel client on literal bytes (loopback transport, scripted device)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.bitaxe_raw import BitaxeRaw, BitaxeRawError, ControlTimeout, ErrorCode, encode_request
from drivers.i2c import I2CBus, I2CError
from drivers.transport import LoopbackTransport, TransportClosed, loopback_pair


class Scripted:
    """Device end: checks each request against the script and answers with the scripted reply bytes."""

    def __init__(self, end: LoopbackTransport, script: list[tuple[bytes, list[bytes]]]) -> None:
        self.end = end
        self.script = list(script)
        self.seen: list[bytes] = []

    async def run(self) -> None:
        while True:
            try:
                batch = await self.end.read()
            except TransportClosed:
                return
            self.seen.append(batch.data)
            expected, replies = self.script.pop(0)
            assert batch.data == expected, f"request {batch.data.hex(' ')} != {expected.hex(' ')}"
            for r in replies:  # each list element arrives as its own read on the host side
                await self.end.write(r)


async def run_script(
    script: list[tuple[bytes, list[bytes]]], **kw: object
) -> AsyncIterator[tuple[BitaxeRaw, Scripted]]:
    host, dev = loopback_pair()
    device = Scripted(dev, script)
    task = asyncio.create_task(device.run())
    try:
        yield BitaxeRaw(host, **kw), device  # type: ignore[arg-type]
    finally:
        await host.close()
        await task


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def test_request_encoding_literal() -> None:
    assert encode_request(0x42, 0x06, 0x00, b"\x00") == h("07 00 42 00 06 00 00")
    assert encode_request(1, 0x05, 0x40, h("4c 00 01")) == h("09 00 01 00 05 40 4c 00 01")
    assert encode_request(2, 0x07, 0x50) == h("06 00 02 00 07 50")


@pytest.mark.parametrize("mode", ["packet", "payload", "auto"])
async def test_i2c_transactions_literal(mode: str) -> None:
    def reply(rid: int, payload: str) -> bytes:
        p = h(payload)
        n = len(p) + 3 if mode in ("packet", "auto") else len(p)
        return n.to_bytes(2, "little") + bytes([rid]) + p

    script = [
        (h("0a 00 00 00 05 10 a0 86 01 00"), [reply(0, "")]),  # set I2C 100 kHz
        (h("09 00 01 00 05 20 4c 4c 3f"), [reply(1, "")]),  # write EMC2101 fan duty 63
        (h("08 00 02 00 05 30 40 02"), [reply(2, "12 34")]),  # read 2 bytes from INA260
        (h("09 00 03 00 05 40 24 8b 02"), [reply(3, "66 02")]),  # PMBus READ_VOUT
        (h("06 00 04 00 07 50"), [reply(4, "e4 0c")]),  # ADC VDD 3300 mV
        (h("07 00 05 00 06 00 00"), [reply(5, "00")]),  # reset asserted: pin 0 low
        (h("07 00 06 00 06 00 01"), [reply(6, "01")]),  # released
    ]
    async for client, dev in run_script(script, length_mode=mode):
        assert isinstance(client, I2CBus)
        await client.set_i2c_frequency(100_000)
        await client.write(0x4C, b"\x4c\x3f")
        assert await client.read(0x40, 2) == h("12 34")
        assert await client.write_read(0x24, b"\x8b", 2) == h("66 02")
        assert await client.read_vdd_mv() == 3300
        await client.set_reset(True)
        await client.set_reset(False)
        assert dev.script == []
        if mode == "auto":
            assert client.length_mode == "packet"


async def test_auto_mode_learns_payload_length_replies() -> None:
    script = [
        (h("08 00 00 00 05 30 40 02"), [h("02 00 00 ab cd")]),
        (h("08 00 01 00 05 30 48 01"), [h("01 00 01 e1")]),
    ]
    async for client, _ in run_script(script):
        assert await client.read(0x40, 2) == h("ab cd")
        assert client.length_mode == "payload"
        assert await client.read(0x48, 1) == h("e1")


@pytest.mark.parametrize(
    ("code", "name"),
    [(0x10, "timeout"), (0x11, "invalid"), (0x12, "denied"), (0x13, "fault"), (0x7E, "unknown")],
)
async def test_error_replies_are_typed(code: int, name: str) -> None:
    script = [(h("08 00 00 00 05 30 50 01"), [bytes([5, 0, 0, 0xFF, code])])]
    async for client, _ in run_script(script):
        with pytest.raises(BitaxeRawError) as info:
            await client.read(0x50, 1)
        assert info.value.code == code and info.value.name == name
        assert f"0x{code:02X} ({name})" in str(info.value)
        assert isinstance(info.value, I2CError)
    assert ErrorCode(0x12).name == "DENIED"


async def test_payload_mode_error_reply() -> None:
    script = [(h("08 00 00 00 05 30 50 02"), [h("02 00 00 ff 10")])]
    async for client, _ in run_script(script, length_mode="payload"):
        with pytest.raises(BitaxeRawError, match="timeout"):
            await client.read(0x50, 2)


async def test_split_replies_stale_ids_and_timeout() -> None:
    script = [
        # the reply arrives in three reads, preceded by a stale reply to an old request id 0x33
        (h("08 00 00 00 05 30 4c 01"), [h("04 00 33 99"), h("04"), h("00 00 2a")]),
        (h("08 00 01 00 05 30 4c 01"), []),  # never answered
    ]
    async for client, _ in run_script(script, timeout_s=0.02):
        assert await client.read(0x4C, 1) == h("2a")
        with pytest.raises(ControlTimeout, match="no reply"):
            await client.read(0x4C, 1)


async def test_argument_checks() -> None:
    async for client, dev in run_script([]):
        with pytest.raises(I2CError, match="7-bit"):
            await client.write(0x80, b"\x00")
        with pytest.raises(ValueError):
            await client.read(0x40, 0)
        with pytest.raises(ValueError):
            await client.set_i2c_frequency(10)
        assert dev.seen == []


async def test_wrong_payload_size_is_an_error() -> None:
    script = [(h("08 00 00 00 05 30 40 02"), [h("04 00 00 01")])]
    async for client, _ in run_script(script, length_mode="packet"):
        with pytest.raises(I2CError, match="got 1 bytes, asked for 2"):
            await client.read(0x40, 2)
