"""atheris target: the config loader on arbitrary file bytes.

Crash condition: any exception other than ``ConfigError`` (whose message names the key or the file).
Run: ``.venv/bin/python fuzz/fuzz_config.py -max_total_time=600``. Seed corpus: ``systemd/*.toml``.
"""

from __future__ import annotations

import os
import sys
import tempfile

import _common  # noqa: F401 - sys.path
import atheris

with atheris.instrument_imports():
    from daemon.config import ConfigError, load_config

_FD, _PATH = tempfile.mkstemp(suffix=".toml")
os.close(_FD)


def test_one_input(data: bytes) -> None:
    with open(_PATH, "wb") as fh:
        fh.write(data)
    try:
        load_config(_PATH)
    except ConfigError as exc:
        if exc.path not in str(exc):
            raise AssertionError(f"error does not name its key: {exc}") from exc


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
