"""Heap trimming helpers of the daemon."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

from daemon import memory


def test_malloc_trim_returns_a_bool() -> None:
    assert isinstance(memory.malloc_trim(), bool)


def test_system_pool_is_selected() -> None:
    before = pa.default_memory_pool()
    try:
        assert memory.use_system_arrow_pool() == "system"
        assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(before)


async def test_trim_loop_runs_and_cancels() -> None:
    if memory._MALLOC_TRIM is None:
        pytest.skip("no glibc malloc_trim on this platform")
    task = asyncio.create_task(memory.trim_loop(interval_s=0.001))
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
