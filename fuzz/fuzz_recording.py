"""atheris target: recovery and reading of an arbitrary (torn, corrupted) recording segment.

Crash condition: recovery raising anything; the reader raising anything but pyarrow / ValueError / OSError
errors, or returning a table that fails full validation. Run:
``.venv/bin/python fuzz/fuzz_recording.py -max_total_time=600`` (seed it with real ``events-*.arrows`` files).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import _common  # noqa: F401 - sys.path
import atheris

with atheris.instrument_imports():
    import pyarrow as pa

    from daemon.recording import read_table, recover_dir

_ROOT = Path(tempfile.mkdtemp(prefix="asicrc-fuzz-rec-"))


def test_one_input(data: bytes) -> None:
    run = _ROOT / "run"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    torn = bool(data[:1]) and data[0] & 1
    name = "events-000000.arrows.part" if torn else "events-000000.arrows"
    (run / name).write_bytes(data[1:])
    recover_dir(run)
    try:
        table = read_table(run)
    except (pa.ArrowException, ValueError, OSError):
        return
    table.validate(full=True)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
