"""HTTP endpoints served from the daemon's event loop (aiohttp): ``/metrics``, ``/healthz``, ``/status``.

Bound to 127.0.0.1 by default (docs/architecture.md). ``/healthz`` is 200 while the loop answers, not every
board has
failed, every board came up within the start-up window (:meth:`DaemonState.health`) and the optional
heartbeat is fresh; 503 otherwise with the reason, always with a JSON body.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from daemon.metrics import make_registry, render
from daemon.state import DaemonState

log = logging.getLogger(__name__)

#: Default bind address and port (docs/architecture.md: loopback only unless configured; 9366 after the chip
#: name).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9366

STATE_KEY = web.AppKey("state", DaemonState)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)
HEARTBEAT_KEY = web.AppKey("max_heartbeat_age_s", float)


async def _metrics(request: web.Request) -> web.Response:
    body, content_type = render(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    age = request.app.get(HEARTBEAT_KEY)
    ok, reason = state.health(age if age and age > 0 else None)
    body: dict[str, Any] = {
        "status": "ok" if ok else "unhealthy",
        "reason": reason,
        "boards": {name: b.status for name, b in state.boards.items()},
        "recorder_healthy": state.recorder.healthy,
    }
    return web.json_response(body, status=200 if ok else 503)


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].to_status())


def make_app(
    state: DaemonState, registry: CollectorRegistry | None = None, *, max_heartbeat_age_s: float = 0.0
) -> web.Application:
    """The aiohttp application; ``registry`` defaults to :func:`daemon.metrics.make_registry` of ``state``.

    ``max_heartbeat_age_s`` > 0 makes ``/healthz`` fail when :meth:`DaemonState.heartbeat` is older than that.
    """
    app = web.Application()
    app[STATE_KEY] = state
    app[REGISTRY_KEY] = registry if registry is not None else make_registry(state)
    app[HEARTBEAT_KEY] = max_heartbeat_age_s
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/status", _status)
    return app


class HttpServer:
    """Runs an app with aiohttp's AppRunner/TCPSite inside the current loop: ``await start()``/``stop()``.

    Port 0 picks a free port; :attr:`port` is the one bound after ``start``.
    """

    def __init__(self, app: web.Application, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve; raises OSError (e.g. address in use) with the address in the message."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        addresses = runner.addresses  # (host, port, ...) per bound socket
        if addresses:
            self.port = int(addresses[0][1])
        self._runner = runner
        log.info("http: serving /metrics /healthz /status on http://%s:%d", self.host, self.port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        """Close the listener and finish in-flight requests (idempotent)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
