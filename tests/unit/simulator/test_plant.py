"""Planted input-dependent dynamics (simulator/plant.py) on the real chain model, and the planning aid."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reservoir.bench import run_bench
from reservoir.power import Experiment, detection_table, events_per_subslot, feature_floors, paired, plan
from reservoir.substrate import EventSlot, SlotSchedule
from simulator.chain import ChainCore
from simulator.mining import pll_frequency_hz, ticket_difficulty
from simulator.plant import DEFAULTS, Plants, PlantSpec, parse_plants, switch
from simulator.slots import SlotRunner, pll_register, ticket_mask_register


@pytest.mark.parametrize(
    ("plants", "params", "message"),
    [
        (["echo"], [], "expected KIND=GAIN"),
        (["nope=1"], [], "unknown plant kind 'nope'"),
        (["echo=x"], [], "'x' is not a number"),
        (["echo=nan"], [], "not finite"),
        (["echo=-0.1"], [], "gain must be 0 .. 10"),
        (["echo=1", "echo=2"], [], "echo given twice"),
        (["echo=1"], ["echo.tau=3"], "unknown parameter 'tau' of echo"),
        (["echo=1"], ["echo.tau_ms=0"], "tau_ms must be > 0"),
        (["echo=1"], ["threshold.level=0.3"], "threshold is not planted"),
        (["echo=1"], ["echo.f_lo_mhz=600"], "f_lo_mhz must be below f_hi_mhz"),
        (["threshold=1"], ["threshold.invalid=2"], "invalid must be 0 .. 1"),
        (["echo=1"], ["echotau_ms=3"], "expected KIND.NAME=VALUE"),
    ],
)
def test_bad_plant_text_is_one_clear_line(plants: list[str], params: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_plants(plants, params)
    assert "\n" not in str(err.value)


def test_parse_fills_defaults_and_overrides() -> None:
    (echo,) = parse_plants(["echo=0.5"], ["echo.tau_ms=100"])
    assert echo == PlantSpec("echo", 0.5, (("tau_ms", 100.0),))
    assert echo.param("tau_ms") == 100.0
    assert echo.param("f_hi_mhz") == DEFAULTS["echo"]["f_hi_mhz"]
    assert "tau_ms=100" in echo.describe()


def test_none_planted_by_default() -> None:
    core = ChainCore(chips=2, seed=1)
    assert not core.plants
    assert parse_plants([]) == ()


def test_echo_trace_follows_the_clock_with_its_time_constant() -> None:
    (spec,) = parse_plants(["echo=1"], ["echo.tau_ms=100"])
    p = Plants([spec], 1)
    core = ChainCore(chips=1, seed=0)
    p.step(0.1, np.array([575e6]), core.physics)  # one time constant at the top of the range
    assert p.m[0] == pytest.approx(0.5 + 0.5 * (1 - math.exp(-1)))
    rate, p_inv = p.apply(np.array([100.0]), np.array([1e-4]))
    assert rate[0] == pytest.approx(100.0 * (1 + (p.m[0] - 0.5)))
    assert p_inv[0] == 1e-4


def test_threshold_switch_drops_rate_and_can_move_to_invalid() -> None:
    assert switch(np.array([0.0, 0.5, 1.0]), 0.5, 0.05) == pytest.approx([0.0, 0.5, 1.0], abs=1e-4)
    (spec,) = parse_plants(["threshold=0.8"], ["threshold.invalid=0.5"])
    p = Plants([spec], 1)
    core = ChainCore(chips=1, seed=0)
    for _ in range(300):  # 3 s at the top of the range: the power trace is far above the level
        p.step(0.01, np.array([575e6]), core.physics)
    rate, p_inv = p.apply(np.array([100.0]), np.array([0.0]))
    assert rate[0] == pytest.approx(100.0 * (1 - 0.8 * 0.5), rel=1e-3)
    assert p_inv[0] == pytest.approx(0.4, rel=1e-3)


def test_runner_registers_decode_as_the_chip_reads_them() -> None:
    for f in (400.0, 487.5, 575.0):
        assert pll_frequency_hz(pll_register(round(f * 100))) / 1e6 == pytest.approx(f, abs=1.0)
    assert [ticket_difficulty(ticket_mask_register(d)) for d in (1, 2, 256)] == [1, 2, 256]


def _lag_coefficients(gain: float) -> np.ndarray:
    """Per-slot count regressed on the normalised clock of the same and the previous slot (2 chips)."""
    plants = parse_plants([f"echo={gain}"]) if gain else ()
    runner = SlotRunner(2, seed=3, plants=plants)
    f = np.random.default_rng(7).uniform(400.0, 575.0, 400)
    slots = runner.run(f, 0.1)
    n = np.array([len(s.t_ns) for s in slots], dtype=np.float64)
    z = (f - 400.0) / 175.0
    X = np.column_stack([np.ones(len(f) - 1), z[1:], z[:-1]])
    coef: np.ndarray = np.linalg.lstsq(X, n[1:], rcond=None)[0]
    out: np.ndarray = coef / n.mean()
    return out


def test_echo_puts_the_previous_slot_into_the_count_and_gain_zero_does_not() -> None:
    """The direction of the planted effect at one gain and one event rate (~10 per slot and chip)."""
    bare, echo = _lag_coefficients(0.0), _lag_coefficients(1.0)
    # lag 0: the clock itself (+~36 % over the range); lag 1: only the echo (trace weight ~0.24 per slot)
    assert bare[1] > 0.2 and echo[1] > 0.2
    assert abs(bare[2]) < 0.08
    assert echo[2] > 0.12


class _Emulated:
    """reservoir Substrate over the in-process runner; constant temperature (events only)."""

    def __init__(self, seed: int, plants: tuple[PlantSpec, ...], step_s: float = 0.04) -> None:
        self.n_chips = 2
        self._runner = SlotRunner(2, seed, plants=plants, step_s=step_s)

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        out = self._runner.run(schedule.freq_mhz, schedule.slot_ns / 1e9)
        zero = np.zeros(self.n_chips)
        return [EventSlot(s.t_ns, s.chip, s.core, s.valid, zero, s.start_ns, s.duration_ns) for s in out]


def _mc_diff_acceptance(gain: float, seed: int) -> float:
    """asic - null MC at the acceptance setting: 2 chips, 100 ms sub-slots x 2 (~10 events per sub-slot and
    chip), echo tau 300 ms (the default), 400 train / 200 test, default masks (positive, full range)."""
    plants = parse_plants([f"echo={gain}"], []) if gain else ()
    s = run_bench(
        "memory-capacity",
        "asic",
        seeds=[seed],
        options={"substrate": lambda sd: _Emulated(sd, plants, 0.01), "slot_ns": 100_000_000, "n_sub": 2},
        task_options={"n_train": 400, "n_test": 200},
        with_null=True,
    ).summary
    return paired(s["per_seed"], s["null"]["per_seed"])[0]


def test_echo_is_seen_at_the_acceptance_setting() -> None:
    """The direction of the acceptance result, in process, one seed: echo=1 at ~10 events per sub-slot and
    chip lifts asic - null MC above 0 and above gain 0's (deterministic: emulated time, seeded)."""
    echo, bare = _mc_diff_acceptance(1.0, 0), _mc_diff_acceptance(0.0, 0)
    assert echo > 0.08 and echo > bare + 0.08, (echo, bare)  # measured +0.240 against -0.014


def test_planning_aid_figures() -> None:
    e = Experiment(chips=2, hashrate_ghs=433.59, ticket_diff=1, slot_s=0.1, n_sub=2, duration_s=3600)
    m = events_per_subslot(e)
    assert m == pytest.approx(433.59e9 / 2**32 * 0.1)
    assert feature_floors(m)["count"] == pytest.approx(1 / math.sqrt(m))
    ref = {
        "n_eff": 1000,
        "rows": [{"task": "memory-capacity", "kind": "echo", "events": 10.0, "mde_gain": 0.5}],
    }
    out = plan(e, ref)
    assert out["test_samples"] == (18000 - 200) // 3
    # MDE scales as m^-1/2 N^-1/4 from the reference
    want = 0.5 * math.sqrt(10.0 / m) * (1000 / out["test_samples"]) ** 0.25
    assert out["mde_gain"]["memory-capacity/echo"] == pytest.approx(want)
    with pytest.raises(ValueError, match="slot_s must be > 0"):
        Experiment(chips=1, hashrate_ghs=1.0, ticket_diff=1, slot_s=0.0)


def test_detection_table_finds_the_smallest_detected_gain() -> None:
    def row(kind: str, gain: float, diff: list[float]) -> dict[str, object]:
        from reservoir.bench import ci95

        return {
            "task": "memory-capacity",
            "metric": "mc",
            "kind": kind,
            "gain": gain,
            "events_target": 10.0,
            "events_per_subslot": 10.0,
            "n_test": 200,
            "seeds": [0, 1, 2],
            "diff": diff,
            "diff_mean": float(np.mean(diff)),
            "diff_ci95": ci95(diff),
        }

    rows = [
        row("none", 0.0, [-0.02, 0.01, 0.0]),
        row("echo", 0.5, [0.0, 0.05, 0.02]),
        row("echo", 1.0, [0.3, 0.35, 0.32]),
    ]
    (d,) = detection_table(rows)
    assert d["first_detected"] == 1.0
    assert not d["false_discovery"]
    assert 0.5 < d["mde_gain"] < 1.0


def test_simulate_config_section_takes_plants_and_rejects_bad_ones() -> None:
    from daemon.config import ConfigError, parse_config

    cfg = parse_config({"simulate": {"plant": ["echo=1.0"], "plant_param": ["echo.tau_ms=200"]}})
    assert parse_plants(cfg.simulate.plant, cfg.simulate.plant_param)[0].param("tau_ms") == 200.0
    with pytest.raises(ConfigError, match=r"simulate\.plant: .*unknown plant kind 'echoo'"):
        parse_config({"simulate": {"plant": ["echoo=1"]}})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim", "--plant", "echo=x"], "asicrc sim: error: --plant echo=x: 'x' is not a number"),
        (["bench", "memory-capacity", "-r", "esn", "--plant", "echo=1"], "need --reservoir asic --simulate"),
        (["bench", "memory-capacity", "-r", "asic", "--simulate", "--plant", "nope=1"], "unknown plant kind"),
        (["plan-experiment", "--slot-ms", "0"], "asicrc plan-experiment: error: slot_s must be > 0"),
    ],
)
def test_cli_rejects_bad_plant_input_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_plan_experiment_prints_events_and_floors(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from daemon.cli import main

    assert main(["plan-experiment", "--slot-ms", "400", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["events_per_subslot_per_chip"] == pytest.approx(485e6 * 894 / 2**32 * 0.4)
    assert set(out["mde_gain"]) == {f"{t}/{k}" for t in ("memory-capacity", "narma10") for k in DEFAULTS}
