"""Every Grafana panel query and template-variable query, run through a real Prometheus scraping a real
``asicrc run --simulate 1`` daemon (emulated board on ptys, a sweep plan running), returns series.

Template variables are substituted as Grafana would for one selection: ``$instance`` -> the daemon's scrape
target, ``$board`` -> the emulated board, ``$__rate_interval`` -> 5s (Prometheus scrapes every second here).
An instant query that matches nothing is a success with an empty result, so the data is checked, not the
status.
"""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from daemon.state import INTERARRIVAL_BUCKETS_S
from tests.system.fast_config import fast_config
from tests.system.prom_fixture import Prometheus, free_port, wait_port
from tests.unit.grafana.test_grafana_json import (
    load_dashboards,
    panel_queries,
    parse_label_values,
    substitute,
    variable_queries,
)

pytestmark = pytest.mark.system


ROOT = Path(__file__).resolve().parents[2]

#: Bound on all panel queries together returning data (s): rates need a few 1 s scrapes inside 5 s windows.
DATA_TIMEOUT_S = 40.0
#: Bound on the daemon opening its HTTP port (s): emulator start and chain bring-up.
DAEMON_START_S = 60.0

#: Shrunk timing (tests/system/test_daemon.py) and a sweep that outlasts the test, so plan progress exists.
CONFIG = (
    fast_config(simulate={"chips": 2})
    + """
[[plans]]
name = "grafana"
kind = "sweep"
points = [[1.2, 485.0, 1.0], [1.15, 400.0, 1.0], [1.25, 525.0, 1.0]]
settle_s = 0.1
dwell_s = 60.0
"""
)


def _has_finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@pytest.fixture
def daemon(tmp_path: Path) -> Any:
    """``asicrc run --simulate 1`` with its /metrics on a free loopback port; yields the scrape target."""
    port = free_port()
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(CONFIG)
    cmd = [sys.executable, "-m", "daemon", "run", "--simulate", "1", "--config", str(cfg)]
    cmd += ["--state-dir", str(tmp_path / "state"), "--http", f"127.0.0.1:{port}", "--duration", "300"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        try:
            wait_port(port, DAEMON_START_S)
        except TimeoutError:
            proc.kill()
            raise AssertionError(
                f"daemon did not serve HTTP: {proc.communicate(timeout=10)[1][-3000:]}"
            ) from None
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=10)


def test_every_dashboard_query_returns_series(
    daemon: str, prometheus_factory: Callable[[Sequence[str]], Prometheus]
) -> None:
    prom = prometheus_factory([daemon])
    prom.wait_up()
    values = {"datasource": "asicrc-prometheus", "instance": daemon, "board": "sim0"}
    queries = {
        f"{dash['uid']} / {p['title']} / {t['refId']}": substitute(t["expr"], values)
        for dash in load_dashboards().values()
        for p, t in panel_queries(dash)
    }
    assert len(queries) >= 50
    # every panel query returns at least one finite sample within one shared bound
    pending = dict(queries)
    results: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        for key, expr in list(pending.items()):
            res = prom.query(expr)
            if res and _has_finite(res):
                results[key] = res
                del pending[key]
        if pending:
            time.sleep(0.5)
    assert not pending, "queries without data:\n" + "\n".join(f"{k}: {e}" for k, e in pending.items())

    # as Grafana draws time series: a range query over the last seconds has finite points
    end = time.time()
    for key, expr in queries.items():
        rng = prom.api("query_range", query=expr, start=str(end - 10), end=str(end), step="1")["result"]
        assert any(math.isfinite(float(v)) for r in rng for _, v in r["values"]), (key, expr)

    # "All" selected in a multi-value variable: Grafana substitutes its allValue (.*)
    for dash in load_dashboards().values():
        every = dict(values)
        for v in dash["templating"]["list"]:
            if v.get("includeAll"):
                every[v["name"]] = v["allValue"]
        for p, t in panel_queries(dash):
            assert prom.query(substitute(t["expr"], every)), (dash["uid"], p["title"], every)

    # template variables resolve to the real host and board
    for dash in load_dashboards().values():
        for name, query in variable_queries(dash).items():
            selector, label = parse_label_values(substitute(query, values))
            assert selector is not None
            series = prom.api("series", **{"match[]": selector})
            got = {s[label] for s in series if label in s}
            assert values[name] in got, (dash["uid"], name, got)

    # values that check the PromQL arithmetic, not only that series exist
    by_title = results  # keys: "<dashboard uid> / <panel title> / <refId>"
    heat = by_title["asicrc-timing / Inter-arrival time / A"]
    assert {r["metric"]["le"] for r in heat} == {repr(float(b)) for b in INTERARRIVAL_BUCKETS_S} | {"+Inf"}
    ratio = float(by_title["asicrc-fleet / Nonce rate / expected / A"][0]["value"][1])
    assert 0.2 < ratio < 5.0, ratio  # the expected-rate formula is in the right units (x894, / 2^32)
    freq = float(by_title["asicrc-board / Clock setpoint / A"][0]["value"][1])
    assert 100e6 < freq < 1e9, freq
    plan = by_title["asicrc-plan / Plan point / B"]
    assert [float(r["value"][1]) for r in plan] == [3.0]
