"""A real Prometheus scrapes the daemon's /metrics and answers queries with the state's values."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pytest

from daemon.events import make_event_batch
from tests.system.prom_fixture import MetricsServer, Prometheus

pytestmark = pytest.mark.system


def value(result: list[dict[str, object]]) -> float:
    assert len(result) == 1, result
    v = result[0]["value"]
    assert isinstance(v, list)
    return float(v[1])


def test_prometheus_scrapes_and_queries_return_series(
    prometheus_factory: Callable[[Sequence[str]], Prometheus], metrics_server: MetricsServer
) -> None:
    prom = prometheus_factory([metrics_server.target])
    targets = prom.wait_up()
    assert targets[0]["labels"]["job"] == "asicrc" and targets[0]["lastError"] == ""
    state = metrics_server.state

    per_chip = prom.query("asicrc_nonces_total")
    assert len(per_chip) == 2 * 4  # boards x chips, nothing finer
    assert {tuple(sorted(set(r["metric"]) - {"__name__", "instance", "job"})) for r in per_chip} == {
        ("board", "chip")
    }
    b0 = state.boards["emu0"]
    assert value(prom.query('asicrc_nonces_total{board="emu0",chip="2"}')) == b0.nonces[2]
    assert (
        value(prom.query('sum(asicrc_invalid_nonces_total{board="emu1"})'))
        == state.boards["emu1"].invalid_total
    )
    assert value(prom.query('asicrc_frequency_hertz{board="emu0"}')) == 485e6
    assert value(prom.query('asicrc_chip_temperature_celsius{board="emu1"}')) == 53.0
    assert value(prom.query('asicrc_nonce_interval_seconds_count{board="emu0"}')) == 499
    median = value(prom.query('histogram_quantile(0.5, asicrc_nonce_interval_seconds_bucket{board="emu0"})'))
    assert 1e-3 < median < 0.1  # exponential gaps with a 10 ms mean: median ~7 ms
    assert value(prom.query("asicrc_build_info")) == 1.0

    # new events show up at the next scrape: the collector reads the state at scrape time
    before = b0.nonces[1]
    t = np.int64(10**13) + np.arange(30, dtype=np.int64)
    b0.update(
        make_event_batch(
            "emu0", t_host_ns=t, t_ns=t, chip=1, core=0, small_core=0, job_id=0, nonce=0, valid=True,
            voltage_v=1.2, freq_mhz=485.0, ticket_diff=256.0, read_id=0,
        )
    )  # fmt: skip
    got = prom.wait_query(
        'asicrc_nonces_total{board="emu0",chip="1"}',
        lambda r: bool(r) and float(r[0]["value"][1]) == before + 30,
    )
    assert value(got) == before + 30
