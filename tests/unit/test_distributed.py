"""reservoir.distributed without a cluster: the --cluster spec, and Dask stays unimported without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reservoir.distributed import parse_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("local", ("local", None)),
        ("local:3", ("local", 3)),
        (" local:1 ", ("local", 1)),
        ("tcp://10.0.0.5:8786", ("tcp://10.0.0.5:8786", None)),
        ("tls://sched.lan:8786", ("tls://sched.lan:8786", None)),
        ("miner-7:8786", ("miner-7:8786", None)),
    ],
)
def test_parse_spec(spec: str, want: tuple[str, int | None]) -> None:
    assert parse_spec(spec) == want


@pytest.mark.parametrize("spec", ["local:0", "local:x", "local:-1", "tcp://host", "", "http://h:1 x"])
def test_parse_spec_rejects(spec: str) -> None:
    with pytest.raises(ValueError, match="--cluster"):
        parse_spec(spec)


def _modules_after(argv: list[str]) -> tuple[str, list[str]]:
    code = (
        "import sys\n"
        "from daemon.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('DASK:' + ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout, out.stdout.splitlines()[-1].removeprefix("DASK:").split()


def test_bench_without_cluster_does_not_import_dask() -> None:
    """``asicrc bench`` (help, and a real serial run) never loads Dask unless --cluster is given."""
    out, mods = _modules_after(["bench", "--help"])
    assert "--cluster" in out and mods == []
    argv = ["bench", "narma10", "-r", "esn", "--size", "10", "--seeds", "1", "-q", "--json"]
    out, mods = _modules_after([*argv, "--n-train", "200", "--n-test", "50"])
    assert '"task": "narma10"' in out and mods == []


def test_bad_cluster_spec_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    rc = main(["bench", "narma10", "-r", "esn", "--seeds", "1", "-q", "--cluster", "local:0"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--cluster local:N needs N >= 1" in err


def test_cluster_refuses_the_asic_substrate(capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    rc = main(["bench", "narma10", "-r", "asic", "--simulate", "-q", "--cluster", "local:1"])
    assert rc == 2
    assert "--cluster does not apply to --reservoir asic" in capsys.readouterr().err
