"""atheris target: the bitaxe-raw control client answered with arbitrary bytes over a loopback transport.

Crash condition: any exception other than the client's typed errors (I2CError, ControlTimeout,
TransportError). Run: ``.venv/bin/python fuzz/fuzz_bitaxe_raw.py -max_total_time=600``.
"""

from __future__ import annotations

import asyncio
import sys

import _common  # noqa: F401 - sys.path
import atheris

with atheris.instrument_imports():
    from drivers.bitaxe_raw import BitaxeRaw, ControlTimeout
    from drivers.i2c import I2CError
    from drivers.transport import TransportError, loopback_pair


async def _one(op: int, mode: str | None, chunks: list[bytes]) -> None:
    host, dev = loopback_pair()
    client = BitaxeRaw(host, timeout_s=60.0, convention=mode)  # type: ignore[arg-type]

    async def device() -> None:
        await dev.read()
        for c in chunks:
            await dev.write(c)
        await dev.close()  # hang up: the client never waits for a timeout

    task = asyncio.create_task(device())
    try:
        if op == 0:
            await client.read(0x24, 2)
        elif op == 1:
            await client.write_read(0x4C, b"\x00", 1)
        elif op == 2:
            await client.read_vdd_counts()
        else:
            await client.write(0x24, b"\x01\x80")
    except (I2CError, ControlTimeout, TransportError):
        pass
    finally:
        await dev.close()
        await task


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    op = fdp.ConsumeIntInRange(0, 3)
    mode = (None, "packet", "payload")[fdp.ConsumeIntInRange(0, 2)]
    chunks = [fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 16)) for _ in range(fdp.ConsumeIntInRange(0, 6))]
    asyncio.run(_one(op, mode, [c for c in chunks if c]))


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
