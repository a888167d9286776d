"""Long liquid runs (spiking.longrun, spiking.checkpoint): checkpoints, feature cache, resumable seeds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from daemon.cli import main
from reservoir.bench import run_bench
from reservoir.spiking import checkpoint as ck
from reservoir.spiking.longrun import (
    MNIST_N_INIT,
    LongRun,
    classify_liquid,
    encode,
    liquid_options,
)
from reservoir.tasks import ClassificationTask, make_task

ROOT = Path(__file__).resolve().parents[3]
OPTS: dict[str, Any] = {"presentation_ms": 60, "batch_size": 32, "bf_samples": 4, "n_init": 4, "init_ms": 10}
SET = [a for k, v in OPTS.items() for a in ("--set", f"{k}={v}")]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _task(
    name: str = "toy", n_train: int = 40, n_test: int = 20, input_max: float | None = None
) -> ClassificationTask:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, n_train + n_test)
    X = rng.uniform(0, 80, (n_train + n_test, 12)) + 120.0 * (y[:, None] == np.arange(12)[None, :] % 3)
    X[:, 0] = 0.0  # a constant column: MinMax maps it to 0.5, x/input_max keeps it at 0
    info = {} if input_max is None else {"input_max": input_max}
    return ClassificationTask(name, X[:n_train], y[:n_train], X[n_train:], y[n_train:], info=info)


def test_checkpoint_round_trip_and_one_line_refusals(tmp_path: Path) -> None:
    params = {"kind": "nalsm", "size": 125, "seed": 1}
    w = np.arange(10, dtype=np.float32)
    path = tmp_path / "c.npz"
    ck.save_liquid(path, params, w, 0.25)
    w2, scale = ck.load_liquid(path, params)
    np.testing.assert_array_equal(w2, w)
    assert w2.dtype == np.float32 and scale == 0.25
    with pytest.raises(ck.CheckpointError, match=r"size=125 \(this run 1000\)") as err:
        ck.load_liquid(path, {**params, "size": 1000})
    assert "\n" not in str(err.value)
    with pytest.raises(ck.CheckpointError, match="no such file"):
        ck.load_liquid(tmp_path / "missing.npz", params)
    np.savez(tmp_path / "old.npz", version=np.int64(ck.VERSION + 1), params=np.array("{}"))
    with pytest.raises(ck.CheckpointError, match="format version"):
        ck.load_liquid(tmp_path / "old.npz", params)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ck.CheckpointError, match="not a readable"):
        ck.load_liquid(tmp_path / "junk.npz", params)


def test_feature_cache_stores_counts_compactly_and_exactly(tmp_path: Path) -> None:
    counts = np.array([[0.0, 3.0, 250.0], [1.0, 0.0, 7.0]])
    other = np.array([[0.5, -1.0]])
    ck.save_features(tmp_path / "f.npz", {"a": 1}, counts, other, {"bf": float("nan")})
    with np.load(tmp_path / "f.npz") as z:
        assert z["train"].dtype == np.uint16 and z["test"].dtype == np.float64
    train, test, info = ck.load_features(tmp_path / "f.npz", {"a": 1})
    np.testing.assert_array_equal(train, counts)
    np.testing.assert_array_equal(test, other)
    assert train.dtype == np.float64 and np.isnan(info["bf"])


def test_paper_encoding_and_mnist_n_init() -> None:
    tk = _task(input_max=255.0)
    Xtr, _, name = encode(tk)
    assert name == "x/255" and np.all(Xtr[:, 0] == 0.0)
    np.testing.assert_allclose(Xtr, tk.X_train / 255.0)
    Xtr_mm, _, name_mm = encode(_task())
    assert name_mm == "minmax" and np.all(Xtr_mm[:, 0] == 0.5)
    assert liquid_options(_task("mnist:x"), {})["n_init"] == MNIST_N_INIT
    assert liquid_options(_task("mnist:x"), {"n_init": 7})["n_init"] == 7
    assert "n_init" not in liquid_options(_task(), {})


@pytest.mark.parametrize("kind", ["lsm", "nalsm"])
def test_same_result_as_run_bench(kind: str) -> None:
    tk = _task()
    ref = run_bench(tk, kind, size=125, seeds=2, options=OPTS)
    got = classify_liquid(tk, kind, 125, 2, OPTS)
    assert got.summary["per_seed"] == ref.summary["per_seed"]
    np.testing.assert_array_equal(got.y_pred, ref.y_pred)
    assert got.summary["encoding"] == "minmax" and got.summary["resumed_seeds"] == []
    assert got.summary["n_init"] == (None if kind == "lsm" else 4)


def test_saved_liquid_reloads_to_the_same_features(tmp_path: Path) -> None:
    tk = _task()
    a = classify_liquid(
        tk, "nalsm", 125, [1], OPTS, LongRun(save_liquid=tmp_path / "liq", cache=tmp_path / "a")
    )
    assert ck.liquid_path(tmp_path / "liq", "nalsm", 125, 1).exists()
    b = classify_liquid(
        tk, "nalsm", 125, [1], OPTS, LongRun(load_liquid=tmp_path / "liq", cache=tmp_path / "b")
    )
    fa = ck.load_features(ck.features_path(tmp_path / "a", "nalsm", 125, 1), _fparams(tmp_path / "a"))
    fb = ck.load_features(ck.features_path(tmp_path / "b", "nalsm", 125, 1), _fparams(tmp_path / "b"))
    np.testing.assert_array_equal(fa[0], fb[0])
    np.testing.assert_array_equal(fa[1], fb[1])
    assert a.summary["per_seed"] == b.summary["per_seed"]
    assert b.extra["reservoir_info"][0]["init_seconds"] == 0.0  # stage 1 was not simulated
    with pytest.raises(ck.CheckpointError, match="n_init=4 \\(this run 5\\)"):
        classify_liquid(tk, "nalsm", 125, [1], {**OPTS, "n_init": 5}, LongRun(load_liquid=tmp_path / "liq"))


def _fparams(cache: Path) -> dict[str, Any]:
    """The params a feature file was written with (read back from the file itself)."""
    with np.load(ck.features_path(cache, "nalsm", 125, 1)) as z:
        return dict(json.loads(str(z["params"])))


def test_cache_resumes_seeds_and_refits_another_readout(tmp_path: Path) -> None:
    tk = _task()
    run = LongRun(cache=tmp_path)
    first = classify_liquid(tk, "nalsm", 125, 2, OPTS, run)
    again = classify_liquid(tk, "nalsm", 125, 2, OPTS, run)
    assert again.summary["resumed_seeds"] == [0, 1] and first.summary["resumed_seeds"] == []
    assert again.summary["per_seed"] == first.summary["per_seed"]
    soft = classify_liquid(tk, "nalsm", 125, 2, OPTS, LongRun(cache=tmp_path, readout="softmax"))
    assert soft.summary["resumed_seeds"] == [0, 1] and soft.summary["readout"] == "softmax"
    assert soft.summary["value"] > 1 / 3  # a readout fitted on the cached features, above chance
    with pytest.raises(ck.CheckpointError, match="other parameters"):
        classify_liquid(tk, "nalsm", 125, 2, {**OPTS, "presentation_ms": 70}, run)


def _npz(tmp_path: Path) -> Path:
    tk = _task(n_train=60, n_test=30)
    path = tmp_path / "toy.npz"
    X = np.concatenate([tk.X_train, tk.X_test])
    np.savez(path, X=X, y=np.concatenate([tk.y_train, tk.y_test]), n_train=60)
    return path


def test_cli_mismatched_checkpoint_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _npz(tmp_path)
    base = ["bench", "classify", "--data", str(data), "-r", "nalsm", "--size", "125", "--seeds", "1", *SET]
    assert main([*base, "--save-liquid", str(tmp_path / "liq"), "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["reservoir_info"]["per_seed"][0]["kind"] == "nalsm"
    assert main([*base, "--set", "eta_plus=0.001", "--load-liquid", str(tmp_path / "liq")]) == 2
    err = capsys.readouterr().err.strip()
    assert "made with other parameters" in err and len(err.splitlines()) == 1
    assert main(["bench", "digits", "-r", "esn", "--seeds", "1", "--cache", str(tmp_path / "c")]) == 2
    assert "apply to lsm" in capsys.readouterr().err


def test_killed_run_resumes_without_recomputing_finished_seeds(tmp_path: Path) -> None:
    data, cache = _npz(tmp_path), tmp_path / "cache"
    argv = [sys.executable, "-m", "daemon", "bench", "classify", "--data", str(data), "-r", "nalsm"]
    argv += ["--size", "125", "--seeds", "4", "--cache", str(cache), "--json", *SET]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    seed0 = ck.features_path(cache, "nalsm", 125, 0)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not seed0.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed mid-run"
    assert seed0.exists() and not ck.features_path(cache, "nalsm", 125, 3).exists()
    mtime = seed0.stat().st_mtime_ns
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)
    assert 0 in resumed["resumed_seeds"] and 3 not in resumed["resumed_seeds"]
    assert seed0.stat().st_mtime_ns == mtime  # seed 0 was read, not recomputed
    tk = make_task("classify", data=str(data))
    assert isinstance(tk, ClassificationTask)
    fresh = classify_liquid(tk, "nalsm", 125, 4, OPTS)  # uninterrupted
    assert fresh.summary["per_seed"] == resumed["per_seed"]
