"""``asicrc bench TASK -r asic --simulate`` end to end on an emulated board, and benchmarks/bench_asic.py.

Tiny tasks (100 train / 50 test steps after the 200-step washout), 2 chips x 2 sub-slots of 50 ms at the
fastest time scale the substrate allows (25 ms of host time per slot): each run takes about 40 s, so
memory-capacity and the script run are in the slow tier.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
CHIPS, N_SUB, SLOT_NS, TIME_SCALE = 2, 2, 50_000_000, 12.5
N_FEATURES = 6  # reservoir.features.FEATURES
TINY = ["--n-train", "100", "--n-test", "50", "--seeds", "2"]
ASIC = [
    "-r",
    "asic",
    "--simulate",
    "--chips",
    str(CHIPS),
    "--slot-ns",
    str(SLOT_NS),
    "--set",
    f"n_sub={N_SUB}",
]
#: The same emulator on ptys on the host clock (the path a real board's timing takes through the host).
HOST_TIME = ["--host-time", "--time-scale", str(TIME_SCALE)]


def _run(cmd: list[str]) -> Any:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout  # exactly one JSON object on stdout
    return json.loads(lines[0])


def _check_interval(value: float, ci: list[float]) -> None:
    assert len(ci) == 2 and all(math.isfinite(x) for x in ci)
    assert ci[0] <= value + 1e-12 and value <= ci[1] + 1e-12


@pytest.mark.parametrize(
    "task, metric, timing",
    # on emulated time (the default) a run costs only CPU; on the host clock each slot spends >= 25 ms of
    # host time (daemon/substrate.py MIN_REAL_SLOT_S): one host-timed task in the default suite
    [
        ("narma10", "nmse", []),
        ("memory-capacity", "mc", []),
        ("narma10", "nmse", HOST_TIME),
        pytest.param("memory-capacity", "mc", HOST_TIME, marks=pytest.mark.slow),
    ],
    ids=["narma10", "memory-capacity", "narma10-host-time", "memory-capacity-host-time"],
)
def test_asic_bench_on_the_emulator(task: str, metric: str, timing: list[str]) -> None:
    out = _run([sys.executable, "-m", "daemon", "bench", task, *ASIC, *timing, *TINY, "--json"])
    assert out["task"] == task and out["reservoir"] == "asic" and out["metric"] == metric
    assert out["state_dim"] == CHIPS * N_SUB * N_FEATURES
    assert out["n_train"] == 100 and out["n_test"] == 50 and out["seeds"] == [0, 1]
    value = out["value"]
    assert math.isfinite(value) and value == pytest.approx(sum(out["per_seed"]) / 2)
    _check_interval(value, out["ci95"])
    if metric == "mc":
        assert 0.0 <= value <= 50.0  # a sum of 50 squared correlations
    else:
        assert value > 0.0
    # the shot-noise floor at the measured event count: ~100 nonces/s per chip at 400-575 MHz, 50 ms slots
    nf = out["noise_floor"]
    m = nf["mean_count_per_slot"]
    assert 1.0 < m < 20.0
    assert nf["count"] == pytest.approx(1.0 / math.sqrt(m))
    assert nf["log_iv_mean"] == pytest.approx((math.pi / math.sqrt(6.0)) / math.sqrt(m - 1.0))
    # the matched poisson-null: same seeds and slots, at the rate the asic run measured
    null = out["null"]
    assert math.isfinite(null["value"]) and len(null["per_seed"]) == 2
    _check_interval(null["value"], null["ci95"])
    assert null["rate_hz"] == pytest.approx(m / (SLOT_NS / 1e9))
    # matched in chips (so in state size), averaged over its default 5 Poisson draws per seed
    assert null["n_chips"] == CHIPS and null["state_dim"] == out["state_dim"]
    assert null["draws"] == 5 and len(null["per_draw"]) == 5


@pytest.mark.slow
def test_bench_asic_script_puts_baselines_of_equal_size_beside_asic() -> None:
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_asic.py"),
        "--tasks",
        "narma10",
        "--seeds",
        "2",
        "--chips",
        str(CHIPS),
        "--n-sub",
        str(N_SUB),
        "--slot-ns",
        str(SLOT_NS),
        "--time-scale",
        str(TIME_SCALE),
        "--narma-train",
        "100",
        "--narma-test",
        "50",
        "--json",
    ]
    out = _run(cmd)
    assert out["params"]["chips"] == CHIPS and out["params"]["n_sub"] == N_SUB
    (row,) = out["rows"]
    dim = CHIPS * N_SUB * N_FEATURES
    assert row["task"] == "narma10" and row["state_dim"] == dim
    for kind in ("asic", "delay-line", "esn"):
        assert row[kind]["state_dim"] == dim, kind
        assert row[kind]["seeds"] == [0, 1] and row[kind]["n_train"] == 100
    diff = row["asic_minus_null"]
    expect = [a - b for a, b in zip(row["asic"]["per_seed"], row["asic"]["null"]["per_seed"], strict=True)]
    assert diff["per_seed"] == pytest.approx(expect)
    _check_interval(diff["value"], diff["ci95"])
    # the software ESN of the same size beats the shot-noise-limited rate code on NARMA10 by far
    assert row["esn"]["value"] < row["asic"]["null"]["value"]


def test_asic_bench_on_emulated_time_is_a_function_of_its_seeds() -> None:
    """Two runs of one command through the daemon's board path give the same figures, asic and null."""
    cmd = [sys.executable, "-m", "daemon", "bench", "narma10", *ASIC, *TINY, "--json"]
    a, b = _run(cmd), _run(cmd)
    assert a["per_seed"] == b["per_seed"] and a["null"]["per_seed"] == b["null"]["per_seed"]
    assert a["noise_floor"] == b["noise_floor"]


def test_the_positive_control_is_seen_through_the_daemon() -> None:
    """The acceptance setting through the daemon's board path on emulated time, one seed (deterministic):
    echo = 1 raises memory capacity above its matched null, and above the bare emulator's excess."""
    setting = ["-r", "asic", "--simulate", "--chips", "2", "--slot-ns", "100000000", "--set", "n_sub=2"]
    base = [sys.executable, "-m", "daemon", "bench", "memory-capacity", *setting, "--seeds", "1"]
    size = ["--n-train", "400", "--n-test", "200", "--json"]
    with ThreadPoolExecutor(2) as pool:  # two processes side by side (CI has 2 cores)
        runs = [pool.submit(_run, [*base, *plant, *size]) for plant in (["--plant", "echo=1.0"], [])]
        echo, bare = (r.result() for r in runs)
    d_echo = echo["value"] - echo["null"]["value"]
    d_bare = bare["value"] - bare["null"]["value"]
    # measured: +0.102 against -0.033 (seed 0); the planted delays carry it
    assert d_echo > 0.05 and d_echo > d_bare + 0.05, (d_echo, d_bare)
    assert echo["r2_per_delay"][0] > 5 * bare["r2_per_delay"][0]
