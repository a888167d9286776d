"""The ``asicrc`` parser registers only the subcommand asked for; help and errors still list them all."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemon.cli import SUBCOMMANDS, build_parser, command_name, main, requested_command

ROOT = Path(__file__).resolve().parents[3]
NAMES = [command_name(m) for m in SUBCOMMANDS]


def _registered(only: str | None) -> list[str]:
    sub = next(a for a in build_parser(only)._actions if a.dest == "command")
    return list(sub.choices)  # type: ignore[arg-type]


def test_names_follow_the_modules() -> None:
    assert NAMES == [
        "run",
        "sim",
        "decode",
        "bench",
        "analyze",
        "record",
        "collect",
        "live",
        "plan-experiment",
    ]


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["run", "--simulate", "2"], "run"),
        (["-vv", "sim", "--boards", "1"], "sim"),
        (["--verbose", "decode", "55aa"], "decode"),
        ([], None),
        (["--help"], None),
        (["nope"], None),
        (["-v"], None),
    ],
)
def test_requested_command(argv: list[str], want: str | None) -> None:
    assert requested_command(argv) == want


def test_only_the_requested_subcommand_is_registered() -> None:
    assert _registered("decode") == ["decode"]
    assert _registered(None) == NAMES


def test_unknown_command_lists_every_choice(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ei:
        main(["nope"])
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err and all(f"'{n}'" in err for n in NAMES)


def test_run_does_not_import_the_analysis_stack() -> None:
    """``asicrc run`` starts without scipy, scikit-learn or matplotlib (systemd starts, test daemons)."""
    code = (
        "import sys\n"
        "from daemon.cli import main\n"
        "try:\n"
        "    main(['run', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY:' + ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('scipy', 'sklearn', 'matplotlib', 'torch'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "usage: asicrc run" in out.stdout
    assert out.stdout.splitlines()[-1] == "HEAVY:"
