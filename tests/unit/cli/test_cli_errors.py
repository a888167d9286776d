"""Every bad input a new user hit gives one line on stderr and a documented exit code (README "Exit codes").

Table-driven: each row is a command line (with ``{rec}``, ``{file}`` ... placeholders for the fixtures
below), the exit code and a fragment the one error line must hold. The table runs in-process through
:func:`daemon.cli.main` (argparse errors exit through ``SystemExit``); a subset runs as real subprocesses so
what a shell sees (no traceback, one line) is pinned too.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.cli import SUBCOMMANDS, command_name, main
from daemon.exit_codes import EXIT_NO_BOARDS, EXIT_OK, EXIT_RUNTIME, EXIT_USAGE
from tests.unit.cli.test_recorder_cli import make_recording

ROOT = Path(__file__).resolve().parents[3]
FAST_BENCH = ["--n-train", "200", "--n-test", "100", "--size", "20"]


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Recordings (sound, bit-flipped, truncated), timestamp files, a .npy, a plain file and a bad config."""
    d = tmp_path_factory.mktemp("fx")
    make_recording(d / "rec")
    for name, damage in (("flipped", "flip"), ("flipped_batch", "flip2000"), ("truncated", "cut")):
        make_recording(d / name)
        seg = d / name / "events-000000.arrows"
        data = bytearray(seg.read_bytes())
        if damage == "cut":
            del data[700:]
        else:
            start = 2000 if damage == "flip2000" else 300
            for j in range(start, start + 16):
                data[j] ^= 0xFF
        seg.write_bytes(bytes(data))
    (d / "same.txt").write_text("1000\n" * 100)
    (d / "big.txt").write_text("1\n99999999999999999999\n")
    (d / "ok.txt").write_text("".join(f"{i * 1000 + (i * 7919) % 500}\n" for i in range(200)))
    import numpy as np

    np.save(d / "x.npy", np.arange(10.0))
    (d / "file").write_text("not a directory\n")
    (d / "plan5v.toml").write_text(
        '[[plans]]\nname = "s"\nkind = "sweep"\npoints = [[1.2, 485.0, 1.0], [5.0, 485.0, 1.0]]\n'
    )
    return {k: str(d / k) for k in ("rec", "flipped", "flipped_batch", "truncated")} | {
        "same": str(d / "same.txt"),
        "big": str(d / "big.txt"),
        "ok": str(d / "ok.txt"),
        "npy": str(d / "x.npy"),
        "file": str(d / "file"),
        "plan5v": str(d / "plan5v.toml"),
        "tmp": str(d),
    }


# (command line, exit code, fragment of the error line)
CASES: list[tuple[str, int, str]] = [
    # 1. output paths checked before computing
    ("bench narma10 -r esn --seeds 2 --report {file}/x --json", EXIT_USAGE, "--report"),
    ("analyze {rec} --no-mc --report {file}/x", EXIT_USAGE, "--report"),
    # 2. damaged input and bad numbers: one line naming the input
    ("analyze {flipped} --no-mc", EXIT_USAGE, "events-000000.arrows: damaged segment"),
    ("analyze {flipped_batch} --no-mc", EXIT_USAGE, "events-000000.arrows: damaged segment"),
    ("analyze {truncated} --no-mc", EXIT_USAGE, "events-000000.arrows: damaged segment"),
    ("record info {truncated}", EXIT_USAGE, "events-000000.arrows"),
    ("record info {flipped}", EXIT_USAGE, "events-000000.arrows"),
    ("record info {flipped_batch}", EXIT_USAGE, "events-000000.arrows"),
    ("record convert {rec} --to csv /nonexistent-dir/out.csv", EXIT_USAGE, "/nonexistent-dir does not exist"),
    ("record convert {rec} --to csv {tmp}", EXIT_USAGE, "is a directory"),
    ("record convert {flipped} --to csv {tmp}/out.csv", EXIT_USAGE, "events-000000.arrows"),
    ("analyze --timestamps {same}", EXIT_USAGE, "all 100 timestamps are equal"),
    ("analyze --timestamps {big}", EXIT_USAGE, "outside the int64 range"),
    ("analyze --timestamps {ok} --seed -3", EXIT_USAGE, "--seed"),
    ("bench classify -r esn --data {npy}", EXIT_USAGE, "x.npy"),
    # 5. number checks
    ("bench narma10 -r esn --size 0", EXIT_USAGE, "--size: must be >= 1"),
    ("bench narma10 -r esn --size -5", EXIT_USAGE, "--size: must be >= 1"),
    ("bench narma10 -r esn --n-train 0", EXIT_USAGE, "--n-train: must be >= 1"),
    ("bench narma10 -r poisson-null --rate -5", EXIT_USAGE, "--rate: must be > 0"),
    ("bench narma10 -r esn --rate 5", EXIT_USAGE, "poisson-null only"),
    ("bench narma10 -r asic --host-time", EXIT_USAGE, "--host-time needs --simulate"),
    (
        "bench narma10 -r asic --simulate --time-scale 4",
        EXIT_USAGE,
        "--time-scale needs --simulate --host-time",
    ),
    ("bench narma10 -r esn --seeds 1 --set foo=1", EXIT_USAGE, "unknown esn option(s) ['foo']"),
    ("analyze --timestamps {ok} --alpha 5", EXIT_USAGE, "--alpha"),
    ("run --duration -5 --simulate 1", EXIT_USAGE, "--duration: must be > 0"),
    ("run --config {plan5v} --simulate 1", EXIT_USAGE, "plans[0].points[1]: voltage 5 V outside"),
    # the other commands follow the same rules
    ("sim --boards 0", EXIT_USAGE, "--boards must be >= 1"),
    ("collect --mqtt 127.0.0.1:1883 --out {file}/x --duration 1", EXIT_USAGE, "--out"),
    ("live train --out {tmp}/m.npz", EXIT_USAGE, "needs --simulate"),
    ("live serve --mqtt 127.0.0.1:1 --readout {file} --simulate --ca-file {file}", EXIT_USAGE, "needs --tls"),
    ("decode zz", EXIT_USAGE, "not a hex digit"),
    ("decode --file {tmp}/none", EXIT_USAGE, "cannot read"),
    ("plan-experiment --slot-ms 0", EXIT_USAGE, "slot_s must be > 0"),
    ("run --simulate 1 --json", EXIT_USAGE, "--json goes with --dry-run"),
    # usage errors of argparse itself are one line too
    ("bench narma10", EXIT_USAGE, "--reservoir"),
    ("record", EXIT_USAGE, "ACTION"),
    ("analyze {rec} --by nothing", EXIT_USAGE, "--by"),
]


def test_every_subcommand_has_a_bad_input_row() -> None:
    assert {command_name(m) for m in SUBCOMMANDS} <= {c[0].split()[0] for c in CASES}


def test_the_codes_are_the_documented_ones() -> None:
    assert (EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_NO_BOARDS) == (0, 1, 2, 2)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "daemon/exit_codes.py" in readme


def test_run_without_boards_says_how_to_configure_one_and_exits_no_boards() -> None:
    proc = _asicrc(["run"])
    assert proc.returncode == EXIT_NO_BOARDS and proc.stdout == ""
    assert proc.stderr.startswith("asicrc run: no boards configured.") and "Traceback" not in proc.stderr


def _argv(cmd: str, fx: dict[str, str]) -> list[str]:
    return cmd.format(**fx).split()


def _one_error_line(err: str, fragment: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "error:" in lines[0] and fragment in lines[0], lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(("cmd", "code", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_a_documented_exit_code(
    fx: dict[str, str], capfd: pytest.CaptureFixture[str], cmd: str, code: int, fragment: str
) -> None:
    try:
        rc = main(_argv(cmd, fx))
    except SystemExit as exc:  # argparse
        rc = int(exc.code or 0)
    out, err = capfd.readouterr()
    assert rc == code, err
    assert out == ""  # nothing half-printed on stdout
    _one_error_line(err, fragment)


SUBPROCESS = [0, 2, 5, 11, 14, 23]  # one per command family, through a real process


@pytest.mark.parametrize("i", SUBPROCESS, ids=[CASES[i][0] for i in SUBPROCESS])
def test_the_real_process_prints_one_line_and_exits_with_the_code(fx: dict[str, str], i: int) -> None:
    cmd, code, fragment = CASES[i]
    proc = _asicrc(_argv(cmd, fx))
    assert proc.returncode == code, proc.stderr
    assert proc.stdout == ""
    _one_error_line(proc.stderr, fragment)


def _asicrc(
    argv: list[str], preexec_fn: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "daemon", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec_fn,
    )


@pytest.mark.parametrize("command", ["bench", "analyze"])
def test_a_report_that_fails_after_computing_keeps_the_result_and_exits_1(
    fx: dict[str, str], tmp_path: Path, command: str
) -> None:
    """A real write failure (a 2 kB file-size limit: the PNGs cannot be written) after a finished run."""

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    if command == "bench":
        argv = ["bench", "narma10", "-r", "esn", "--seeds", "1", *FAST_BENCH, "--json"]
    else:
        argv = ["analyze", fx["rec"], "--no-mc", "--json"]
    proc = _asicrc([*argv, "--report", str(tmp_path / "report")], preexec_fn=small_files)
    assert proc.returncode == EXIT_RUNTIME, proc.stderr
    assert json.loads(proc.stdout)  # the result is printed all the same
    _one_error_line(proc.stderr, "the result above is complete")


def test_version_and_verbose_after_the_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as ei:
        main(["--version"])
    assert ei.value.code == EXIT_OK
    assert capsys.readouterr().out == f"asicrc {version('asicrc')}\n"
    assert main(["decode", "55 AA 52 05 00 00 0A", "-v"]) == 0
    assert main(["-v", "decode", "55 AA 52 05 00 00 0A", "-vv"]) == 0
    from daemon.cli import build_parser

    parser = build_parser()
    for argv, level in (
        (["record", "-v", "info", "x"], 1),
        (["record", "info", "x", "-vv"], 2),
        (["-v", "record", "info", "x"], 1),
        (["-v", "decode", "-v", "55"], 2),
    ):
        ns = parser.parse_args(argv)
        assert ns.verbose + getattr(ns, "verbose_sub", 0) == level, argv
