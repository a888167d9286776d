"""A real Dask cluster on loopback: ``dask scheduler`` and two ``dask worker`` processes, bounded waits.

The fixtures are registered in tests/system/conftest.py (test modules use them by name):
``dask_cluster`` is shared by the module's tests, ``dask_cluster_own`` belongs to one test (kill its workers).
Workers run without a nanny, so :meth:`DaskCluster.kill_worker` really ends one (the scheduler then re-runs
its tasks elsewhere); every process is killed at teardown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from tests.system.netutil import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
#: Bounds (s): the scheduler listens within ~2 s, workers join within ~5 s on an idle machine.
START_TIMEOUT_S = 60.0
N_WORKERS = 2


def dask_cli() -> list[str]:
    """The ``dask`` command of this interpreter's environment (skips when Dask is not installed)."""
    pytest.importorskip("distributed", reason="Dask distributed not installed (pip install '.[cluster]')")
    exe = Path(sys.executable).parent / "dask"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dask"]


@dataclass
class DaskCluster:
    """A running scheduler (``address``), its worker processes and an open client."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]
    client: Any = None
    logs: list[IO[bytes]] = field(default_factory=list)

    def worker_address(self, proc: subprocess.Popen[bytes]) -> str:
        """The scheduler's address of the worker run by ``proc``."""
        for addr, pid in self.client.run(os.getpid).items():
            if pid == proc.pid:
                return str(addr)
        raise LookupError(f"worker pid {proc.pid} is not connected")

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL one worker process (no clean shutdown: its running tasks are lost)."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop(self) -> None:
        """Close the client, SIGTERM every process (bounded), SIGKILL leftovers."""
        if self.client is not None:
            self.client.close()
            self.client = None
        procs = [*self.workers, self.scheduler]
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for f in self.logs:
            f.close()


def start_cluster(tmp: Path, n_workers: int = N_WORKERS) -> DaskCluster:
    """Start a scheduler on a free 127.0.0.1 port and ``n_workers`` single-threaded workers; wait for all."""
    import distributed

    Client: Any = distributed.Client
    cli = dask_cli()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    slog = open(tmp / "scheduler.log", "wb")  # noqa: SIM115 - owned by the cluster
    sched = subprocess.Popen(
        [*cli, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=slog,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp,
    )
    cluster = DaskCluster(f"tcp://127.0.0.1:{port}", sched, [], logs=[slog])
    try:
        wait_port(port, START_TIMEOUT_S)
        for i in range(n_workers):
            wlog = open(tmp / f"worker{i}.log", "wb")  # noqa: SIM115 - owned by the cluster
            cluster.logs.append(wlog)
            cmd = [*cli, "worker", cluster.address, "--host", "127.0.0.1", "--nthreads", "1"]
            cmd += ["--no-nanny", "--no-dashboard", "--name", f"w{i}", "--local-directory", str(tmp)]
            cluster.workers.append(subprocess.Popen(cmd, stdout=wlog, stderr=subprocess.STDOUT, env=env))
        cluster.client = Client(cluster.address, timeout=START_TIMEOUT_S, set_as_default=False)
        deadline = time.monotonic() + START_TIMEOUT_S
        cluster.client.wait_for_workers(n_workers, timeout=max(deadline - time.monotonic(), 1.0))
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """A scheduler and two workers on loopback shared by a module's tests (do not kill its workers); all
    stopped at teardown."""
    cluster = start_cluster(tmp_path_factory.mktemp("dask"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def dask_cluster_own(tmp_path: Path) -> Iterator[DaskCluster]:
    """A scheduler and two workers for one test (which may kill workers); all stopped at teardown."""
    cluster = start_cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()
