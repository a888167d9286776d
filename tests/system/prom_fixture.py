"""A real Prometheus on a free loopback port scraping asicrc's /metrics, with bounded waits.

Reusable pieces (import them: ``from tests.system.prom_fixture import prometheus_factory, metrics_server``):

- :class:`Prometheus`: a running server; :meth:`~Prometheus.query` runs an instant PromQL query through the
  HTTP API and returns the result list (empty means no series: check it, an empty answer is not an error);
  :meth:`~Prometheus.wait_up` waits until every target's last scrape succeeded.
- :class:`MetricsServer`: the daemon's aiohttp app (``daemon.http.make_app``) serving a :class:`DaemonState`
  from its own thread and event loop, so a synchronous test can mutate the state between scrapes.
- fixtures ``prometheus_factory`` (start one or more servers for given targets; all stopped at teardown) and
  ``metrics_server`` (a server fed with :func:`synthetic_state`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.events import Pipeline, make_event_batch
from daemon.http import HttpServer, make_app
from daemon.state import DaemonState, PlanProgress
from tests.conftest import require_binary
from tests.system.netutil import free_port as free_port  # re-exported for the tests
from tests.system.netutil import wait_port as _wait_port

#: Bounds on waiting (s): Prometheus starts in ~1-3 s; the first scrape follows within one interval.
START_TIMEOUT_S = 30.0
UP_TIMEOUT_S = 30.0
#: Scrape interval used by the test configs (Prometheus accepts 1 s).
SCRAPE_INTERVAL = "1s"


def wait_port(port: int, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until 127.0.0.1:port accepts a TCP connection, or raise TimeoutError."""
    _wait_port(port, timeout_s)


@dataclass
class Prometheus:
    """A running prometheus process (its port, workdir and Popen)."""

    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    targets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return ``data`` (raises on an error status)."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; the list of ``{"metric": labels, "value": [t, "v"]}`` (vector results)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_up(self, timeout_s: float = UP_TIMEOUT_S) -> list[dict[str, Any]]:
        """Wait until every active target reports health "up"; returns the targets. TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        active: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            active = self.api("targets")["activeTargets"]
            if active and len(active) >= len(self.targets) and all(t["health"] == "up" for t in active):
                return active
            time.sleep(0.2)
        raise TimeoutError(f"prometheus targets not up after {timeout_s} s: {active}")

    def wait_query(
        self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Re-run ``expr`` until ``predicate(result)``; TimeoutError with the last result otherwise."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{expr!r} never satisfied the predicate; last result {result}")

    def stop(self) -> None:
        """SIGTERM, bounded wait, SIGKILL."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_prometheus(workdir: Path, targets: Sequence[str], job: str = "asicrc") -> Prometheus:
    """Start prometheus scraping ``targets`` (``host:port``) each :data:`SCRAPE_INTERVAL`; await its API."""
    exe = require_binary("prometheus")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = workdir / "prometheus.yml"
    conf.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE_INTERVAL}\n"
        f"  evaluation_interval: {SCRAPE_INTERVAL}\n"
        "scrape_configs:\n"
        f"  - job_name: {job}\n"
        f"    scrape_timeout: {SCRAPE_INTERVAL}\n"
        "    static_configs:\n"
        f"      - targets: {json.dumps(list(targets))}\n"
    )
    log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(
        [
            exe,
            f"--config.file={conf}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
    )
    log.close()
    prom = Prometheus(port, workdir, proc, list(targets))
    try:
        wait_port(port, START_TIMEOUT_S)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # the port opens slightly before the API answers
            try:
                prom.api("status/buildinfo")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    except BaseException:
        prom.stop()
        raise RuntimeError(
            f"prometheus did not start: {(workdir / 'prometheus.log').read_text()[-2000:]}"
        ) from None
    return prom


class MetricsServer:
    """Serve ``make_app(state)`` on 127.0.0.1:<free port> from a background thread's event loop."""

    def __init__(self, state: DaemonState) -> None:
        self.state = state
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> MetricsServer:
        self._thread = threading.Thread(target=self._main, name="metrics-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S) or self._error:
            raise RuntimeError(f"metrics server did not start: {self._error}")
        return self

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = HttpServer(make_app(self.state), host="127.0.0.1", port=0)
        try:
            await server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self.port = server.port
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await server.stop()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)


def synthetic_state(boards: int = 2, chips: int = 4, seed: int = 0) -> DaemonState:
    """A DaemonState fed through a real pipeline: events on every chip, setpoints, sensors, plan progress."""
    rng = np.random.default_rng(seed)
    state = DaemonState(version="0.0.0+test", host="testhost")
    p = Pipeline()
    state.pipeline = p
    p.add_listener("state", state.update_from_events)
    p.subscribe("recorder", 4)
    for k in range(boards):
        name = f"emu{k}"
        b = state.add_board(name, "emulator", chips)
        b.status, b.connected = "connected", True
        b.set_setpoint(1.2, 485.0, 256.0)
        b.chip_temp_c, b.vr_temp_c, b.power_w, b.vin_v = 52.0 + k, 61.0, 14.2, 5.05
        b.plan = PlanProgress("demo-sweep", i=1, n=4, eta_s=12.0)
        n = 500
        t = np.cumsum(rng.exponential(1e7, n)).astype(np.int64)
        p.publish(
            make_event_batch(
                name, t_host_ns=t, t_ns=t, chip=np.arange(n) % chips, core=rng.integers(0, 112, n),
                small_core=0, job_id=0, nonce=rng.integers(0, 2**32, n), valid=rng.random(n) > 0.05,
                voltage_v=1.2, freq_mhz=485.0, ticket_diff=256.0, read_id=np.arange(n),
            )
        )  # fmt: skip
    return state


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[Sequence[str]], Prometheus]]:
    """``start(targets) -> Prometheus``; every server started is stopped at teardown."""
    started: list[Prometheus] = []

    def start(targets: Sequence[str]) -> Prometheus:
        prom = start_prometheus(tmp_path / f"prom{len(started)}", targets)
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    """/metrics, /healthz, /status of :func:`synthetic_state` on a free loopback port."""
    server = MetricsServer(synthetic_state()).start()
    yield server
    server.stop()
