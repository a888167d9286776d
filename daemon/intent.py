"""What each board will do, and why, said once at start-up (default log level).

A board with no plan sits at the safe floor (``freq_min_mhz``, ticket difficulty 256) and returns very few
nonces, so a recording of it has almost no rows; :func:`board_intents` says so and names what would change it
(a ``[[plans]]`` entry for the board, or an MQTT command when ``[mqtt]`` has a token).
"""

from __future__ import annotations

from collections.abc import Sequence

from daemon.config import BoardConfig, Config, PlanConfig
from daemon.plan_points import sweep_points
from drivers.chipmath import expected_nonce_rate

#: Ticket difficulty the safety floor writes (docs/daemon.md, "Safety behaviour").
FLOOR_TICKET_DIFF = 256.0


def expected_rate_hz(chips: int, freq_mhz: float, ticket_diff: float) -> float:
    """Nonces per second a healthy chain returns at ``freq_mhz`` and ``ticket_diff`` (docs/daemon.md)."""
    return chips * expected_nonce_rate(freq_mhz, ticket_diff)


def plan_summary(plan: PlanConfig) -> str:
    """``name (kind, size, duration)`` of one plan."""
    if plan.kind == "sweep":
        n = len(sweep_points(plan))
        return f"{plan.name} (sweep, {n} point(s), >= {n * (plan.settle_s + plan.dwell_s):.0f} s)"
    if plan.kind == "modulate":
        n = len(plan.input)
        return f"{plan.name} (modulate, {n} symbol(s), {n * plan.symbol_period_s:.0f} s)"
    how_long = "until stopped" if plan.duration_s <= 0 else f"{plan.duration_s:g} s"
    return (
        f"{plan.name} (hold {plan.hold_voltage_v:.2f} V {plan.hold_freq_mhz:g} MHz"
        f" ticket {plan.hold_ticket_diff:g}, {how_long})"
    )


def board_intents(cfg: Config, boards: Sequence[BoardConfig]) -> list[str]:
    """One line per board: the plans it runs (in order), the live service, or why it only holds its floor."""
    mqtt = cfg.mqtt
    commands = mqtt.enabled and bool(mqtt.token)
    out: list[str] = []
    for b in boards:
        if cfg.live.enabled and b.name == cfg.live.board:
            out.append(f"board {b.name}: runs the live reservoir service ([live] board), fed by live/input")
            continue
        plans = [p for p in cfg.plans if not p.boards or b.name in p.boards]
        if plans:
            names = ", then ".join(plan_summary(p) for p in plans)
            out.append(f"board {b.name}: will run {names}; then it holds the last setpoint")
            continue
        s = b.safety
        rate = expected_rate_hz(b.chips, s.freq_min_mhz, FLOOR_TICKET_DIFF)
        head = (
            f"board {b.name}: no plan for it in [[plans]]: it holds the safe floor"
            f" {s.core_voltage_min_v:.2f} V"
            f" {s.freq_min_mhz:g} MHz ticket difficulty {FLOOR_TICKET_DIFF:g} (about {rate:.2g} nonces/s,"
            " so the recording stays nearly empty)"
        )
        if commands:
            out.append(f"{head} until an MQTT command (set_setpoint or start_plan on cmd) asks for more")
        elif mqtt.enabled:
            out.append(
                f"{head}; MQTT commands are off (no [mqtt] token): add a [[plans]] entry for it"
                ' (e.g. kind = "hold") or an [mqtt] token'
            )
        else:
            out.append(f'{head}; add a [[plans]] entry for it (e.g. kind = "hold")')
    return out
