"""daemon.virtual_time: an event loop on emulated time, and the in-process emulated board on it."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from daemon.config import SimulateConfig
from daemon.sim_boards import InProcessSimBoard
from daemon.virtual_time import VirtualClock, VirtualTimeLoop, unfrozen
from drivers.frames import read_reg


def _run(loop: VirtualTimeLoop, coro: object) -> object:
    return loop.run_until_complete(unfrozen(loop, coro))  # type: ignore[arg-type]


def test_sleeps_and_timeouts_land_at_their_exact_emulated_time() -> None:
    loop = VirtualTimeLoop()
    try:
        seen: list[tuple[str, int]] = []

        async def sleeper(name: str, s: float) -> None:
            await asyncio.sleep(s)
            seen.append((name, loop.now_ns()))

        async def main() -> None:
            await asyncio.gather(sleeper("a", 3600.0), sleeper("b", 0.25), sleeper("c", 1e-6))
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(asyncio.Event().wait(), 10.0)

        t0 = time.monotonic()
        _run(loop, main())
        assert time.monotonic() - t0 < 5.0  # an emulated hour and more, not a real one
        assert seen == [("c", 1_000), ("b", 250_000_000), ("a", 3_600_000_000_000)]
        assert loop.now_ns() == 3_610_000_000_000
        assert loop.frozen  # frozen again after the call
    finally:
        loop.close()


def test_a_frozen_loop_keeps_its_time_while_other_threads_wait() -> None:
    loop = VirtualTimeLoop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        ticks: list[int] = []

        async def ticker() -> None:
            while True:
                ticks.append(loop.now_ns())
                await asyncio.sleep(0.001)

        async def start() -> asyncio.Task[None]:
            return asyncio.ensure_future(ticker())

        fut = asyncio.run_coroutine_threadsafe(unfrozen(loop, start()), loop)
        task = fut.result(5.0)
        frozen_at = loop.now_ns()
        time.sleep(0.05)  # real time passes, emulated time does not
        assert loop.now_ns() == frozen_at and len(ticks) == 1

        async def wait(s: float) -> int:
            await asyncio.sleep(s)
            return loop.now_ns()

        end = asyncio.run_coroutine_threadsafe(unfrozen(loop, wait(0.01)), loop).result(5.0)
        assert end == frozen_at + 10_000_000
        assert ticks == [i * 1_000_000 for i in range(len(ticks))] and len(ticks) == 11
        loop.call_soon_threadsafe(task.cancel)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)
        loop.close()


def test_the_in_process_board_answers_the_wire_protocol_at_modelled_times() -> None:
    """A chip-address read broadcast over the loopback: each chip's reply arrives when the link model says, on
    the emulated clock, and two runs give identical bytes and times."""

    def one_run() -> tuple[list[tuple[bytes, int]], float]:
        loop = VirtualTimeLoop()
        try:

            async def main() -> tuple[list[tuple[bytes, int]], float]:
                ib = InProcessSimBoard(SimulateConfig(chips=3, seed=7), VirtualClock(loop))
                ib.start()
                await ib.data.open()
                await asyncio.sleep(0.5)
                t_cmd = loop.now_ns()
                await ib.data.write(read_reg(0x00).encode())
                got = []
                for _ in range(3):
                    batch = await asyncio.wait_for(ib.data.read(), 1.0)
                    got.append((batch.data, batch.t_host_ns - t_cmd))
                ib.stop()
                return got, ib.board.core.baud

            return _run(loop, main())  # type: ignore[return-value]
        finally:
            loop.close()

    (a, baud), (b, _) = one_run(), one_run()
    assert a == b
    # BM1366 register replies (9 bytes: AA 55, chip id 0x1366, ...), one per chip, back to back on the UART
    assert [d[:4] for d, _ in a] == [b"\xaa\x55\x13\x66"] * 3 and all(len(d) == 9 for d, _ in a)
    wire_ns = 9 * 10 / baud * 1e9
    times = [t for _, t in a]
    assert times[0] >= wire_ns
    assert times[1] - times[0] == pytest.approx(wire_ns, abs=2)
    assert times[2] - times[1] == pytest.approx(wire_ns, abs=2)
