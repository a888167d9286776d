"""One plan task per board: start a board's configured plans, replace them, cancel them.

The daemon starts each board's plans at start-up; the MQTT ``start_plan``/``stop_plan`` commands
(:mod:`daemon.commands`) replace or stop them; shutdown cancels them all before boards go to their safe state.
Progress is saved under ``<state dir>/plans`` (an unwritable directory is logged once and retried).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from daemon.config import PlanConfig
from daemon.events import Pipeline
from daemon.plan_progress import ProgressStore, SweepProgress
from daemon.plans import PlanTarget, run_plan

log = logging.getLogger(__name__)


class SafeProgressStore(ProgressStore):
    """Progress store that logs (once) instead of failing the plan when the state dir is read-only/full."""

    failed = False

    def save(self, prog: SweepProgress) -> None:
        try:
            super().save(prog)
        except OSError as exc:
            if not self.failed:
                log.error("cannot save plan progress in %s: %s (the plan continues)", self.dir, exc)
            self.failed = True


class PlanTasks:
    """The running plan task of each board (by board name); each logs start/done/stopped to ``pipeline``."""

    def __init__(self, pipeline: Pipeline, state_dir: Path) -> None:
        self.pipeline = pipeline
        self.state_dir = Path(state_dir)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def running(self, board: str) -> bool:
        """True while ``board`` has a plan task that has not finished."""
        t = self._tasks.get(board)
        return t is not None and not t.done()

    def start(self, target: PlanTarget, plans: list[PlanConfig]) -> None:
        """Run ``plans`` one after the other on ``target`` (the caller cancels a running one first)."""
        self._tasks[target.name] = asyncio.create_task(self._run(target, plans), name=f"plans-{target.name}")

    async def replace(self, target: PlanTarget, plans: list[PlanConfig]) -> None:
        """Cancel ``target``'s running plans, then start ``plans``."""
        await self.cancel(target.name)
        self.start(target, plans)

    async def cancel(self, board: str) -> None:
        """Cancel ``board``'s plan task and wait for it (the board holds its last setpoint)."""
        task = self._tasks.pop(board, None)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.pipeline.log(board, "plan", {"event": "stopped"})

    async def cancel_all(self) -> None:
        """Cancel every board's plans (shutdown step 1)."""
        for board in list(self._tasks):
            await self.cancel(board)

    async def _run(self, target: PlanTarget, plans: list[PlanConfig]) -> None:
        store = SafeProgressStore(self.state_dir / "plans")  # an unwritable dir: logged once, retried
        for plan in plans:
            log.info("board %s: plan %s (%s) starting", target.name, plan.name, plan.kind)
            self.pipeline.log(target.name, "plan", {"plan": plan.name, "event": "start"})
            await run_plan(plan, target, store)
            self.pipeline.log(target.name, "plan", {"plan": plan.name, "event": "done"})
            log.info("board %s: plan %s done", target.name, plan.name)
        log.info("board %s: all plans done; holding the last setpoint", target.name)
