"""The command line a newcomer meets: recover never deletes, several recordings, help, progress on a pty."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import build_parser, main
from daemon.exit_codes import EXIT_USAGE
from tests.unit.cli.test_recorder_cli import make_recording

ROOT = Path(__file__).resolve().parents[3]


def test_recover_moves_garbage_aside_reports_it_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    make_recording(run)
    garbage_part = os.urandom(3000)
    garbage_done = b"\x00" * 64 + os.urandom(2000)
    (run / "events-000009.arrows.part").write_bytes(garbage_part)
    (run / "events-000010.arrows").write_bytes(garbage_done)
    assert main(["record", "recover", str(run)]) == EXIT_USAGE
    cap = capsys.readouterr()
    assert "events-000009.arrows.part" in cap.out and "events-000010.arrows" in cap.out
    assert cap.err.count("\n") == 1 and "error: 2 damaged segment(s)" in cap.err  # one line
    # nothing deleted: both moved whole, the reason kept in meta.json
    assert (run / "damaged" / "events-000009.arrows.part").read_bytes() == garbage_part
    assert (run / "damaged" / "events-000010.arrows").read_bytes() == garbage_done
    meta = json.loads((run / "meta.json").read_text())
    assert {r["set_aside"] for r in meta["recovered"]} == {
        "damaged/events-000009.arrows.part",
        "damaged/events-000010.arrows",
    }
    # the rest reads: info and analyze work, and a second recover finds nothing left to do
    assert main(["record", "info", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == 240
    assert main(["analyze", str(run), "--no-mc", "--json"]) == 0
    capsys.readouterr()
    assert main(["record", "recover", str(run)]) == 0


def test_two_recordings_like_two_make_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """README: `record info var/recordings/*/` and `analyze var/recordings/*/` after two runs."""
    runs = [tmp_path / "recordings" / f"2026120{i}T000000Z-aaaaa{i}" for i in (1, 2)]
    for r in runs:
        make_recording(r)
    assert main(["record", "info", *map(str, runs), "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [i["rows"] for i in infos] == [240, 240]
    assert main(["record", "info", *map(str, runs)]) == 0
    assert capsys.readouterr().out.count("recording   ") == 2
    assert main(["analyze", *map(str, runs), "--no-mc", "--json"]) == 0
    streams = json.loads(capsys.readouterr().out)
    names = sorted(s["stream"] for s in streams)
    assert names == sorted(f"{r.name}/{b}" for r in runs for b in ("a", "b"))


def _parsers(
    p: argparse.ArgumentParser, name: str = "asicrc"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield name, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for sub, sp in a.choices.items():
                yield from _parsers(sp, f"{name} {sub}")


def test_help_is_plain_text_and_every_positional_is_explained() -> None:
    for name, p in _parsers(build_parser()):
        text = p.format_help()
        assert "``" not in text and not re.search(r":(func|class|mod|meth|data):", text), name
        for a in p._actions:
            if not a.option_strings and not isinstance(a, argparse._SubParsersAction):
                assert a.help, f"{name}: positional {a.dest} has no help"
        if name != "asicrc":
            assert any("--verbose" in a.option_strings for a in p._actions), name  # -v after the command


def _run_on_pty(argv: list[str]) -> tuple[int, str, bytes]:
    """Run asicrc with stderr on a pseudo-terminal and stdout on a pipe: (code, stdout, terminal bytes)."""
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="100", TERM="xterm")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    os.close(master)
    return proc.wait(timeout=120), out, bytes(seen)


BENCH = ["bench", "narma10", "-r", "esn", "--seeds", "2", "--n-train", "200", "--n-test", "100", "--json"]


def test_progress_goes_to_the_terminal_on_stderr_never_to_stdout() -> None:
    code, out, term = _run_on_pty(BENCH)
    assert code == 0, term[-2000:]
    summary = json.loads(out)  # stdout is the JSON object and nothing else
    assert summary["task"] == "narma10"
    assert b"seed 1 (2/2)" in term  # the step shown on the terminal
    quiet_code, _, quiet_term = _run_on_pty([*BENCH, "--quiet"])
    assert quiet_code == 0 and b"seed" not in quiet_term


def test_analyze_on_a_terminal_keeps_its_json_on_stdout(tmp_path: Path) -> None:
    runs = [tmp_path / f"run{i}" for i in (1, 2)]
    for r in runs:
        make_recording(r)
    code, out, term = _run_on_pty(
        ["analyze", *map(str, runs), "--no-mc", "--json", "--report", str(tmp_path / "r")]
    )
    assert code == 0, term[-2000:]
    assert len(json.loads(out)) == 4  # two boards in each of two recordings, all on stdout
    assert b"report: " in term and b'"stream"' not in term


def test_no_progress_when_stderr_is_not_a_terminal() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "daemon", *BENCH],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "seed" not in proc.stderr and "\x1b" not in proc.stderr


def test_reservoir_progress_notes_reach_only_a_listener() -> None:
    from reservoir.progress import listening, note

    seen: list[str] = []
    note("nobody listens")  # a no-op
    with listening(seen.append):
        note("batch 1/2")
    note("after")
    assert seen == ["batch 1/2"]


def test_the_shot_noise_floor_is_printed_in_words() -> None:
    from daemon.cli.bench_cmd import noise_floor_line

    line = noise_floor_line(
        {"mean_count_per_slot": 20.0, "count": 0.2236, "log_iv_mean": 0.294, "invalid_frac": 0.0}
    )
    assert line.startswith("shot-noise floor at 20 events per slot and chip: count 22.4% relative")
    assert "{" not in line
    empty = noise_floor_line(
        {"mean_count_per_slot": 0.0, "count": None, "log_iv_mean": None, "invalid_frac": 0.0}
    )
    assert "count inf relative" in empty  # infinite (no events) arrives as null from the JSON-safe summary


@pytest.mark.parametrize(("tls", "first_byte"), [(True, 0x16), (False, 0x10)])
def test_live_serve_tls_speaks_tls_to_the_broker(tmp_path: Path, tls: bool, first_byte: int) -> None:
    """A real listener on 127.0.0.1 reads the client's first byte: a TLS handshake record (0x16) with
    ``--tls``, an MQTT CONNECT packet (0x10) without it."""
    import socket

    import numpy as np

    from daemon.live import LiveModel, LiveParams
    from reservoir.readout import RidgeReadout

    params = LiveParams()
    n = params.n_sub * 6  # features per input of the emulated single-chip board
    rng = np.random.default_rng(0)
    model = LiveModel(params, RidgeReadout(alpha=1.0).fit(rng.normal(size=(40, n)), rng.normal(size=40)))
    model.save(tmp_path / "m.npz")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(60)
        port = server.getsockname()[1]
        argv = [
            "live",
            "serve",
            "--mqtt",
            f"127.0.0.1:{port}",
            "--readout",
            str(tmp_path / "m.npz"),
            "--simulate",
        ]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "daemon", *argv, *(["--tls"] if tls else [])]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                assert conn.recv(1)[0] == first_byte
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
