"""The daemon as a subprocess on emulated boards with a fault channel on stdin (:data:`CHILD`), and the checks
the fault campaign makes of its runs (tests/system/test_faults.py, test_telemetry_errors.py,
test_regulator_fault.py). ``child_factory`` is a fixture, registered in tests/system/conftest.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.recording import read_table
from tests.polling import wait_for
from tests.system.fast_config import fast_config
from tests.system.netutil import free_port

ROOT = Path(__file__).resolve().parents[2]

#: The daemon plus a fault channel on stdin: argv = config, state dir, http port, boards, duration (s).
CHILD = """
import asyncio, json, sys
from pathlib import Path
from daemon.app import Daemon
from daemon.cli import setup_logging
from daemon.config import load_config
cfg_path, state, port, n, duration = sys.argv[1:6]
setup_logging(0)
d = Daemon(load_config(cfg_path), state_dir=Path(state), http=("127.0.0.1", int(port)),
           duration_s=float(duration), simulate=int(n))
async def faults():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        f = json.loads(line)
        sb = d.sim_boards[f.pop("board", 0)]
        if "firehose" in f:
            sb.board.core.firehose_rate = f["firehose"]
        else:
            sb.board.inject(f)
        print("fault injected:", line.decode().strip(), file=sys.stderr, flush=True)
async def main():
    t = asyncio.create_task(faults())
    try:
        return await d.run()
    finally:
        t.cancel()
sys.exit(asyncio.run(main()))
"""

BASE = fast_config(timing={"silence_timeout_s": 3.0}, http={"enabled": False})

HOLD = """
[[plans]]
name = "h"
kind = "hold"
hold_voltage_v = 1.2
hold_freq_mhz = 485.0
hold_ticket_diff = 1.0
"""

SWEEP = """
[[plans]]
name = "t"
kind = "sweep"
points = [[1.2, 485.0, 1.0], [1.15, 400.0, 1.0], [1.25, 525.0, 1.0]]
settle_s = 0.1
dwell_s = 0.8
"""

#: The configured envelope (defaults): V, MHz.
V_MIN, V_MAX, F_MIN, F_MAX = 1.10, 1.30, 50.0, 575.0


class Child:
    """One daemon subprocess with its state dir, HTTP port and fault channel."""

    def __init__(self, tmp: Path, extra: str, *, boards: int = 1, duration_s: float = 600.0, **popen: Any):
        self.state = tmp / "state"
        self.cfg = tmp / "asicrc.toml"
        tmp.mkdir(parents=True, exist_ok=True)
        self.cfg.write_text(BASE + extra)
        self.port = free_port()
        self.boards, self.duration_s, self.popen = boards, duration_s, popen
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        args = [str(self.cfg), str(self.state), str(self.port), str(self.boards), str(self.duration_s)]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            **self.popen,
        )

    @property
    def p(self) -> subprocess.Popen[str]:
        assert self.proc is not None
        return self.proc

    def inject(self, fault: dict[str, Any]) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(json.dumps(fault) + "\n")
        self.p.stdin.flush()

    def _get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return str(r.read().decode())

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self._get("/status"))
        return data

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """``{(sample name, sorted labels): value}`` from ``/metrics``."""
        out = {}
        for fam in text_string_to_metric_families(self._get("/metrics")):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        return out

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of ``name`` (or ``name_total``) whose labels include ``labels``."""
        want = set(labels.items())
        names = (name, f"{name}_total")
        return sum(v for (n, lab), v in self.metrics().items() if n in names and want <= set(lab))

    def trips(self) -> dict[str, int]:
        """The supervisor's safety trips by reason, from the periodic ``status.json``."""
        data = json.loads((self.state / "status.json").read_text())
        return dict(data["supervisors"]["sim0"]["trips"])

    def wait_for(self, cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
        """:func:`tests.polling.wait_for` on this child (a status file caught half-written is "not yet")."""
        wait_for(
            cond,
            procs=[self.p],
            within_s=timeout_s,
            poll_s=0.1,
            tolerate=(OSError, KeyError, TypeError, ValueError),
        )

    def stop(self, timeout_s: float = 30.0) -> str:
        """SIGTERM and wait: returns stderr; the exit code must be 0."""
        self.p.send_signal(signal.SIGTERM)
        _, err = self.p.communicate(timeout=timeout_s)
        assert self.p.returncode == 0, err[-3000:]
        return err

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.communicate(timeout=10)

    def final(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.state / "status.json").read_text())
        assert data["final"]
        return data

    def runs(self) -> list[Path]:
        return sorted(p for p in (self.state / "recordings").iterdir() if p.is_dir())


@pytest.fixture
def child_factory(tmp_path: Path) -> Iterator[Callable[..., Child]]:
    """``make(extra_config, **kw) -> Child``; every child is killed at teardown if still running."""
    made: list[Child] = []

    def make(extra: str, **kw: Any) -> Child:
        made.append(Child(tmp_path / f"c{len(made)}", extra, **kw))
        return made[-1]

    yield make
    for c in made:
        c.kill()


def _logs(run: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = read_table(run, "log").to_pylist()
    for r in rows:
        r["payload"] = json.loads(r["payload"])
    return rows


def assert_envelope(runs: list[Path], require_log: bool = True) -> list[dict[str, Any]]:
    """Every event's setpoint and every setpoint written stayed inside the envelope; returns the setpoints.

    ``require_log=False`` (full disk): the setpoint log may itself have been lost; check what was kept.
    """
    ev = pa.concat_tables([read_table(r) for r in runs])
    if ev.num_rows:
        v = ev.column("voltage_v").to_numpy()
        f = ev.column("freq_mhz").to_numpy()
        assert v.min() >= V_MIN - 1e-6 and v.max() <= V_MAX + 1e-6, (v.min(), v.max())
        assert f.min() >= F_MIN - 1e-3 and f.max() <= F_MAX + 1e-3, (f.min(), f.max())
    sps = [r["payload"] for run in runs for r in _logs(run) if r["kind"] == "setpoint"]
    if not require_log and not sps:
        return sps
    assert sps
    for p in sps:
        assert p["voltage_v"] == 0.0 or V_MIN - 1e-6 <= p["voltage_v"] <= V_MAX + 1e-6, p
        assert F_MIN - 1e-3 <= p["freq_mhz"] <= F_MAX + 1e-3, p
    assert (sps[-1]["voltage_v"], sps[-1]["freq_mhz"]) == (V_MIN, F_MIN)  # shut down to the floors
    return sps


def assert_no_loss(c: Child, run: Path) -> dict[str, Any]:
    """Every nonce the supervisors counted is in the recording (the promise without a disk fault)."""
    final = c.final()
    events = read_table(run)
    boards = events.column("board").to_pylist()
    for name, b in final["boards"].items():
        assert b["nonces"] > 0
        assert boards.count(name) == b["nonces"] == final["supervisors"][name]["published_rows"], name
    assert final["recorder"]["error_dropped_rows"] == 0
    assert final["pipeline"]["subscribers"]["recorder"]["dropped_rows"] == 0
    return final


def _nonces(c: Child) -> float:
    return c.metric("asicrc_nonces_total")


# ------------------------------------------------------------------------------------------------ scenarios
