"""The daemon's PartsControl runs the parts' start-up on connect, through bitaxe-raw, against the emulated
firmware and parts (in process): a configuration that does not verify is a failed connect naming the
register, and nothing is powered."""

from __future__ import annotations

import asyncio

import pytest

from daemon.board_control import PartsControl
from drivers.transport import ReadBatch, TransportClosed, TransportError
from simulator.bitaxe_raw import BitaxeRawDevice
from simulator.chain import ChainCore
from simulator.i2c_devices import TPS546D24A


class DeviceTransport:
    """A bitaxe-raw control port backed by the emulated firmware: each write is answered at once."""

    def __init__(self, device: BitaxeRawDevice) -> None:
        self.device = device
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._open = False
        self._n = 0

    @property
    def baud(self) -> int:
        return 115_200

    @property
    def is_open(self) -> bool:
        return self._open

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def write(self, data: bytes) -> None:
        reply = self.device.feed(data, 0.0)
        if reply:
            self._queue.put_nowait(reply)

    async def read(self) -> ReadBatch:
        if not self._open:
            raise TransportClosed("closed")
        self._n += 1
        return ReadBatch(await self._queue.get(), 0, self._n)

    async def set_baud(self, baud: int) -> None:
        return None


def _control(kind: str, device: BitaxeRawDevice) -> PartsControl:
    return PartsControl(lambda: DeviceTransport(device), kind)


async def test_ultra_connect_configures_the_emc2101_through_bitaxe_raw() -> None:
    device = BitaxeRawDevice(ChainCore(chips=1, seed=0), "ultra")
    control = _control("ultra", device)
    await control.connect()
    emc = device.devices[0x4C]
    emc.write(b"\x03", 0.0)
    assert emc.read(1, 0.0) == b"\x04"
    emc.write(b"\x4a", 0.0)
    assert emc.read(1, 0.0) == b"\x23"
    await control.set_fan(100.0)
    assert device.core.physics.fan_duty == 1.0  # the duty register drives the fan once configured
    await control.close()


async def test_a_lost_regulator_write_fails_the_connect_and_powers_nothing() -> None:
    device = BitaxeRawDevice(ChainCore(chips=1, seed=0), "gamma")
    tps = device.devices[0x24]
    assert isinstance(tps, TPS546D24A)
    real_write = tps.write

    def lossy(data: bytes, t: float) -> None:  # VOUT_SCALE_LOOP writes never reach the part
        if not (len(data) > 1 and data[0] == 0x29):
            real_write(data, t)

    tps.write = lossy  # type: ignore[method-assign]
    control = _control("gamma", device)
    with pytest.raises(TransportError, match=r"start-up failed: .*VOUT_SCALE_LOOP \(0x29\) wrote 00 aa"):
        await control.connect()
    assert not device.core.physics.powered  # OPERATION off went out first; it was never switched on
    with pytest.raises(TransportError, match="not connected"):
        await control.set_core_voltage(1.2)
    await control.close()
