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

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from daemon.collect import load_readout, save_readout
from daemon.events import Pipeline
from daemon.mqtt_link import MqttLink, MqttSettings
from daemon.plans import PlanTarget, run_modulate
from reservoir.asic import AsicReservoir
from reservoir.features import states_from_slots
from reservoir.readout import RidgeReadout
from reservoir.substrate import EventSlot, SlotSchedule, Substrate

log = logging.getLogger(__name__)

#: Inputs waiting to be run; beyond this the oldest is dropped (counted) so latency stays bounded.
LIVE_QUEUE = 64
#: Latency histogram buckets (s): 1 ms .. 100 s (an input step lasts n_sub * slot_ns plus overheads).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 100.0)
#: Longest one input step may take before it is abandoned and counted as an error (host s; a step is
#: n_sub * slot_ns of board time plus a few control ticks, so this only fires when the board is stuck).
STEP_TIMEOUT_S = 30.0
#: Wait after the last sub-slot for replies still on the wire (s; ~ a batch interval of the supervisor).
PLAN_TAIL_S = 0.15


@dataclass(frozen=True)
class LiveParams:
    """Reservoir parameters a readout was trained with (stored in the readout file's ``meta.live``).

    ``n_sub`` sub-slots per input of ``slot_ns`` ns each, frequencies in [``f_min``, ``f_max``] MHz, mask
    ``seed``; inputs in [``u_lo``, ``u_hi``] map to [-1, 1]; ``n_chips`` chips of the training board.
    """

    n_sub: int = 4
    f_min: float = 400.0
    f_max: float = 575.0
    slot_ns: int = 40_000_000
    seed: int = 0
    u_lo: float = 0.0
    u_hi: float = 1.0
    n_chips: int = 1

    def scale(self, u: float) -> float:
        """``u`` mapped from [u_lo, u_hi] to [-1, 1] (clipped)."""
        span = self.u_hi - self.u_lo
        x = 2.0 * (u - self.u_lo) / span - 1.0 if span > 0 else 0.0
        return float(min(1.0, max(-1.0, x)))

    def reservoir(self, substrate: Substrate) -> AsicReservoir:
        """The :class:`AsicReservoir` (one input) these parameters describe, on ``substrate``."""
        return AsicReservoir(substrate, 1, self.n_sub, self.f_min, self.f_max, self.slot_ns, self.seed)


@dataclass(frozen=True)
class LiveModel:
    """A readout plus the reservoir parameters its states came from."""

    params: LiveParams
    readout: RidgeReadout

    def save(self, path: Path) -> None:
        """As a readout ``.npz`` (:func:`daemon.collect.save_readout`) with ``meta.live`` = the params."""
        save_readout(path, self.readout, meta={"live": asdict(self.params)})

    @classmethod
    def load(cls, path: Path) -> LiveModel:
        """Inverse of :meth:`save`; ``ValueError`` when the file has no live parameters."""
        f = load_readout(path)
        live = f.meta.get("live")
        if not isinstance(live, dict):
            raise ValueError(f"{path}: readout has no live reservoir parameters (meta.live)")
        return cls(LiveParams(**live), f.readout)


def train_live_model(
    substrate: Substrate,
    u: Sequence[float],
    y: Sequence[float],
    params: LiveParams,
    *,
    alpha: float | str = "gcv",
    washout: int = 0,
) -> LiveModel:
    """Run ``u`` one step per substrate call (as the live service does) and fit the readout on ``y``."""
    states = live_states(substrate, u, params)
    readout = RidgeReadout(alpha=alpha).fit(states[washout:], np.asarray(y, dtype=np.float64)[washout:])
    return LiveModel(params, readout)


def live_states(
    substrate: Substrate,
    u: Sequence[float],
    params: LiveParams,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The state row (one substrate call) of each input of ``u``, as the live service runs them;
    ``progress(i)`` after each step."""
    res = params.reservoir(substrate)
    rows = []
    for i, v in enumerate(u):
        rows.append(res.run(np.array([[params.scale(float(v))]])))
        if progress is not None:
            progress(i + 1)
    return np.vstack(rows)


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


# --------------------------------------------------------------------------------------------- state sources


class StateSource(Protocol):
    """Runs one input step on a board and returns its state row (state_dim,)."""

    async def step(self, x: float) -> np.ndarray:
        """``x`` is the input already scaled to [-1, 1]."""
        ...


class SubstrateSource:
    """Steps an :class:`AsicReservoir` over a synchronous :class:`Substrate` in a worker thread (a
    :class:`~daemon.substrate.BoardSubstrate` runs its own supervised board behind the safety envelope)."""

    def __init__(self, params: LiveParams, substrate: Substrate) -> None:
        self.reservoir = params.reservoir(substrate)
        self.state_dim = self.reservoir.state_dim
        self._busy = threading.Lock()

    async def step(self, x: float) -> np.ndarray:
        # One step at a time: a step abandoned by a timeout keeps the substrate until it returns. The step
        # runs in a daemon thread (not the default executor, whose threads are joined at interpreter exit,
        # so a board that never answers cannot keep the process from ending).
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("substrate still busy with an abandoned step")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[np.ndarray] = loop.create_future()

        def deliver(value: np.ndarray | None, exc: BaseException | None) -> None:
            if fut.done():  # abandoned (timeout or cancel)
                return
            if exc is not None:
                fut.set_exception(exc)
            else:
                fut.set_result(value)  # type: ignore[arg-type]

        def work() -> None:
            value, exc = None, None
            try:
                value = np.asarray(self.reservoir.run(np.array([[x]]))[0])
            except BaseException as e:  # handed to the awaiting task
                exc = e
            finally:
                self._busy.release()
            with contextlib.suppress(RuntimeError):  # the loop may be closed by now
                loop.call_soon_threadsafe(deliver, value, exc)

        threading.Thread(target=work, name="asicrc-live-step", daemon=True).start()
        return await fut


class PlanSource:
    """Steps the daemon's own board through the ``modulate`` plan (:func:`run_modulate`, every setpoint via
    ``target.request`` and so the safety gate), windowing the board's events from ``pipeline``."""

    def __init__(
        self,
        params: LiveParams,
        target: PlanTarget,
        pipeline: Pipeline,
        *,
        voltage_v: float = 1.2,
        ticket_diff: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        tail_s: float = PLAN_TAIL_S,
    ) -> None:
        self.params = params
        self.target = target
        self.pipeline = pipeline
        self.voltage_v = voltage_v
        self.ticket_diff = ticket_diff
        self.clock = clock
        self.sleep = sleep
        self.tail_s = tail_s
        # the mask and setpoint mapping of the trained reservoir (no substrate needed for setpoints)
        self._mapper = params.reservoir(_NoSubstrate(target.chips))
        self.state_dim = self._mapper.state_dim
        self._steps = 0

    async def step(self, x: float) -> np.ndarray:
        p = self.params
        freqs = self._mapper.setpoints(np.array([[x]]))
        levels = ((freqs - p.f_min) / (p.f_max - p.f_min))[None, :]
        self._steps += 1
        name = f"live-{id(self)}-{self._steps}"
        sub = self.pipeline.subscribe(name, maxsize=100_000, logs=False)
        try:
            starts = await run_modulate(
                levels,
                self.target,
                symbol_period_s=p.n_sub * p.slot_ns / 1e9,
                freq_lo_mhz=p.f_min,
                freq_hi_mhz=p.f_max,
                voltage_v=self.voltage_v,
                ticket_diff=self.ticket_diff,
                name="live",
                clock=self.clock,
                sleep=self.sleep,
            )
            await self.sleep(self.tail_s)
            batches = sub.drain()
        finally:
            self.pipeline.unsubscribe(name)
        state = getattr(self.target, "state", None)
        temp = getattr(state, "chip_temp_c", None)
        slots = window_events(
            batches, starts[0], p.slot_ns, self.target.chips, math.nan if temp is None else temp
        )
        return np.asarray(states_from_slots(slots, 1, p.n_sub, self.target.chips)[0])


class _NoSubstrate:
    """Placeholder substrate: :class:`PlanSource` only uses the reservoir's setpoint mapping."""

    def __init__(self, n_chips: int) -> None:
        self.n_chips = n_chips

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:  # pragma: no cover - never called
        raise NotImplementedError


def window_events(
    batches: Sequence[pa.RecordBatch], starts: np.ndarray, slot_ns: int, n_chips: int, temp_c: float
) -> list[EventSlot]:
    """Event batches split by ``t_ns`` into slots ``[start, min(start + slot_ns, next start))``; events
    outside every slot are ignored."""
    if batches:
        tab = pa.Table.from_batches(list(batches))
        t = tab.column("t_ns").to_numpy()
        order = np.argsort(t, kind="stable")
        t = t[order]
        chip = tab.column("chip").to_numpy()[order].astype(np.int16)
        core = tab.column("core").to_numpy()[order].astype(np.int16)
        valid = tab.column("valid").to_numpy(zero_copy_only=False)[order].astype(bool)
    else:
        t = np.zeros(0, np.int64)
        chip = core = np.zeros(0, np.int16)
        valid = np.zeros(0, bool)
    starts = np.asarray(starts, dtype=np.int64)
    lo = np.searchsorted(t, starts, side="left")
    ends = starts + slot_ns
    ends[:-1] = np.minimum(ends[:-1], starts[1:])  # a late slot start ends the previous slot
    hi = np.searchsorted(t, ends, side="left")
    temps = np.full(n_chips, temp_c)
    return [
        EventSlot(t[a:b], chip[a:b], core[a:b], valid[a:b], temps, int(s), slot_ns)
        for a, b, s in zip(lo.tolist(), hi.tolist(), starts.tolist())
    ]


# --------------------------------------------------------------------------------------------- service


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


def live_loop(settings: MqttSettings, service: LiveService, *, identifier: str | None = None) -> MqttLink:
    """The broker connection of ``service``: subscribes ``<base>/live/input`` (into :meth:`LiveService.offer`)
    and becomes its publisher on ``<base>/live/prediction``."""
    base = settings.base
    ident = identifier or f"asicrc-live-{settings.host_id}-{os.getpid()}"
    loop = MqttLink(settings, [f"{base}/live/input"], lambda _t, p: service.offer(p), identifier=ident)
    service.publish = lambda msg: loop.publish(f"{base}/live/prediction", json.dumps(msg).encode())
    return loop


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


# --------------------------------------------------------------------------------------------- standalone


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m daemon.live --mqtt HOST:PORT --readout F [--simulate] [--host-id H]``: the service on an
    emulated board (``--simulate``) or the first board of ``--config``; metrics on ``--metrics-port``."""
    from daemon.config import SimulateConfig, load_config
    from daemon.mqtt_link import parse_broker, read_password
    from daemon.substrate import BoardSubstrate

    p = argparse.ArgumentParser(prog="python -m daemon.live", description=__doc__)
    p.add_argument("--mqtt", required=True, metavar="HOST:PORT")
    p.add_argument("--readout", required=True, metavar="FILE", help="readout .npz with meta.live")
    p.add_argument("--simulate", action="store_true", help="an emulated board")
    p.add_argument("--time-scale", type=float, default=10.0, help="emulator clock speed-up")
    p.add_argument("--config", metavar="FILE", help="daemon config: its first [[boards]] entry is driven")
    p.add_argument("--host-id", default=socket.gethostname())
    p.add_argument("--topic-root", default="asicrc")
    p.add_argument("--username")
    p.add_argument("--password-file")
    p.add_argument("--metrics-port", type=int, help="serve the metrics on 127.0.0.1:PORT")
    p.add_argument("--tls", action="store_true", help="connect to the broker with TLS")
    p.add_argument("--ca-file", metavar="F", help="CA bundle for --tls (default: the system store)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    host, port = parse_broker(args.mqtt)
    password = read_password(args.password_file) if args.password_file else None
    settings = MqttSettings(
        host=host,
        port=port,
        username=args.username,
        password=password,
        topic_root=args.topic_root,
        host_id=args.host_id,
        tls=args.tls,
        ca_file=args.ca_file,
    )
    model = LiveModel.load(Path(args.readout))
    if args.simulate:
        sim = SimulateConfig(chips=model.params.n_chips, time_scale=args.time_scale)
        substrate = BoardSubstrate(sim=sim)
    else:
        if not args.config:
            p.error("give --simulate or --config FILE")
        substrate = BoardSubstrate(board=load_config(args.config).boards[0])
    registry = CollectorRegistry()
    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    service = LiveService(model, SubstrateSource(model.params, substrate), lambda m: None, registry=registry)
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_live(service, live_loop(settings, service)))
    finally:
        substrate.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
