"""Recorder under real failures: SIGKILL mid-recording, a full disk, a read-only state directory, a file-size
limit. Nothing raises out of the recorder, every error is counted and visible as a metric, and a killed writer
loses at most the rows of its last flush interval."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.events import make_event_batch
from daemon.metrics import make_registry, render
from daemon.recorder import Recorder, RecorderPolicy
from daemon.recording import read_table, segments
from daemon.state import DaemonState

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]

#: The writer: publishes 100-row batches (t_ns = sequence numbers) through the pipeline into Recorder.run and
#: prints the recorder's written-row count each time it grows, so the parent knows what reached the kernel.
CHILD = r"""
import asyncio, sys
import numpy as np
from daemon.events import Pipeline, make_event_batch
from daemon.recorder import Recorder, RecorderPolicy

async def main(run_dir):
    p = Pipeline()
    sub = p.subscribe("recorder", 10_000)
    rec = Recorder(run_dir, policy=RecorderPolicy(flush_interval_s=0.05, fsync_interval_s=1.0))
    task = asyncio.create_task(rec.run(sub))
    seq, shown = 0, -1
    while True:
        t = np.arange(seq, seq + 100, dtype=np.int64)
        p.publish(make_event_batch("emu0", t_host_ns=t, t_ns=t, chip=t % 4, core=0, small_core=0, job_id=0,
                                   nonce=t, valid=True, voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0,
                                   read_id=t // 10))
        seq += 100
        if rec.stats.rows != shown:
            shown = rec.stats.rows
            print(f"flushed {shown} published {seq}", flush=True)
        await asyncio.sleep(0.002)

asyncio.run(main(sys.argv[1]))
"""


def test_sigkill_mid_recording_loses_at_most_one_flush_interval(tmp_path: Path) -> None:
    run = tmp_path / "recordings" / "run1"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(run)], stdout=subprocess.PIPE, text=True, cwd=ROOT, env=_env()
    )
    flushed = 0
    deadline = time.monotonic() + 60
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            flushed = int(line.split()[1])
            if flushed >= 3000 or time.monotonic() > deadline:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert flushed >= 3000, "the writer never flushed 3000 rows"
    assert list(run.glob("events-*.arrows.part")), "a killed writer leaves its open segment as .part"

    rec = Recorder(run)  # a restart recovers the torn segment first
    found = rec.open()
    rec.close()
    assert found and sum(r.rows for r in found) >= 1
    t = read_table(run).column("t_ns").to_numpy()
    # whole batches in order, no gap: a prefix of what was published, and at least what was flushed
    assert np.array_equal(t, np.arange(len(t))) and len(t) >= flushed
    info = subprocess.run(
        [sys.executable, "-m", "daemon", "record", "info", str(run), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout)
    assert summary["rows"] == len(t) and summary["recovered_segments"] == len(found)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# ------------------------------------------------------------------------------------------ full / read-only


@contextlib.contextmanager
def tmpfs(path: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A small tmpfs at ``path`` (needs mount privileges; the test skips without them)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size},mode=0755" + (",ro" if read_only else "")
    p = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True
    )
    if p.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({p.stderr.strip() or 'not root'}); the rlimit variant covers it"
        )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def batch(start: int, n: int = 500) -> pa.RecordBatch:
    t = np.arange(start, start + n, dtype=np.int64)
    return make_event_batch(
        "emu0", t_host_ns=t, t_ns=t, chip=t % 4, core=t % 100, small_core=0, job_id=0, nonce=t, valid=True,
        voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0, read_id=t,
    )  # fmt: skip


def metric(state: DaemonState, name: str) -> float:
    body, _ = render(make_registry(state))
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_full_disk_is_counted_then_recording_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with tmpfs(tmp_path / "state", "512k") as state_dir:
        state = DaemonState()
        clock = Clock()
        rec = Recorder(
            state_dir / "recordings" / "r",
            stats=state.recorder,
            clock=clock,
            policy=RecorderPolicy(retry_interval_s=5.0, segment_bytes=64 * 1024),
        )
        rec.open()
        filler = state_dir / "filler"
        filler.write_bytes(b"\0" * (400 * 1024))
        seq = 0
        for _ in range(40):  # ~30 KiB per flush: the disk fills within a few flushes
            rec.add(batch(seq))
            seq += 500
            clock.t += 1.0
            rec.flush()
        assert state.recorder.write_errors >= 1 and not state.recorder.healthy
        assert "No space left on device" in (state.recorder.last_error or "")
        assert state.recorder.error_dropped_rows > 0
        assert metric(state, "asicrc_recorder_up") == 0.0
        assert metric(state, "asicrc_recorder_write_errors_total") == state.recorder.write_errors
        assert metric(state, "asicrc_recorder_error_dropped_rows_total") == state.recorder.error_dropped_rows
        errors_logged = sum("cannot write recording" in r.message for r in caplog.records)
        assert errors_logged == 1  # logged on the transition, counted on every failed retry
        filler.unlink()  # space comes back: the next retry writes again, no restart needed
        clock.t += 10.0
        rec.add(batch(seq))
        rec.flush()
        rec.close()
        assert state.recorder.healthy and metric(state, "asicrc_recorder_up") == 1.0
        t = read_table(state_dir / "recordings" / "r").column("t_ns").to_numpy()
        assert t[-1] == seq + 499  # the rows after recovery are there
        assert len(t) + state.recorder.error_dropped_rows >= seq  # everything else is counted as dropped
        assert segments(state_dir / "recordings" / "r")


def test_read_only_state_dir_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "64k", read_only=True) as state_dir:
        state = DaemonState()
        clock = Clock()
        rec = Recorder(state_dir / "recordings" / "r", stats=state.recorder, clock=clock)
        assert rec.open() == []
        for i in range(5):
            rec.add(batch(i * 500))
            clock.t += 3.0
            rec.flush()
        rec.close()
        assert "Read-only file system" in (state.recorder.last_error or "")
        assert str(state_dir) in (state.recorder.last_error or "")
        assert state.recorder.error_dropped_rows == 2500 and metric(state, "asicrc_recorder_up") == 0.0


#: Child that records under RLIMIT_FSIZE (works unprivileged): EFBIG instead of ENOSPC.
RLIMIT_CHILD = r"""
import asyncio, json, resource, signal, sys
import numpy as np
from daemon.events import Pipeline, make_event_batch
from daemon.metrics import make_registry, render
from daemon.recorder import Recorder, RecorderPolicy
from daemon.state import DaemonState

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

async def main(run_dir):
    state = DaemonState()
    p = Pipeline()
    state.pipeline = p
    sub = p.subscribe("recorder", 10_000)
    rec = Recorder(run_dir, stats=state.recorder,
                   policy=RecorderPolicy(flush_interval_s=0.01, retry_interval_s=0.05, segment_bytes=10**9))
    task = asyncio.create_task(rec.run(sub))
    for i in range(200):
        t = np.arange(i * 100, i * 100 + 100, dtype=np.int64)
        p.publish(make_event_batch("emu0", t_host_ns=t, t_ns=t, chip=0, core=0, small_core=0, job_id=0,
                                   nonce=t, valid=True, voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0,
                                   read_id=0))
        await asyncio.sleep(0.002)
    p.close()
    await task
    body, _ = render(make_registry(state))
    print(json.dumps({"stats": state.recorder.to_status(), "published": p.published_rows,
                      "metrics": body.decode()}))

asyncio.run(main(sys.argv[1]))
"""


def test_file_size_limit_keeps_the_daemon_alive_and_counts_drops(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", RLIMIT_CHILD, str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    stats = out["stats"]
    assert stats["write_errors"] >= 1 and stats["error_dropped_rows"] > 0
    assert "File too large" in stats["last_error"]
    assert f"asicrc_recorder_write_errors_total {float(stats['write_errors'])}" in out["metrics"]
    # each segment hits the per-file limit; the retry recovers the torn part and goes on in a new segment:
    # one log line per healthy -> failing transition, never a traceback
    assert "Traceback" not in proc.stderr
    assert 1 <= proc.stderr.count("cannot write recording") <= stats["write_errors"]
    assert len(segments(tmp_path / "r")) >= 2
    # whatever was written before the limit is readable after recovery; written + dropped = published
    rec = Recorder(tmp_path / "r")
    rec.open()
    rec.close()
    kept = read_table(tmp_path / "r").num_rows
    assert 0 < kept <= stats["rows"] and stats["rows"] + stats["error_dropped_rows"] == out["published"]
