"""`asicrc bench` hooks for the spiking reservoirs: reservoir_info in the JSON and --data mnist:DIR."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("torch")

from daemon.cli import main
from tests.unit.reservoir.test_spiking_idx import _write_mnist

# small liquid, presentations long enough for the branching-factor window (2 x (25 + 4) ms)
FAST = ["--size", "125", "--set", "presentation_ms=80", "--set", "batch_size=64", "--set", "bf_samples=8"]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def test_mnist_dir_and_branching_factor_in_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arrays = _write_mnist(tmp_path, 60, 30, gz=True)
    args = ["bench", "classify", "--data", f"mnist:{tmp_path}", "-r", "lsm", "--seeds", "2", "--json"]
    assert main([*args, "--n-train", "40", "--n-test", "20", *FAST]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["task"] == f"mnist:{tmp_path.name}" and obj["reservoir"] == "lsm"
    assert obj["n_train"] == 40 and obj["n_test"] == 20 and obj["state_dim"] == 125
    assert obj["n_classes"] == len(set(arrays[1][:40]) | set(arrays[3][:20]))
    info = obj["reservoir_info"]
    per_seed = info["branching_factor_per_seed"]
    assert len(per_seed) == 2 and len(info["per_seed"]) == 2
    finite = [b for b in per_seed if b is not None and math.isfinite(b)]
    assert finite, "no branching factor measured"
    assert info["branching_factor"] == pytest.approx(sum(finite) / len(finite))
    assert info["per_seed"][0]["kind"] == "lsm" and info["per_seed"][0]["config"]["presentation_ms"] == 80
    assert info["mean_rate_hz"] > 0


def test_text_output_reports_the_branching_factor(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "digits", "-r", "lsm", "--seeds", "1", *FAST]) == 0
    assert "branching factor" in capsys.readouterr().out


def test_esn_has_no_reservoir_info(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "digits", "-r", "esn", "--size", "20", "--seeds", "1", "--json"]) == 0
    assert "reservoir_info" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("mnist:", "needs a directory"),
        ("mnist:{tmp}/nowhere", "not a directory"),
        ("mnist:{tmp}", "no train-images-idx3-ubyte"),
    ],
)
def test_mnist_errors_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: str, message: str
) -> None:
    rc = main(["bench", "classify", "--data", data.format(tmp=tmp_path), "-r", "lsm", "--json", *FAST])
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "mnist:" in err


def test_mnist_bad_subset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_mnist(tmp_path, 10, 5, gz=False)
    args = ["bench", "classify", "--data", f"mnist:{tmp_path}", "-r", "lsm", "--n-train", "0", *FAST]
    with pytest.raises(SystemExit) as ei:  # refused by the parser, before any data is read
        main(args)
    assert ei.value.code == 2
    assert "--n-train: must be >= 1" in capsys.readouterr().err


def _cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@pytest.mark.parametrize(
    ("reservoir", "device", "message"),
    [
        pytest.param(
            "nalsm",
            "cuda",
            "CUDA is not available on this host",
            marks=pytest.mark.skipif(_cuda(), reason="this host has CUDA"),
        ),
        ("esn", "cpu", "--device applies to --reservoir lsm, lsm-stdp, nalsm only"),
        ("lsm", "gpu", "invalid choice: 'gpu'"),
    ],
)
def test_bad_device_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], reservoir: str, device: str, message: str
) -> None:
    args = ["bench", "digits", "-r", reservoir, "--device", device, "--seeds", "1", *FAST]
    try:
        rc = main(args)
    except SystemExit as exc:  # argparse's choices
        rc = int(str(exc.code))
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err
    if device != "gpu":
        assert len(err.strip().splitlines()) == 1, err


def test_device_cpu_gives_the_default_result(capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "bench",
        "digits",
        "-r",
        "lsm",
        "--seeds",
        "1",
        "--json",
        "--n-train",
        "60",
        "--n-test",
        "30",
        *FAST,
    ]
    outs = []
    for extra in ([], ["--device", "cpu"]) if not _cuda() else (["--device", "cpu"],):
        assert main([*args, *extra]) == 0
        outs.append(json.loads(capsys.readouterr().out))
    assert outs[-1]["reservoir_info"]["per_seed"][0]["device"] == "cpu"
    assert all(o["value"] == outs[0]["value"] and o["per_seed"] == outs[0]["per_seed"] for o in outs)
