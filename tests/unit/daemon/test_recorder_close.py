"""Closing after a write error: the last rows (the shutdown's safety log) get one more attempt."""

from __future__ import annotations

from pathlib import Path

from daemon.events import make_log_batch
from daemon.recorder import Recorder, RecorderPolicy
from daemon.recording import read_table
from daemon.state import RecorderStats
from tests.unit.daemon.test_recorder import FakeClock


def test_close_inside_the_retry_interval_still_writes_the_last_rows(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    clock = FakeClock()
    stats = RecorderStats()
    run = blocker / "recordings" / "r"
    rec = Recorder(run, boards=["sim0"], stats=stats, clock=clock, policy=RecorderPolicy(retry_interval_s=10))
    rec.open()
    rec.add(make_log_batch(1, "sim0", "setpoint", {"voltage_v": 1.2, "freq_mhz": 485.0}))
    rec.flush()  # fails: dropped and counted, next retry in 10 s
    assert not stats.healthy and stats.error_dropped_log_rows == 1
    blocker.unlink()  # the disk has room again, 1 s later: well inside the retry interval
    clock.t += 1.0
    rec.add(make_log_batch(2, "sim0", "setpoint", {"voltage_v": 1.1, "freq_mhz": 50.0}))
    rec.close()
    assert stats.healthy and stats.log_rows == 1
    rows = read_table(run, "log").to_pylist()
    assert [r["kind"] for r in rows] == ["setpoint"] and '"voltage_v": 1.1' in rows[0]["payload"]


SCRIPT = """
import resource, signal, sys
import numpy as np
from pathlib import Path
from daemon.events import make_event_batch, make_log_batch
from daemon.recorder import Recorder, RecorderPolicy
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))  # writes past 64 kB per file: EFBIG
rec = Recorder(Path(sys.argv[1]), boards=["sim0"], policy=RecorderPolicy(segment_bytes=10**9))
rec.open()
seq = np.arange(20_000, dtype=np.int64)
rec.add(make_event_batch("sim0", t_host_ns=seq, t_ns=seq, chip=0, core=0, small_core=0, job_id=0, nonce=seq,
                         valid=True, voltage_v=1.1, freq_mhz=50.0, ticket_diff=1.0, read_id=seq, point=0))
rec.add(make_log_batch(1, "sim0", "safety", {"action": "shutdown"}))
rec.close()
s = rec.stats
print(s.write_errors, s.error_dropped_rows, s.log_rows, s.error_dropped_log_rows)
"""


def test_an_events_write_error_does_not_take_the_log_rows_with_it(tmp_path: Path) -> None:
    """A real EFBIG (a 64 kB file-size limit in a child process) on a large events batch."""
    import subprocess
    import sys

    from daemon.recording import recover_dir

    root = Path(__file__).resolve().parents[3]
    run = tmp_path / "r"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(run)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    errors, dropped, log_rows, dropped_log = map(int, proc.stdout.split())
    assert errors >= 1 and dropped == 20_000  # the events were lost, and counted
    assert (log_rows, dropped_log) == (1, 0)  # the safety log was written first and counted as written
    recover_dir(run)  # what the next start does
    assert [r["kind"] for r in read_table(run, "log").to_pylist()] == ["safety"]
