"""Live reservoir service: MQTT inputs drive a board (or the emulator); a trained readout predicts.

Topics (``docs/mqtt.md``): ``<root>/<host>/live/input`` carries ``{"seq": n, "u": value}``; for every input
the service publishes ``{"seq": n, "y": prediction, "latency_s": s}`` on ``<root>/<host>/live/prediction``.

One input step = the hardware-in-the-loop reservoir of :mod:`reservoir.asic` for one time step: ``u`` is
scaled to [-1, 1] with the training range, spread over ``n_sub`` masked sub-slots of ``slot_ns`` each as
frequency setpoints in [f_min, f_max], the board runs them, and the events of each sub-slot become the state
row (:mod:`reservoir.features`) that the readout turns into ``y``. Setpoints reach the board only through
the safety envelope: either a :class:`~daemon.substrate.BoardSubstrate` (its own supervised board or an
emulated one; :class:`SubstrateSource`) or the daemon's own supervisor via the ``modulate`` plan
(:func:`daemon.plans.run_modulate`; :class:`PlanSource`).

Latency is measured from the arrival of an input message to the publication of its prediction (host clock,
``clock`` injected) and exported with the prediction, counters and queue state as Prometheus metrics in the
registry passed in. Inputs are processed in arrival order (the substrate is a dynamical system); when more
than ``queue_size`` are waiting the oldest is dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from daemon.live.model import LiveModel
from daemon.live.sources import StateSource
from daemon.mqtt_link import MqttLink, MqttSettings

log = logging.getLogger(__name__)

#: Inputs waiting to be run; beyond this the oldest is dropped (counted) so latency stays bounded.
LIVE_QUEUE = 64
#: Latency histogram buckets (s): 1 ms .. 100 s (an input step lasts n_sub * slot_ns plus overheads).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 100.0)
#: Longest one input step may take before it is abandoned and counted as an error (host s; a step is
#: n_sub * slot_ns of board time plus a few control ticks, so this only fires when the board is stuck).
STEP_TIMEOUT_S = 30.0


def parse_input(payload: bytes) -> tuple[int, float]:
    """``(seq, u)`` of ``{"seq": n, "u": value}``; ``ValueError`` naming the problem otherwise."""
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError("input must be a JSON object {seq, u}")
    seq, u = obj.get("seq"), obj.get("u")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError(f"seq must be an integer, got {seq!r}")
    if not isinstance(u, int | float) or isinstance(u, bool) or not math.isfinite(u):
        raise ValueError(f"u must be a finite number, got {u!r}")
    return seq, float(u)


class LiveMetrics:
    """The service's Prometheus metrics, registered in ``registry`` (names per docs/architecture.md)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.inputs = Counter("asicrc_live_inputs_total", "Live inputs received", registry=registry)
        self.predictions = Counter(
            "asicrc_live_predictions_total", "Live predictions published", registry=registry
        )
        self.malformed = Counter(
            "asicrc_live_malformed_total", "Live inputs refused as malformed", registry=registry
        )
        self.dropped = Counter(
            "asicrc_live_dropped_total", "Live inputs dropped (queue full)", registry=registry
        )
        self.errors = Counter(
            "asicrc_live_errors_total", "Live steps that failed on the board", registry=registry
        )
        self.prediction = Gauge("asicrc_live_prediction", "Latest live prediction", registry=registry)
        self.queued = Gauge("asicrc_live_queued_inputs", "Live inputs waiting", registry=registry)
        self.latency = Histogram(
            "asicrc_live_latency_seconds",
            "Input arrival to prediction publication",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


class LiveService:
    """Queue of inputs -> state rows (``source``) -> readout -> ``publish(prediction dict)``.

    Call :meth:`offer` with each input message (never blocks, never raises) and run :meth:`run` as a task.
    ``clock`` (ns) timestamps arrivals and publications; ``latencies_s`` keeps the latest measurements.
    """

    def __init__(
        self,
        model: LiveModel,
        source: StateSource,
        publish: Callable[[dict[str, Any]], None],
        *,
        registry: CollectorRegistry,
        clock: Callable[[], int] = time.monotonic_ns,
        queue_size: int = LIVE_QUEUE,
        step_timeout_s: float = STEP_TIMEOUT_S,
    ) -> None:
        dim = getattr(source, "state_dim", None)
        want = getattr(model.readout, "n_features_in_", None)
        if dim is not None and want is not None and dim != want:
            raise ValueError(
                f"the readout takes {want} features but this board gives {dim} (n_sub x chips x features):"
                f" it was trained with other reservoir parameters or another number of chips"
            )
        self.model = model
        self.step_timeout_s = step_timeout_s
        self.source = source
        self.publish = publish
        self.metrics = LiveMetrics(registry)
        self.clock = clock
        self.latencies_s: collections.deque[float] = collections.deque(maxlen=100_000)
        self._queue: collections.deque[tuple[int, float, int]] = collections.deque()
        self._queue_size = queue_size
        self.malformed = 0
        self._wakeup = asyncio.Event()

    def offer(self, payload: bytes) -> bool:
        """Queue one input message; False when malformed (counted)."""
        arrival = self.clock()
        try:
            seq, u = parse_input(payload)
        except ValueError as exc:
            if not self.malformed:
                log.warning("live: malformed input refused: %s", exc)
            self.malformed += 1
            self.metrics.malformed.inc()
            return False
        self.metrics.inputs.inc()
        if len(self._queue) >= self._queue_size:
            self._queue.popleft()
            self.metrics.dropped.inc()
        self._queue.append((seq, u, arrival))
        self.metrics.queued.set(len(self._queue))
        self._wakeup.set()
        return True

    async def step(self, seq: int, u: float, arrival_ns: int) -> dict[str, Any]:
        """Run one input and return its prediction message (also published and counted)."""
        async with asyncio.timeout(self.step_timeout_s):
            state = await self.source.step(self.model.params.scale(u))
        y = float(np.asarray(self.model.readout.predict(state[None, :])).reshape(-1)[0])
        latency = (self.clock() - arrival_ns) / 1e9
        msg = {"seq": seq, "y": y, "latency_s": latency}
        self.publish(msg)
        self.latencies_s.append(latency)
        self.metrics.predictions.inc()
        self.metrics.prediction.set(y)
        self.metrics.latency.observe(latency)
        return msg

    async def run(self) -> None:
        """Process inputs in arrival order until cancelled; a failing step is logged and counted."""
        while True:
            while self._queue:
                seq, u, arrival = self._queue.popleft()
                self.metrics.queued.set(len(self._queue))
                try:
                    await self.step(seq, u, arrival)
                except TimeoutError:
                    self.metrics.errors.inc()
                    log.error("live: step %d abandoned after %g s (board stuck?)", seq, self.step_timeout_s)
                except Exception:
                    self.metrics.errors.inc()
                    log.exception("live: step %d failed", seq)
            self._wakeup.clear()
            await self._wakeup.wait()


def live_connection(
    settings: MqttSettings,
    make_service: Callable[[Callable[[dict[str, Any]], None]], LiveService],
    *,
    identifier: str | None = None,
) -> tuple[LiveService, MqttLink]:
    """A service and its broker connection, built together: ``make_service(publish)`` gets the publisher on
    ``<base>/live/prediction``; the link subscribes ``<base>/live/input`` into :meth:`LiveService.offer`
    (its handler runs only once the link runs, when the service exists); ``make_service`` errors propagate."""
    base = settings.base
    ident = identifier or f"asicrc-live-{settings.host_id}-{os.getpid()}"
    services: list[LiveService] = []
    link = MqttLink(settings, [f"{base}/live/input"], lambda _t, p: services[0].offer(p), identifier=ident)
    services.append(
        make_service(lambda msg: link.publish(f"{base}/live/prediction", json.dumps(msg).encode()))
    )
    return services[0], link


async def run_live(service: LiveService, loop: MqttLink) -> None:
    """Run the broker connection and the service until cancelled (both tasks end together)."""
    tasks = [
        asyncio.create_task(loop.run(), name="live-mqtt"),
        asyncio.create_task(service.run(), name="live"),
    ]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
