"""bitaxe-raw control client on literal bytes: one table of request -> reply bytes per firmware variant.

The reply bytes are written out by hand from the firmware's ``control/mod.rs`` (docs/drivers.md): success
``[len LE][id][payload]`` with ``len`` = payload (``original``) or payload + 3 (``packet``/``latest``);
errors ``04 00 <id> <code>`` and ``[len LE] <id> FF <ASCII>`` in every variant. The tables start with a
write (before any read) or an error and have NACKs in the middle; after every error the next request succeeds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from drivers.bitaxe_raw import BitaxeRaw, BitaxeRawError, ControlTimeout, adc_counts_to_mv, encode_request
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
    script: list[tuple[bytes, list[bytes]]], **kw: Any
) -> AsyncIterator[tuple[BitaxeRaw, Scripted]]:
    host, dev = loopback_pair()
    device = Scripted(dev, script)
    task = asyncio.create_task(device.run())
    try:
        yield BitaxeRaw(host, **kw), device
    finally:
        await host.close()
        await task


def h(s: str) -> bytes:
    return bytes.fromhex(s)


def msg(n: int, rid: int, text: str) -> bytes:
    """A message error written out: ``[n LE] id FF text`` (``n`` given literally, checked here)."""
    assert n == 4 + len(text)
    return bytes([n, 0, rid, 0xFF]) + text.encode()


Op = Callable[[BitaxeRaw], Awaitable[object]]
ERR = "error"


def _ops() -> dict[str, Op]:
    return {
        "write 4C 03 0A": lambda c: c.write(0x4C, h("03 0a")),
        "read 77 1": lambda c: c.read(0x77, 1),
        "read 4C 1": lambda c: c.read(0x4C, 1),
        "wr 24 8B 2": lambda c: c.write_read(0x24, h("8b"), 2),
        "wr 24 8C 2": lambda c: c.write_read(0x24, h("8c"), 2),
        "write 77 00": lambda c: c.write(0x77, h("00")),
        "freq 100k": lambda c: c.set_i2c_frequency(100_000),
        "reset on": lambda c: c.set_reset(True),
        "reset off": lambda c: c.set_reset(False),
        "adc": lambda c: c.read_vdd_counts(),
        "gpio get": lambda c: c.get_gpio(0),
    }


OPS = _ops()
# (operation, request bytes with the id as "ID", reply bytes with "ID", expected result or ERR + text)
Row = tuple[str, str, bytes | str, object]

ORIGINAL: list[Row] = [  # length = payload; parse errors with id FF; overflow is error 0x12
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "01 00 ID 02", None),
    ("read 77 1", "08 00 ID 00 05 30 77 01", "MSG18 I2C Read Error", (ERR, '"I2C Read Error"')),
    ("read 4C 1", "08 00 ID 00 05 30 4c 01", "01 00 ID 2a", h("2a")),
    ("wr 24 8C 2", "09 00 ID 00 05 40 24 8c 02", "02 00 ID ff cb", h("ff cb")),  # data, not an error
    ("write 77 00", "08 00 ID 00 05 20 77 00", "MSG19 I2C Write Error", (ERR, "I2C Write Error")),
    ("freq 100k", "0a 00 ID 00 05 10 a0 86 01 00", "04 00 ID a0 86 01 00", None),
    ("read 4C 1", "08 00 ID 00 05 30 4c 01", "04 00 ff 11", (ERR, "0x11 (invalid)")),  # id FF: parse error
    ("wr 24 8B 2", "09 00 ID 00 05 40 24 8b 02", "02 00 ID 66 02", h("66 02")),
    ("read 4C 1", "08 00 ID 00 05 30 4c 01", "04 00 ID 11", (ERR, "0x11 (invalid)")),  # 4 != 1: an error
    ("reset on", "07 00 ID 00 06 00 00", "01 00 ID 00", None),
    ("adc", "06 00 ID 00 07 50", "02 00 ID 2d 06", 0x062D),
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "04 00 ff 12", (ERR, "0x12")),
    ("reset off", "07 00 ID 00 06 00 01", "01 00 ID 01", None),
]
PACKET: list[Row] = [  # length = payload + 3; parse errors with id FF; overflow is FF "Buf"
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "04 00 ID 02", None),
    ("read 77 1", "08 00 ID 00 05 30 77 01", "MSG18 I2C Read Error", (ERR, "I2C Read Error")),
    ("wr 24 8C 2", "09 00 ID 00 05 40 24 8c 02", "05 00 ID ff cb", h("ff cb")),  # 2-char "message"? data
    ("read 4C 1", "08 00 ID 00 05 30 4c 01", "04 00 ID ff", h("ff")),
    ("write 77 00", "08 00 ID 00 05 20 77 00", "MSG19 I2C Write Error", (ERR, "I2C Write Error")),
    ("freq 100k", "0a 00 ID 00 05 10 a0 86 01 00", "07 00 ID a0 86 01 00", None),
    ("reset on", "07 00 ID 00 06 00 00", "04 00 ID 10", (ERR, "0x10 (timeout)")),  # bridge timeout
    ("reset on", "07 00 ID 00 06 00 00", "04 00 ID 00", None),
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "04 00 ID 13", (ERR, "0x13 (fault)")),
    ("adc", "06 00 ID 00 07 50", "05 00 ID 2d 06", 0x062D),
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "07 00 ff ff 42 75 66", (ERR, '"Buf"')),
    ("gpio get", "06 00 ID 00 06 00", "04 00 ID 01", True),
]
LATEST: list[Row] = [  # length = payload + 3; parse errors answered with the request's own id
    ("read 77 1", "08 00 ID 00 05 30 77 01", "MSG18 I2C Read Error", (ERR, "I2C Read Error")),  # error first
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "04 00 ID 11", (ERR, "0x11 (invalid)")),
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "04 00 ID 02", None),
    ("wr 24 8B 2", "09 00 ID 00 05 40 24 8b 02", "05 00 ID 66 02", h("66 02")),
    ("gpio get", "06 00 ID 00 06 00", "04 00 ID 11", (ERR, "0x11 (invalid)")),
    ("freq 100k", "0a 00 ID 00 05 10 a0 86 01 00", "MSG27 I2C Set Frequency Error", (ERR, "Frequency")),
    ("freq 100k", "0a 00 ID 00 05 10 a0 86 01 00", "07 00 ID a0 86 01 00", None),
    ("write 4C 03 0A", "09 00 ID 00 05 20 4c 03 0a", "07 00 ID ff 42 75 66", (ERR, '"Buf"')),
    ("reset off", "07 00 ID 00 06 00 01", "04 00 ID 01", None),
]


def _bytes(spec: str, rid: int) -> bytes:
    if spec.startswith("MSG"):
        n, text = spec[3:].split(" ", 1)
        return msg(int(n), rid, text)
    return h(spec.replace("ID", f"{rid:02x}"))


async def _run_table(rows: list[Row], **kw: Any) -> BitaxeRaw:
    script = [(_bytes(req, i), [_bytes(str(rep), i)]) for i, (_, req, rep, _) in enumerate(rows)]
    async for client, dev in run_script(script, **kw):
        for i, (op, _, _, want) in enumerate(rows):
            if isinstance(want, tuple):
                with pytest.raises(BitaxeRawError) as info:
                    await OPS[op](client)
                assert want[1] in str(info.value), str(info.value)
                assert f"id {i})" in str(info.value) and "page 0x0" in str(info.value)  # names the request
            else:
                assert await OPS[op](client) == want, f"row {i}: {op}"
        assert dev.script == []
        return client
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("rows", "convention"), [(ORIGINAL, "payload"), (PACKET, "packet"), (LATEST, "packet")]
)
async def test_each_firmware_variant_on_literal_bytes(rows: list[Row], convention: str) -> None:
    client = await _run_table(rows)
    assert client.convention == convention  # learned from unambiguous replies, never forced


async def test_request_encoding_literal() -> None:
    assert encode_request(0x42, 0x06, 0x00, b"\x00") == h("07 00 42 00 06 00 00")
    assert encode_request(1, 0x05, 0x40, h("4c 00 01")) == h("09 00 01 00 05 40 4c 00 01")
    assert encode_request(2, 0x07, 0x50) == h("06 00 02 00 07 50")
    freq = (400_000).to_bytes(4, "little")
    assert encode_request(3, 0x05, 0x10, freq) == h("0a 00 03 00 05 10 80 1a 06 00")


@pytest.mark.parametrize("first", ["04 00 ff 11", "12 00 00 ff 49 32 43 20 52 65 61 64 20 45 72 72 6f 72"])
@pytest.mark.parametrize("later", ["01 00 01 2a", "04 00 01 2a"])
async def test_an_error_first_locks_no_mode(first: str, later: str) -> None:
    """An error before any success says nothing about the length convention; the next read decodes."""
    script = [(h("08 00 00 00 05 30 4c 01"), [h(first)]), (h("08 00 01 00 05 30 4c 01"), [h(later)])]
    async for client, _ in run_script(script):
        with pytest.raises(BitaxeRawError):
            await client.read(0x4C, 1)
        assert client.convention is None
        assert await client.read(0x4C, 1) == h("2a")


async def test_a_one_byte_read_in_unknown_convention_is_data() -> None:
    """``04 00 id xx`` to a 1-byte read before anything is known: the packet-convention success (the firmware
    sends simple errors with a request's id only for GPIO/fan bridge faults and malformed requests)."""
    script = [(h("08 00 00 00 05 30 4c 01"), [h("04 00 00 11")])]
    async for client, _ in run_script(script):
        assert await client.read(0x4C, 1) == h("11")


async def test_set_frequency_first_payload_convention_and_its_error() -> None:
    """``04 00 id`` answers a set-frequency both as a payload-length success (7 bytes) and as an error
    (4 bytes): the echoed first byte tells them apart without waiting."""
    script = [
        (h("0a 00 00 00 05 10 a0 86 01 00"), [h("04 00 00 11")]),
        (h("0a 00 01 00 05 10 a0 86 01 00"), [h("04 00 01 a0"), h("86 01 00")]),
    ]
    async for client, _ in run_script(script, timeout_s=30.0):
        with pytest.raises(BitaxeRawError, match="invalid"):
            await client.set_i2c_frequency(100_000)
        await client.set_i2c_frequency(100_000)
        assert client.convention == "payload"


async def test_a_four_byte_read_error_is_settled_at_the_deadline() -> None:
    """A 4-byte read answered ``04 00 id code`` (payload convention could still send 3 more bytes): at the
    deadline it is the error it must be, not a timeout, and the next request succeeds."""
    script = [
        (h("08 00 00 00 05 30 4c 04"), [h("04 00 00 13")]),
        (h("08 00 01 00 05 30 4c 01"), [h("04 00 01 07")]),
    ]
    async for client, _ in run_script(script, timeout_s=0.05):
        with pytest.raises(BitaxeRawError, match="fault"):
            await client.read(0x4C, 4)
        assert await client.read(0x4C, 1) == h("07")


async def test_garbage_stale_replies_and_timeouts_resynchronise() -> None:
    script = [
        # garbage, a stale reply to an unknown id, then the reply split in three reads
        (h("08 00 00 00 05 30 4c 01"), [h("de ad be ef 04 00 33 99"), h("04"), h("00 00 2a")]),
        (h("08 00 01 00 05 30 4c 02"), [h("c8 00 01 ff")]),  # a head that never completes: a timeout
        (h("08 00 02 00 05 30 4c 02"), []),  # never answered: a timeout
        # the late reply to id 2 arrives first (skipped by its own shape), then the answer to id 3
        (h("08 00 03 00 05 30 4c 02"), [h("05 00 02 ff 10"), h("05 00 03 12 34")]),
    ]
    async for client, _ in run_script(script, timeout_s=0.05):
        assert await client.read(0x4C, 1) == h("2a")
        for _ in range(2):
            with pytest.raises(
                ControlTimeout, match=r"no reply to I2C read 0x4C -> 2 B \(page 0x05 cmd 0x30 "
            ):
                await client.read(0x4C, 2)
        assert await client.read(0x4C, 2) == h("12 34")


async def test_an_unexpected_write_count_is_an_error() -> None:
    script = [
        (h("09 00 00 00 05 20 4c 03 0a"), [h("01 00 00 05")]),
        (h("09 00 01 00 05 20 4c 03 0a"), [h("01 00 01 02")]),
    ]
    async for client, _ in run_script(script):
        with pytest.raises(I2CError, match="unexpected reply 05"):
            await client.write(0x4C, h("03 0a"))
        await client.write(0x4C, h("03 0a"))


async def test_argument_checks_and_protocols() -> None:
    async for client, dev in run_script([]):
        assert isinstance(client, I2CBus)
        with pytest.raises(I2CError, match="7-bit"):
            await client.write(0x80, b"\x00")
        with pytest.raises(ValueError):
            await client.read(0x40, 0)
        with pytest.raises(ValueError):
            await client.set_i2c_frequency(10)
        with pytest.raises(ValueError):
            await client.write(0x40, bytes(256))
        assert dev.seen == []
    assert adc_counts_to_mv(4095) == pytest.approx(3100.0)
    assert adc_counts_to_mv(1585) == pytest.approx(1199.9, abs=0.1)


async def test_a_wrong_convention_seed_is_corrected_by_the_first_clear_reply() -> None:
    script = [
        (h("09 00 00 00 05 20 4c 03 0a"), [h("01 00 00 02")]),  # payload length: unambiguous
        (h("08 00 01 00 05 30 4c 01"), [h("04 00 01 11")]),  # now known: 4 != 1, an error
        (h("08 00 02 00 05 30 4c 01"), [h("01 00 02 11")]),
    ]
    async for client, _ in run_script(script, convention="packet"):
        await client.write(0x4C, h("03 0a"))
        assert client.convention == "payload"
        with pytest.raises(BitaxeRawError, match="invalid"):
            await client.read(0x4C, 1)
        assert await client.read(0x4C, 1) == h("11")
