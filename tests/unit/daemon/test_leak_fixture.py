"""The leaked-task fixture itself: a test that leaves a task behind must fail."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]


def test_leaking_async_test_fails(pytester: pytest.Pytester) -> None:
    import tests.conftest as conf

    pytester.makeconftest(Path(conf.__file__).read_text())
    pytester.makepyfile(
        """
        import asyncio

        async def test_leaks():
            asyncio.get_running_loop().create_task(asyncio.sleep(10))

        async def test_clean():
            t = asyncio.get_running_loop().create_task(asyncio.sleep(0))
            await t
        """
    )
    result = pytester.runpytest(
        "-p", "asyncio", "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    # the leaking test body passes, then its teardown errors
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*leaked 1 asyncio task*"])


async def test_clean_async_test_passes() -> None:
    await asyncio.sleep(0)
