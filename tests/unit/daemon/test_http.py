"""The aiohttp endpoints, served in the test's event loop on a loopback port (port 0 = free port)."""

from __future__ import annotations

import json
import socket

import aiohttp
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.events import Pipeline, make_event_batch
from daemon.http import DEFAULT_HOST, HttpServer, make_app
from daemon.state import DaemonState


def fed_state() -> DaemonState:
    state = DaemonState(version="0.9")
    p = Pipeline()
    p.add_listener("state", state.update_from_events)
    state.pipeline = p
    for name in ("a", "b"):
        b = state.add_board(name, "emulator", 4)
        b.status, b.connected = "connected", True
        t = np.arange(10, dtype=np.int64) * 1_000_000
        p.publish(
            make_event_batch(
                name, t_host_ns=t, t_ns=t, chip=np.arange(10) % 4, core=0, small_core=0, job_id=0, nonce=0,
                valid=True, voltage_v=1.2, freq_mhz=485.0, ticket_diff=1.0, read_id=0,
            )
        )  # fmt: skip
    return state


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers["Content-Type"], await r.text()


async def test_endpoints_serve_state_and_metrics() -> None:
    state = fed_state()
    async with HttpServer(make_app(state), host="127.0.0.1", port=0) as srv:
        assert srv.port > 0
        status, ctype, body = await get(srv.url + "/metrics")
        assert status == 200 and ctype.startswith("text/plain")
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        assert sum(s.value for s in fams["asicrc_nonces"].samples) == 20
        status, ctype, body = await get(srv.url + "/status")
        assert status == 200 and ctype.startswith("application/json")
        st = json.loads(body)
        assert st["boards"]["a"]["nonces"] == 10 and st["pipeline"]["published_rows"] == 20
        status, _, body = await get(srv.url + "/healthz")
        assert status == 200 and json.loads(body)["status"] == "ok"
        assert (await get(srv.url + "/nope"))[0] == 404


async def test_healthz_is_503_when_all_boards_failed_or_heartbeat_stale() -> None:
    now = [0]
    state = fed_state()
    state.clock = lambda: now[0]
    async with HttpServer(make_app(state, max_heartbeat_age_s=5.0), port=0) as srv:
        state.boards["a"].status = "failed"
        status, _, body = await get(srv.url + "/healthz")
        assert status == 200  # one board still works
        state.boards["b"].status = "failed"
        status, _, body = await get(srv.url + "/healthz")
        assert status == 503 and json.loads(body) == {
            "status": "unhealthy",
            "reason": "all boards failed",
            "boards": {"a": "failed", "b": "failed"},
            "recorder_healthy": True,
        }
        state.boards["b"].status = "connected"
        state.heartbeat()
        now[0] = 6 * 10**9
        status, _, body = await get(srv.url + "/healthz")
        assert status == 503 and "heartbeat" in json.loads(body)["reason"]


async def test_default_bind_is_loopback_and_stop_is_idempotent() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    srv = HttpServer(make_app(DaemonState()), port=0)
    assert srv.host == "127.0.0.1"
    await srv.start()
    port = srv.port
    await srv.stop()
    await srv.stop()
    with socket.socket() as s:  # the port is free again after stop
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = HttpServer(make_app(DaemonState()), port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await srv.start()
