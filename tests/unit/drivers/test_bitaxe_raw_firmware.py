"""The emulated bitaxe-raw firmware variants on literal bytes, and the client against each of them."""

from __future__ import annotations

import asyncio

import pytest

from drivers.bitaxe_raw import BitaxeRaw, BitaxeRawError, adc_counts_to_mv
from drivers.transport import TransportClosed, loopback_pair
from simulator.bitaxe_raw import FIRMWARES, BitaxeRawDevice, adc_counts
from simulator.chain import ChainCore


def h(s: str) -> bytes:
    return bytes.fromhex(s)


READ_ERROR = "12 00 {id} ff 49 32 43 20 52 65 61 64 20 45 72 72 6f 72"  # 18 bytes: FF "I2C Read Error"
WRITE_ERROR = "13 00 {id} ff 49 32 43 20 57 72 69 74 65 20 45 72 72 6f 72"  # FF "I2C Write Error"
# request -> reply per variant (original, packet, latest); "{id}" is the request id
TABLE = [
    ("0a 00 01 00 05 10 a0 86 01 00", ["04 00 01 a0 86 01 00"] + ["07 00 01 a0 86 01 00"] * 2),
    ("09 00 02 00 05 20 4c 4a 23", ["01 00 02 02", "04 00 02 02", "04 00 02 02"]),  # EMC2101 fan config
    ("09 00 03 00 05 40 4c 4a 01", ["01 00 03 23", "04 00 03 23", "04 00 03 23"]),  # ... read back
    ("08 00 04 00 05 30 77 01", [READ_ERROR.format(id="04")] * 3),  # nothing at 0x77: NACK
    ("08 00 05 00 05 20 77 00", [WRITE_ERROR.format(id="05")] * 3),
    ("06 00 06 00 08 00", ["04 00 ff 11", "04 00 ff 11", "04 00 06 11"]),  # unknown page
    ("09 00 07 00 05 30 4c 01 02", ["04 00 ff 11", "04 00 ff 11", "04 00 07 11"]),  # read with a bad shape
    ("07 00 08 00 06 00 00", ["01 00 08 00", "04 00 08 00", "04 00 08 00"]),  # ASIC reset asserted
    ("06 00 09 00 06 00", ["01 00 09 00", "04 00 09 00", "04 00 09 00"]),  # ... and read back
]


@pytest.mark.parametrize("variant", list(FIRMWARES))
def test_emulated_firmware_replies_literal(variant: str) -> None:
    col = list(FIRMWARES).index(variant)
    dev = BitaxeRawDevice(ChainCore(chips=1, seed=0), "gamma", firmware=variant)
    for request, replies in TABLE:
        assert dev.feed(h(request), 0.01).hex(" ") == replies[col], request
    # a write over the firmware's 256-byte buffer
    big = (6 + 1 + 257).to_bytes(2, "little") + h("0a 00 05 20 4c") + bytes(257)
    overflow = ["04 00 ff 12", "07 00 ff ff 42 75 66", "07 00 0a ff 42 75 66"]
    assert dev.feed(big, 0.01).hex(" ") == overflow[col]
    # an impossible length: "invalid", the buffer dropped, the next request served
    assert dev.feed(h("03 00 0b 00 05"), 0.01).hex(" ") == ["04 00 ff 11", "04 00 ff 11", "04 00 0b 11"][col]
    # byte at a time, two requests back to back
    stream = h("06 00 0c 00 06 00") + h("07 00 0d 00 06 00 01")
    out = b"".join(dev.feed(bytes([b]), 0.01) for b in stream)
    assert out.hex(" ") == ["01 00 0c 00 01 00 0d 01", *["04 00 0c 00 04 00 0d 01"] * 2][col]
    with pytest.raises(ValueError, match="unknown bitaxe-raw firmware"):
        BitaxeRawDevice(ChainCore(chips=1, seed=0), firmware="v9")


def test_emulated_adc_reads_raw_counts_of_the_core_voltage() -> None:
    core = ChainCore(chips=1, seed=0)
    dev = BitaxeRawDevice(core, "gamma", firmware="packet")
    reply = dev.feed(h("06 00 01 00 07 50"), 0.01)
    counts = int.from_bytes(reply[3:], "little")
    assert reply[:3] == h("05 00 01") and counts == adc_counts(core.physics.volts)
    assert adc_counts_to_mv(counts) == pytest.approx(core.physics.volts * 1000, abs=1.0)
    assert adc_counts(1.2) == 1585 and adc_counts(5.0) == 4095 and adc_counts(-1.0) == 0


async def _serve(dev: BitaxeRawDevice, end: object) -> None:
    while True:
        try:
            batch = await end.read()  # type: ignore[attr-defined]
        except TransportClosed:
            return
        out = dev.feed(batch.data, 0.01)
        if out:
            await end.write(out)  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", list(FIRMWARES))
async def test_client_against_each_emulated_firmware(variant: str) -> None:
    """Errors first, NACKs in the middle, writes before reads: every call right, every error typed."""
    host, end = loopback_pair()
    dev = BitaxeRawDevice(ChainCore(chips=1, seed=0), "gamma", firmware=variant)
    task = asyncio.create_task(_serve(dev, end))
    client = BitaxeRaw(host, timeout_s=5.0)
    try:
        with pytest.raises(BitaxeRawError, match="I2C Read Error"):
            await client.read(0x77, 1)
        await client.write(0x4C, h("4a 23"))
        with pytest.raises(BitaxeRawError, match="I2C WriteRead Error"):
            await client.write_read(0x50, h("00"), 2)
        assert await client.write_read(0x4C, h("4a"), 1) == h("23")
        with pytest.raises(BitaxeRawError, match="I2C Write Error"):
            await client.write(0x77, h("00"))
        await client.set_i2c_frequency(400_000)
        assert dev.i2c_hz == 400_000
        await client.set_reset(True)
        assert await client.get_gpio(0) is False
        await client.set_reset(False)
        assert await client.read_vdd_counts() == adc_counts(dev.core.physics.volts)
        vout = await client.write_read(0x24, h("8b"), 2)
        assert int.from_bytes(vout, "little") * 2**-9 == pytest.approx(dev.core.physics.volts, abs=0.002)
        # a PMBus word whose first byte is FF (LINEAR11 7.99 V: FF CB) is data, not "error 0xCB"
        dev.devices[0x24].vin_v = 1023 / 128  # type: ignore[attr-defined]
        assert await client.write_read(0x24, h("88"), 2) == h("ff cb")
        assert client.convention == FIRMWARES[variant].convention
    finally:
        await host.close()
        await task
