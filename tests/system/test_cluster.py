"""Bench seeds and the summed readout on real Dask clusters: a LocalCluster (``local:2``) and a scheduler
with two ``dask worker`` processes on loopback; a worker killed mid-run; a task's error as the serial one."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daemon.cli import main
from reservoir.bench import run_bench
from reservoir.distributed import connect, fit_sharded, seed_mapper, sharded_fold_stats, sharded_stats
from reservoir.readout import RidgeReadout, RidgeStats
from tests.system.dask_fixture import DaskCluster

pytestmark = pytest.mark.system

TASK_OPTS = {"n_train": 400, "n_test": 100}


def _same(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Two bench summaries agree exactly, but for the wall time."""
    assert {k: v for k, v in a.items() if k != "elapsed_s"} == {
        k: v for k, v in b.items() if k != "elapsed_s"
    }


def _shards(tmp: Path, n_shards: int = 5, d: int = 12) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Collinear features (rank 3 + 5 % noise) and noisy targets: the CV optimum is clear of its neighbours
    on the alpha grid (by 1e-4 relative), so the choice does not rest on rounding."""
    rng = np.random.default_rng(7)
    Z = rng.normal(size=(3000, 3))
    X = (Z @ rng.normal(size=(3, d)) + 0.05 * rng.normal(size=(3000, d))) * rng.uniform(0.1, 10.0, size=d)
    X += rng.normal(size=d)
    y = X @ rng.normal(size=d) + 3.0 * rng.normal(size=3000) + 5.0
    paths = []
    cuts = np.sort(rng.choice(np.arange(1, len(y)), n_shards - 1, replace=False))  # unequal shards
    for i, idx in enumerate(np.split(np.arange(len(y)), cuts)):
        p = tmp / f"shard{i}.npz"
        np.savez(p, X=X[idx], y=y[idx])
        paths.append(str(p))
    return paths, X, y


def _check_fit(paths: list[str], X: np.ndarray, y: np.ndarray, client: Any) -> None:
    total = sharded_stats(client, paths)
    one = RidgeStats.from_arrays(X, y)
    assert total.rows == one.rows == len(y)
    for name in ("x_mean", "y_mean", "cxx", "cxy", "cyy"):
        np.testing.assert_allclose(getattr(total, name), getattr(one, name), rtol=1e-9, atol=0)
    for alpha in (1.0, "gcv", "cv"):
        dist = fit_sharded(client, paths, RidgeReadout(alpha=alpha))
        ref = RidgeReadout(alpha=alpha).fit(X, y)
        assert dist.alpha_ == ref.alpha_
        p, q = dist.predict(X), ref.predict(X)
        assert np.max(np.abs(p - q)) <= 1e-9 * np.max(np.abs(q))
    # cv: folds cut by global row index across shards of unequal size, summed fold by fold on the workers
    folds = sharded_fold_stats(client, paths, 4)
    ref = RidgeReadout(alpha="cv", n_folds=4).fit(X, y)
    ref_folds = ref.fold_stats_
    assert ref_folds is not None and [f.rows for f in folds] == [f.rows for f in ref_folds]
    for f, g in zip(folds, ref_folds, strict=True):
        np.testing.assert_allclose(f.cxx, g.cxx, rtol=1e-9, atol=1e-9 * np.abs(g.cxx).max())
    dist = RidgeReadout(alpha="cv", n_folds=4).fit_stats(folds)
    np.testing.assert_allclose(dist.cv_errors_, ref.cv_errors_, rtol=1e-9)
    assert dist.alpha_ == ref.alpha_


def test_local_cluster_bench_and_readout(tmp_path: Path) -> None:
    serial = run_bench("narma10", "esn", size=20, seeds=[0, 1, 2], task_options=TASK_OPTS)
    paths, X, y = _shards(tmp_path)
    with connect("local:2") as cluster:
        assert len(cluster.workers) == 2
        dist = run_bench(
            "narma10",
            "esn",
            size=20,
            seeds=[0, 1, 2],
            task_options=TASK_OPTS,
            map_seeds=seed_mapper(cluster.client),
        )
        _check_fit(paths, X, y, cluster.client)
    _same(serial.summary, dist.summary)
    np.testing.assert_array_equal(serial.y_pred, dist.y_pred)


def test_scheduler_and_workers_bench_and_readout(dask_cluster: DaskCluster, tmp_path: Path) -> None:
    serial = run_bench("narma10", "esn", size=20, seeds=[4, 5, 6, 7], task_options=TASK_OPTS)
    with connect(dask_cluster.address) as cluster:
        assert len(cluster.workers) == 2
        dist = run_bench(
            "narma10",
            "esn",
            size=20,
            seeds=[4, 5, 6, 7],
            task_options=TASK_OPTS,
            map_seeds=seed_mapper(cluster.client),
        )
        paths, X, y = _shards(tmp_path, n_shards=7)
        _check_fit(paths, X, y, cluster.client)
        # a shard pinned to one worker runs there (the data lives there)
        from distributed import get_task_stream

        w0 = dask_cluster.worker_address(dask_cluster.workers[0])
        with get_task_stream(client=cluster.client) as ts:
            pinned = sharded_stats(cluster.client, paths[:4], workers=[w0] * 4)
        assert pinned.rows == sum(np.load(p)["y"].size for p in paths[:4])
        ran_on = {t["worker"] for t in ts.data if "-shard-" in str(t["key"])}
        assert ran_on == {w0}
    _same(serial.summary, dist.summary)


def test_killed_worker_is_retried_with_the_same_result(dask_cluster_own: DaskCluster) -> None:
    dask_cluster = dask_cluster_own
    seeds = list(range(6))
    opts = {"n_train": 1500, "n_test": 300}
    serial = run_bench("narma10", "esn", size=60, seeds=seeds, task_options=opts).summary
    victim = dask_cluster.workers[1]
    victim_addr = dask_cluster.worker_address(victim)
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["summary"] = run_bench(
                "narma10",
                "esn",
                size=60,
                seeds=seeds,
                task_options=opts,
                map_seeds=seed_mapper(dask_cluster.client),
            ).summary
        except BaseException as exc:  # re-raised below in the test thread
            out["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    deadline = time.monotonic() + 60
    while not dask_cluster.client.processing().get(victim_addr) and time.monotonic() < deadline:
        time.sleep(0.01)
    busy = bool(dask_cluster.client.processing().get(victim_addr))
    dask_cluster.kill_worker(victim)
    t.join(timeout=120)
    assert not t.is_alive()
    if "error" in out:
        raise out["error"]
    assert busy, "the victim never had a task to lose"
    _same(serial, out["summary"])


def test_version_check_names_the_workers(dask_cluster: DaskCluster) -> None:
    from reservoir.distributed import ClusterError, asicrc_version, check_versions

    versions = check_versions(dask_cluster.client)
    assert sorted(versions) == sorted(dask_cluster.worker_address(p) for p in dask_cluster.workers)
    assert set(versions.values()) == {asicrc_version()}
    with pytest.raises(ClusterError, match=r"differs from this one \(9\.9\.9\): tcp://127\.0\.0\.1:\d+ has "):
        check_versions(dask_cluster.client, expected="9.9.9")


def test_task_error_is_the_serial_one_line(
    dask_cluster: DaskCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "narma10", "-r", "esn", "--size", "10", "--seeds", "2", "-q", "--set", "bogus=1"]
    argv += ["--n-train", "200", "--n-test", "50"]
    assert main(argv) == 2
    serial = capsys.readouterr().err
    assert main([*argv, "--cluster", dask_cluster.address]) == 2
    clustered = capsys.readouterr().err
    assert clustered == serial and serial.count("\n") == 1 and "unknown esn option" in serial


def test_cli_cluster_json_equals_serial(
    dask_cluster: DaskCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "narma10", "-r", "esn", "--size", "15", "--seeds", "3", "-q", "--json"]
    argv += ["--n-train", "300", "--n-test", "80"]
    assert main(argv) == 0
    serial = json.loads(capsys.readouterr().out)
    assert main([*argv, "--cluster", dask_cluster.address]) == 0
    _same(serial, json.loads(capsys.readouterr().out))


def test_unreachable_scheduler_is_a_runtime_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from reservoir import distributed
    from tests.system.netutil import free_port

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT_S", 2.0)
    argv = [
        "bench",
        "narma10",
        "-r",
        "esn",
        "--seeds",
        "1",
        "-q",
        "--cluster",
        f"tcp://127.0.0.1:{free_port()}",
    ]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and "cannot connect to the cluster" in err


def test_cli_local_cluster_subprocess(capsys: pytest.CaptureFixture[str]) -> None:
    """``asicrc bench --cluster local:2`` as a process: the worker processes start and end with it."""
    exe = Path(sys.executable).parent / "asicrc"
    argv = ["bench", "narma10", "-r", "esn", "--size", "12", "--seeds", "2", "-q", "--json"]
    argv += ["--n-train", "200", "--n-test", "60"]
    assert main(argv) == 0
    serial = json.loads(capsys.readouterr().out)
    dist = subprocess.run(
        [str(exe), *argv, "--cluster", "local:2"], capture_output=True, text=True, timeout=120, check=True
    )
    _same(serial, json.loads(dist.stdout))


def test_analyze_recordings_on_the_cluster_equal_serial(
    dask_cluster: DaskCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several recordings' streams as tasks; the correction over all of them is the serial one."""
    from tests.unit.cli.test_analyze_cmd import make_recording

    dirs = []
    for i in range(3):
        root = tmp_path / f"r{i}"
        root.mkdir()
        dirs.append(str(make_recording(root, n=1500 + 500 * i).rename(tmp_path / f"run{i}")))
    argv = ["analyze", *dirs, "--by", "board", "--json", "-q"]
    assert main(argv) == 0
    serial = json.loads(capsys.readouterr().out)
    from distributed import get_task_stream

    with get_task_stream(client=dask_cluster.client) as ts:  # the scheduler's record of every task
        assert main([*argv, "--cluster", dask_cluster.address]) == 0
    clustered = json.loads(capsys.readouterr().out)
    assert len(serial) >= 6 and clustered == serial
    # the recordings were read on the workers (one read task per recording), not here
    assert sum(1 for t in ts.data if str(t["key"]).startswith("read_task")) == len(dirs)
    # [cluster] of --config instead of --cluster: the same
    cfg = tmp_path / "asicrc.toml"
    cfg.write_text(f'[cluster]\naddress = "{dask_cluster.address}"\nconnect_timeout_s = 20\n')
    assert main([*argv, "--config", str(cfg)]) == 0
    assert json.loads(capsys.readouterr().out) == serial
    # a recording a worker cannot see: the serial one-line error, exit 2
    missing = str(tmp_path / "gone")
    assert main(["analyze", dirs[0], missing, "-q"]) == 2
    err = capsys.readouterr().err
    assert main(["analyze", dirs[0], missing, "-q", "--cluster", dask_cluster.address]) == 2
    assert capsys.readouterr().err == err and err.count("\n") == 1 and "no such recording directory" in err


def test_detection_grid_points_as_tasks_equal_serial(
    dask_cluster: DaskCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """The dose-response grid (gain x events x task, each with its seeds) as tasks: the rows are the serial
    ones but for the wall time."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_detection.py"
    sys.path.insert(0, str(script.parent))
    from bench_detection import main as detection

    argv = ["--seeds", "2", "--n-train", "80", "--n-test", "40", "--gains", "0", "0.5", "--events", "10"]
    argv += ["--kinds", "echo", "--tasks", "memory-capacity", "--json"]
    assert detection(argv) == 0
    serial = json.loads(capsys.readouterr().out)
    # the script as users run it: its functions (in __main__) travel by value, workers need only asicrc
    run = [sys.executable, str(script), *argv, "--cluster", dask_cluster.address]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300, check=True)
    clustered = json.loads(done.stdout)
    assert len(serial) == 2
    assert [{k: v for k, v in r.items() if k != "elapsed_s"} for r in clustered] == [
        {k: v for k, v in r.items() if k != "elapsed_s"} for r in serial
    ]
