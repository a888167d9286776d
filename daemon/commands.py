"""MQTT command dispatch (the token is already checked by the bridge, docs/mqtt.md "Commands").

``set_setpoint`` {board, voltage_v, freq_mhz[, ticket_diff]} goes through the same safety gate as plans;
``start_plan`` {board, plan} runs a configured plan (replacing the running one); ``stop_plan`` {board} (the
board holds its setpoint); ``status``. The live service's board refuses setpoints and plans.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from daemon.config import PlanConfig
from daemon.plan_tasks import PlanTasks
from daemon.plans import PlanTarget
from daemon.safety import Decision, Setpoint, Source


class CommandTarget(PlanTarget, Protocol):
    """A board as commands see it: a plan target that also takes operator setpoints."""

    def request(self, sp: Setpoint, point: int, source: Source = ...) -> Decision: ...


class CommandHandler:
    """Turns one command dict into one reply dict; ``await handler(cmd)``.

    ``boards``: board targets by name; ``plans``: the configured plans; ``live_board``: the board the live
    service drives (None without one); ``status``: the daemon's status snapshot.
    """

    def __init__(
        self,
        boards: Mapping[str, CommandTarget],
        plans: Sequence[PlanConfig],
        plan_tasks: PlanTasks,
        status: Callable[[], dict[str, Any]],
        live_board: str | None = None,
    ) -> None:
        self.boards = boards
        self.plans = plans
        self.plan_tasks = plan_tasks
        self.status = status
        self.live_board = live_board

    async def __call__(self, cmd: dict[str, Any]) -> dict[str, Any]:
        action = cmd.get("action")
        if action == "status":
            return {"ok": True, "status": self.status()}
        board = self.boards.get(str(cmd.get("board", "")))
        if board is None:
            return {
                "ok": False,
                "reason": f"unknown board {cmd.get('board')!r}; known: {sorted(self.boards)}",
            }
        if action in ("set_setpoint", "start_plan") and board.name == self.live_board:
            return {"ok": False, "reason": f"board {board.name!r} runs the live service ([live] board)"}
        if action == "set_setpoint":
            return self._set_setpoint(board, cmd)
        if action == "stop_plan":
            await self.plan_tasks.cancel(board.name)
            return {"ok": True}
        if action == "start_plan":
            plan = next((p for p in self.plans if p.name == cmd.get("plan")), None)
            if plan is None:
                return {"ok": False, "reason": f"unknown plan {cmd.get('plan')!r}"}
            await self.plan_tasks.replace(board, [plan])
            return {"ok": True}
        return {"ok": False, "reason": f"action {action!r} not supported"}

    @staticmethod
    def _set_setpoint(board: CommandTarget, cmd: dict[str, Any]) -> dict[str, Any]:
        try:
            sp = Setpoint(
                float(cmd["voltage_v"]), float(cmd["freq_mhz"]), float(cmd.get("ticket_diff", 256.0))
            )
        except (KeyError, TypeError, ValueError) as exc:
            return {"ok": False, "reason": f"bad setpoint: {exc}"}
        d = board.request(sp, -1, Source.COMMAND)
        applied = None if d.applied is None else dataclasses.asdict(d.applied)
        return {"ok": d.outcome != "refused", "outcome": d.outcome, "reason": d.reason, "applied": applied}
