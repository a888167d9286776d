"""Transport + reader throughput over a real pty: nonce replies/s delivered, vs one 3.125 Mbaud link.

Run: .venv/bin/python benchmarks/bench_transport.py [--frames N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
import tty

from drivers.frames import NonceReply
from drivers.transport import FrameReader, ReplyBatchReader, SerialTransport, VectorFrameDecoder

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

    reader: FrameReader | ReplyBatchReader
    if kind == "scalar":
        reader = FrameReader(t)
    elif kind == "frames":
        reader = FrameReader(t, VectorFrameDecoder())
    else:
        reader = ReplyBatchReader(t)
    got = 0
    th = threading.Thread(target=writer)
    start = time.perf_counter()
    th.start()
    while got < n:
        if isinstance(reader, FrameReader):
            got += len(await reader.read_frames())
        else:
            got += len((await reader.read_batch()).replies)
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
    for kind in ("scalar", "frames", "vector"):
        rate = asyncio.run(run(kind, data, a.frames))
        ratio = rate / LINE_RATE
        print(f"{kind:6s} pty -> SerialTransport -> reader: {rate:12,.0f} replies/s = {ratio:5.1f}x line")


if __name__ == "__main__":
    main()
