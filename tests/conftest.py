"""Shared fixtures: leaked-task check, the slow tier switch, and helpers to find external binaries."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Slow tests run only with ASICRC_SLOW=1 (``make slow``); they are never counted as passing otherwise."""
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.fixturenames.insert(0, "_no_leaked_tasks")
    if os.environ.get("ASICRC_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow tier: run with `make slow` (ASICRC_SLOW=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def require_binary(name: str) -> str:
    """Path of an external binary; in CI a missing one fails the test, locally it skips with a reason."""
    path = shutil.which(name)
    if path:
        return path
    if IN_CI:
        pytest.fail(f"{name} is required in CI (make test installs it with apt-get as root)")
    pytest.skip(f"{name} not installed (make test installs it when run as root)")


@pytest_asyncio.fixture
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail an async test that leaves asyncio tasks running when it returns (added to every async test)."""
    before = asyncio.all_tasks()
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    if leaked:
        for t in leaked:
            t.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        pytest.fail(f"test leaked {len(leaked)} asyncio task(s): {[t.get_coro() for t in leaked]}")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test on one torch thread: sparse kernels degrade badly with oversubscribed OpenMP threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
