"""Transport + decoder throughput over a real pty: nonce replies/s delivered, vs one 3.125 Mbaud link.

``scalar``: the reference :class:`drivers.decoder.FrameDecoder` on each read; ``hot-path``: the daemon's
:class:`drivers.read_decoder.ReadDecoder` (columns, timestamps, bit fields) on each read.

Run: .venv/bin/python benchmarks/bench_transport.py [--frames N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import tty

from drivers.decoder import FrameDecoder
from drivers.frames import NonceReply
from drivers.read_decoder import ReadDecoder
from drivers.transport import SerialTransport

LINE_RATE = 28_400  # 11-byte replies/s at 3.125 Mbaud (docs/protocol.md)


def payload(n: int) -> bytes:
    return b"".join(
        NonceReply(i * 2654435761 & 0xFFFFFFFF, 0, (i * 8) & 0xF8, i & 0xFFFF).encode() for i in range(n)
    )


async def run(kind: str, data: bytes, n: int) -> float:
    master, slave = os.openpty()
    tty.setraw(slave)
    t = SerialTransport(os.ttyname(slave), baud=3_125_000)
    await t.open()

    def writer() -> None:
        view = memoryview(data)
        while view:
            k = os.write(master, view[:4096])
            view = view[k:]

    scalar, columns = FrameDecoder(), ReadDecoder()
    got = 0
    th = threading.Thread(target=writer)
    start = time.perf_counter()
    th.start()
    while got < n:
        batch = await t.read()
        if kind == "scalar":
            got += len(scalar.feed(batch.data))
        else:
            got += len(columns.decode([batch], t.baud).nonces)
    dt = time.perf_counter() - start
    th.join()
    await t.close()
    os.close(master)
    os.close(slave)
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    a = ap.parse_args()
    data = payload(a.frames)
    for kind in ("scalar", "hot-path"):
        rate = asyncio.run(run(kind, data, a.frames))
        ratio = rate / LINE_RATE
        print(f"{kind:8s} pty -> SerialTransport -> decoder: {rate:12,.0f} replies/s = {ratio:5.1f}x line")


if __name__ == "__main__":
    main()
