"""The daemon as one asyncio service: boards, plans, pipeline, recorder, HTTP, MQTT, systemd notify.

:class:`Daemon` only wires the parts and orders start and stop: board sessions (:mod:`daemon.supervisor`),
plan tasks (:mod:`daemon.plan_tasks`), MQTT commands (:mod:`daemon.commands`), the periodic status report
(:mod:`daemon.status_report`, reading the board snapshots of :mod:`daemon.status`). It runs until
SIGTERM/SIGINT (or ``duration_s``); stopping puts every board in its safe state first, then flushes the
recorder, then exits 0. Progress goes to stderr through logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.board_control import BoardSpec
from daemon.board_specs import configured_boards, sim_board_specs
from daemon.bringup import wait_first_board_up
from daemon.commands import CommandHandler
from daemon.config import Config, ConfigError
from daemon.events import Pipeline
from daemon.exit_codes import EXIT_NO_BOARDS
from daemon.http import HttpServer, make_app
from daemon.intent import board_intents
from daemon.memory import trim_loop
from daemon.metrics import make_registry
from daemon.notify import Notifier, watchdog_interval_s, watchdog_loop
from daemon.plan_tasks import PlanTasks
from daemon.recorder_setup import open_recorder
from daemon.sim_boards import SimBoard, inject_fault, start_sim_boards
from daemon.state import DaemonState
from daemon.state_dir import StateDirError, check_state_dir
from daemon.status_report import StatusReporter
from daemon.supervisor import BoardSupervisor
from daemon.version import package_version

if TYPE_CHECKING:
    from daemon.live import LiveService
    from daemon.mqtt import MqttBridge
    from daemon.mqtt_link import MqttLink

log = logging.getLogger(__name__)

#: Pipeline subscriber queue lengths (batches; one batch per board per batch interval).
RECORDER_QUEUE = 4096
MQTT_QUEUE = 256
#: Bounds on the other shutdown steps (s): the MQTT goodbye, background tasks ending after a cancel.
MQTT_CLOSE_TIMEOUT_S = 5.0
TASK_STOP_TIMEOUT_S = 5.0
#: Grace for each board to reach its safe state at shutdown (s).
SHUTDOWN_BOARD_TIMEOUT_S = 5.0


class StartError(RuntimeError):
    """The daemon cannot start as asked (e.g. the explicit ``--http`` address is taken): exit 2, one line."""


@dataclass
class BoardRuntime:
    """One board: its supervisor (the board session) and the task running it."""

    sup: BoardSupervisor
    task: asyncio.Task[None] | None = None


class Daemon:
    """The service. ``simulate``: emulated boards to start in-process (in addition to configured ones)."""

    def __init__(
        self,
        cfg: Config,
        *,
        state_dir: Path,
        http: tuple[str, int] | None = None,
        duration_s: float | None = None,
        simulate: int = 0,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.cfg = cfg
        self.state_dir = Path(state_dir)
        self.http_addr = http
        self.duration_s = duration_s
        self.simulate = simulate
        self.clock = clock
        self.pipeline = Pipeline(clock=clock)
        self.state = DaemonState(version=package_version(), host=socket.gethostname(), clock=clock)
        self.state.startup_timeout_s = cfg.timing.startup_timeout_s
        #: Exit status of :meth:`run` after a clean stop (2 when no board came up in the start-up window).
        self.exit_code = 0
        self.state.pipeline = self.pipeline
        self.pipeline.add_listener("state", self.state.update_from_events)
        self.boards: dict[str, BoardRuntime] = {}
        self.sim_boards: list[SimBoard] = []
        self.stop_event = asyncio.Event()
        self.http: HttpServer | None = None
        self.notifier = Notifier()
        self._tasks: list[asyncio.Task[Any]] = []
        self._sim_dir: tempfile.TemporaryDirectory[str] | None = None
        self._live_task: asyncio.Task[None] | None = None
        self.live: LiveService | None = None
        self._live_link: MqttLink | None = None  # the live service's own broker connection
        self.state_ok = True
        #: One registry for /metrics: the state collector plus the live service's metrics.
        self.registry = make_registry(self.state)
        self.sups: dict[str, BoardSupervisor] = {}  # the board sessions by name (filled by _start)
        self.plan_tasks = PlanTasks(self.pipeline, self.state_dir)
        self.commands = CommandHandler(
            self.sups,
            cfg.plans,
            self.plan_tasks,
            self.state.to_status,
            live_board=cfg.live.board if cfg.live.enabled else None,
        )
        self.status_report = StatusReporter(
            self.state, self.notifier, self.state_dir, cfg.timing.status_interval_s
        )
        self.mqtt: MqttBridge | None = None  # the MQTT bridge while [mqtt] is enabled and started
        self._recorder_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle

    def request_stop(self) -> None:
        """Begin a clean stop (signal handler)."""
        if not self.stop_event.is_set():
            log.warning("stopping: putting every board in a safe state")
        self.stop_event.set()

    async def run(self) -> int:
        """Run until stopped; returns the exit code (0 on a clean stop)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        try:
            try:
                await self._start()
            except (ConfigError, StartError) as exc:
                log.error("%s", exc)
                return EXIT_NO_BOARDS
            if not self.boards:
                log.error(
                    "no board to run: none of the configured boards was found; check the ports in the config"
                    " (or run with --simulate N to try the emulator)"
                )
                return EXIT_NO_BOARDS
            self.notifier.ready(f"{len(self.boards)} board(s)")
            stop = asyncio.create_task(self.stop_event.wait())
            waits: list[asyncio.Task[Any]] = [stop]
            if self.duration_s is not None:
                waits.append(asyncio.create_task(asyncio.sleep(self.duration_s)))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in waits:
                    t.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
        finally:
            await self._stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)
        return self.exit_code

    async def _start(self) -> None:
        cfg = self.cfg
        try:
            check_state_dir(self.state_dir)
        except StateDirError as exc:
            self.state_ok = False
            self.state.recorder.healthy = False
            self.state.recorder.last_error = str(exc)
            log.error(
                "%s; recordings, status.json and plan progress are dropped (counted) and retried until it is",
                exc,
            )
        # first: an explicit --http that cannot bind stops the start before anything runs
        if cfg.http.enabled or self.http_addr is not None:
            host, port = self.http_addr or (cfg.http.host, cfg.http.port)
            self.http = HttpServer(make_app(self.state, self.registry), host, port)
            try:
                await self.http.start()
                log.info("status and metrics on %s/status and %s/metrics", self.http.url, self.http.url)
            except OSError as exc:
                self.http = None
                if self.http_addr is not None:  # asked for on the command line: do not run without it
                    why = os.strerror(exc.errno) if exc.errno else str(exc)
                    msg = f"--http {host}:{port}: cannot listen: {why}; choose another port (0 picks one)"
                    raise StartError(msg) from exc
                log.error("http disabled: %s", exc)
        specs = configured_boards(self.cfg.boards, self.clock)
        if self.simulate:
            specs.extend(await self._start_sim())
        for spec in specs:
            board = spec.config
            st = self.state.add_board(board.name, board.kind, board.chips, link=board.data_port)
            sup = BoardSupervisor(
                board,
                cfg.timing,
                self.pipeline,
                st,
                spec.factory,
                control=spec.control,
                clock=self.clock,
                chain_timing=spec.chain_timing,
                valid_scale=spec.valid_scale,
                seed=cfg.simulate.seed + len(self.boards),
            )
            self.boards[board.name] = BoardRuntime(sup)
            self.sups[board.name] = sup
            self.state.attach_session(board.name, sup)
        if not self.boards:
            return
        if cfg.live.enabled:
            self._prepare_live()  # a ConfigError here stops the start before anything is written or bound
        if cfg.recorder.enabled:
            await self._start_recorder()  # on an unwritable state dir it counts, drops and retries
        if cfg.mqtt.enabled:
            self._start_mqtt()
        if self.live is not None:
            self._start_live(self.live)
        for line in board_intents(cfg, [rt.sup.board for rt in self.boards.values()]):
            log.info("%s", line)
        self._tasks.append(asyncio.create_task(self._startup_window(), name="startup-window"))
        for name, rt in self.boards.items():
            rt.task = asyncio.create_task(rt.sup.run(), name=f"board-{name}")
            plans = [p for p in cfg.plans if not p.boards or name in p.boards]
            if plans:
                self.plan_tasks.start(rt.sup, plans)
        for f in cfg.simulate.faults if self.sim_boards else ():
            up = {n: rt.sup.wait_up for n, rt in self.boards.items()}
            self._tasks.append(asyncio.create_task(inject_fault(self.sim_boards, f, up), name="sim-fault"))
        self._tasks.append(asyncio.create_task(self.status_report.run(), name="status"))
        self._tasks.append(asyncio.create_task(trim_loop(), name="malloc-trim"))
        wd = watchdog_interval_s()
        if wd:
            # the ping proves the event loop runs; board health goes to STATUS= (and /healthz), never to the
            # watchdog: failed boards must not make systemd restart the daemon in a loop
            self._tasks.append(asyncio.create_task(self.watchdog(wd), name="watchdog"))

    async def _startup_window(self) -> None:
        """Stop with exit 2 when no board has come up within ``timing.startup_timeout_s`` (0: no bound)."""
        boards = list(self.state.boards.values())
        reason = await wait_first_board_up(boards, self.cfg.timing.startup_timeout_s, self.clock)
        if reason is not None:
            log.error("%s", reason)
            self.exit_code = EXIT_NO_BOARDS
            self.request_stop()

    async def watchdog(self, interval_s: float) -> None:
        """``WATCHDOG=1`` every ``interval_s`` while the loop runs; health changes go to ``STATUS=``."""
        await watchdog_loop(self.notifier, interval_s, report=self.state.health)

    async def _start_sim(self) -> list[BoardSpec]:
        sim = self.cfg.simulate
        self._sim_dir = tempfile.TemporaryDirectory(prefix="asicrc-sim-")
        self.sim_boards = await start_sim_boards(
            self.simulate, Path(self._sim_dir.name), sim, clock=self.clock
        )
        return sim_board_specs(self.sim_boards, sim.chips, self.cfg.safety, self.clock)

    async def _start_recorder(self) -> None:
        meta = {
            "boards": [
                {"name": sup.name, "kind": sup.board.kind, "chips": sup.chips, "link": sup.board.data_port}
                for sup in self.sups.values()
            ],
            "simulated": bool(self.simulate),
        }
        root = self.state_dir / self.cfg.recorder.dir
        recorder = await open_recorder(root, self.cfg.recorder, self.state.recorder, meta, list(self.sups))
        sub = self.pipeline.subscribe("recorder", RECORDER_QUEUE)
        self._recorder_task = asyncio.create_task(recorder.run(sub), name="recorder")

    def _start_mqtt(self) -> None:
        from daemon.mqtt import MqttBridge, MqttSettings

        bridge = MqttBridge(MqttSettings.from_config(self.cfg.mqtt), self.state.to_status, self.commands)
        self.state.mqtt = bridge.stats
        self.pipeline.add_listener("mqtt", bridge.publish_events)
        for rt in self.boards.values():
            rt.sup.on_summary = bridge.publish_summary
        self.mqtt = bridge
        self._tasks.append(asyncio.create_task(bridge.run(), name="mqtt"))

    def _prepare_live(self) -> None:
        """Build the live reservoir service on ``[live] board``; :class:`ConfigError` naming the ``live.*``
        key when the board is unknown or does not fit (:func:`daemon.live.live_from_config`)."""
        from daemon.live import live_from_config

        board = self.cfg.live.board
        rt = self.boards.get(board)
        if rt is None:
            raise ConfigError("live.board", f"value {board!r} is not a board; known: {sorted(self.boards)}")
        self.live, self._live_link = live_from_config(
            self.cfg, rt.sup, self.pipeline, self.registry, self.clock
        )

    def _start_live(self, svc: LiveService) -> None:
        """Run ``svc`` on its own broker connection; publish the readout statistics when configured."""
        from daemon.live import run_live

        assert self._live_link is not None  # built with the service (_prepare_live)
        self._live_task = asyncio.create_task(run_live(svc, self._live_link), name="live")
        if self.cfg.live.publish_stats and self.mqtt is not None:
            self.mqtt.publish_json("readout/stats", svc.model.readout.stats_.to_dict(), retain=True)
        log.info(
            "live service on board %s: inputs on %s/live/input, predictions on %s/live/prediction",
            self.cfg.live.board,
            self._live_link.settings.base,
            self._live_link.settings.base,
        )

    async def _stop(self) -> None:
        self.state.stopping = True
        self.notifier.stopping("stopping")
        # 1. plans and the live service stop asking for setpoints
        live, self._live_task = self._live_task, None
        if live is not None:
            live.cancel()
            await asyncio.wait([live], timeout=TASK_STOP_TIMEOUT_S)
        await self.plan_tasks.cancel_all()
        # 2. every board to its safe state, then stop supervising
        await asyncio.gather(
            *(asyncio.wait_for(rt.sup.shutdown(), SHUTDOWN_BOARD_TIMEOUT_S) for rt in self.boards.values()),
            return_exceptions=True,
        )
        sup_tasks = [rt.task for rt in self.boards.values() if rt.task is not None]
        for t in sup_tasks:
            t.cancel()
        await asyncio.gather(*sup_tasks, return_exceptions=True)
        for rt in self.boards.values():
            with contextlib.suppress(Exception):
                await rt.sup.control.close()
        for name, rt in self.boards.items():
            sp = rt.sup.applied
            log.info(
                "board %s: safe (%s)",
                name,
                "unknown, not connected" if sp is None else f"{sp.voltage_v:.2f} V {sp.freq_mhz:.1f} MHz",
            )
        # 3. MQTT first (close() ends its run loop: a bare cancel can be taken for a lost connection and
        #    retried), then the other background tasks, then the emulators
        if self.mqtt is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.mqtt.close(), MQTT_CLOSE_TIMEOUT_S)
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            _, stuck = await asyncio.wait(self._tasks, timeout=TASK_STOP_TIMEOUT_S)
            for t in stuck:
                log.error("task %s did not stop in %.0f s; exiting anyway", t.get_name(), TASK_STOP_TIMEOUT_S)
        for sb in self.sim_boards:
            await sb.stop()
        if self._sim_dir is not None:
            self._sim_dir.cleanup()
        # 4. flush the recorder
        self.pipeline.close()
        rec = self._recorder_task
        if rec is not None:
            await asyncio.gather(rec, return_exceptions=True)
            r = self.state.recorder
            log.info("recorder: %d rows in %d segment(s) under %s", r.rows, r.segments, r.path)
        await self.status_report.write(final=True)
        if self.http is not None:
            await self.http.stop()
        self.notifier.close()


def with_state_dir(cfg: Config, state_dir: str | None) -> Config:
    """``cfg`` with ``state_dir`` replaced when given."""
    return dataclasses.replace(cfg, state_dir=state_dir) if state_dir else cfg
