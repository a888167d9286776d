"""The emulator's I2C devices (``simulator.i2c_devices``) as an ``I2CBus``, optionally dropping writes."""

from __future__ import annotations

from drivers.i2c import I2CError
from simulator.chain import ChainCore
from simulator.i2c_devices import I2CDevice, board_devices


class SimBus:
    """Board ``kind``'s emulated parts at emulated time 0; ``drop`` = {(addr, register)} writes to lose."""

    def __init__(self, kind: str = "gamma", drop: set[tuple[int, int]] | None = None) -> None:
        self.core = ChainCore(chips=1, seed=0)
        self.devices: dict[int, I2CDevice] = board_devices(kind, self.core)
        self.drop = drop or set()
        self.writes: list[tuple[int, bytes]] = []

    def _dev(self, addr: int) -> I2CDevice:
        if addr not in self.devices:
            raise I2CError(f"NACK from 0x{addr:02X}")
        return self.devices[addr]

    async def write(self, addr: int, data: bytes) -> None:
        dev = self._dev(addr)
        if len(data) > 1 and (addr, data[0]) in self.drop:
            return  # lost on the way: the device never sees it
        self.writes.append((addr, bytes(data)))
        dev.write(data, 0.0)

    async def read(self, addr: int, n: int) -> bytes:
        return self._dev(addr).read(n, 0.0)

    async def write_read(self, addr: int, data: bytes, n: int) -> bytes:
        self._dev(addr).write(data, 0.0)
        return self._dev(addr).read(n, 0.0)
