"""MQTT command dispatch and per-board plan tasks on a real supervisor (not connected: the gate runs)."""

from __future__ import annotations

import json
from pathlib import Path

from daemon.commands import CommandHandler
from daemon.config import BoardConfig, PlanConfig, SafetyLimits, TimingConfig
from daemon.events import Pipeline
from daemon.plan_tasks import PlanTasks
from daemon.state import DaemonState
from daemon.supervisor import BoardSupervisor
from tests.polling import until

HOLD = PlanConfig(name="h", kind="hold", hold_voltage_v=1.2, hold_freq_mhz=485.0, duration_s=0.0)


def _handler(tmp_path: Path, live_board: str | None = None) -> tuple[CommandHandler, Pipeline, DaemonState]:
    pipeline = Pipeline()
    state = DaemonState(version="t")
    sups = {}
    for name in ("g0", "g1"):
        st = state.add_board(name, "gamma", 1)
        board = BoardConfig(name=name, kind="gamma", data_port="/dev/null", chips=1, safety=SafetyLimits())
        sups[name] = BoardSupervisor(board, TimingConfig(), pipeline, st, lambda: NotImplemented)
    handler = CommandHandler(sups, [HOLD], PlanTasks(pipeline, tmp_path), state.to_status, live_board)
    return handler, pipeline, state


async def test_setpoints_go_through_the_gate(tmp_path: Path) -> None:
    h, _, _ = _handler(tmp_path)
    res = await h({"action": "set_setpoint", "board": "g0", "voltage_v": 1.2, "freq_mhz": 5000})
    assert res["ok"] is True and res["outcome"] == "clamped"
    assert res["applied"]["freq_mhz"] == SafetyLimits().freq_max_mhz
    res = await h({"action": "set_setpoint", "board": "g0", "voltage_v": "x", "freq_mhz": 400})
    assert res["ok"] is False and res["reason"].startswith("bad setpoint")


async def test_unknown_board_action_and_plan_are_refused_with_a_reason(tmp_path: Path) -> None:
    h, _, _ = _handler(tmp_path)
    assert (await h({"action": "stop_plan", "board": "nope"}))["reason"] == (
        "unknown board 'nope'; known: ['g0', 'g1']"
    )
    assert (await h({"action": "reboot", "board": "g0"}))["reason"] == "action 'reboot' not supported"
    assert (await h({"action": "start_plan", "board": "g0", "plan": "x"}))["reason"] == "unknown plan 'x'"
    status = await h({"action": "status"})
    assert status["ok"] is True and set(status["status"]["boards"]) == {"g0", "g1"}


async def test_live_board_refuses_setpoints_and_plans_but_not_stop(tmp_path: Path) -> None:
    h, _, _ = _handler(tmp_path, live_board="g1")
    for cmd in ({"action": "set_setpoint", "voltage_v": 1.2, "freq_mhz": 400}, {"action": "start_plan"}):
        res = await h(cmd | {"board": "g1"})
        assert res["ok"] is False and "live service" in res["reason"]
    assert (await h({"action": "stop_plan", "board": "g1"})) == {"ok": True}


async def test_start_plan_runs_it_and_stop_plan_cancels_and_logs(tmp_path: Path) -> None:
    h, pipeline, state = _handler(tmp_path)
    logs = pipeline.subscribe("t", 64, events=False)
    assert (await h({"action": "start_plan", "board": "g0", "plan": "h"})) == {"ok": True}
    await until(lambda: state.boards["g0"].plan is not None, what="hold plan running", poll_s=0)
    assert h.plan_tasks.running("g0") and not h.plan_tasks.running("g1")
    assert (await h({"action": "stop_plan", "board": "g0"})) == {"ok": True}
    assert not h.plan_tasks.running("g0")
    events = []
    while (b := logs.get_nowait()) is not None:
        events += [json.loads(p).get("event") for p in b.column("payload").to_pylist()]
    assert events[0] == "start" and events[-1] == "stopped"
    await h.plan_tasks.cancel_all()
