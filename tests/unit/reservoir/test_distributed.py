"""reservoir.distributed without a cluster: the --cluster spec, and Dask stays unimported without it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from reservoir.cluster_spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]


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


def test_analyze_without_cluster_does_not_import_dask(tmp_path: Path) -> None:
    ts = tmp_path / "t.txt"
    ts.write_text("\n".join(str(i * 1_000_003 + (i * i) % 997) for i in range(400)))
    out, mods = _modules_after(["analyze", "--timestamps", str(ts), "--json", "-q", "--no-mc"])
    assert '"verdict"' in out and mods == []


def _config(tmp_path: Path, body: str) -> str:
    p = tmp_path / "asicrc.toml"
    p.write_text(body)
    return str(p)


def test_cluster_section_parses_and_checks_the_address() -> None:
    from daemon.config import ConfigError, parse_config

    assert parse_config({}).cluster.address == ""
    c = parse_config({"cluster": {"address": "tcp://10.0.0.5:8786", "connect_timeout_s": 5}}).cluster
    assert (c.address, c.connect_timeout_s) == ("tcp://10.0.0.5:8786", 5.0)
    with pytest.raises(ConfigError, match=r"^config cluster\.address: value 'local:0'"):
        parse_config({"cluster": {"address": "local:0"}})
    with pytest.raises(ConfigError, match=r"cluster\.connect_timeout_s: value 0"):
        parse_config({"cluster": {"connect_timeout_s": 0}})
    with pytest.raises(ConfigError, match=r"cluster\.workers: unknown key"):
        parse_config({"cluster": {"workers": 2}})


def test_cluster_flag_overrides_the_config(tmp_path: Path) -> None:
    import argparse

    from daemon.cli.cluster_opts import resolve_cluster

    cfg = _config(tmp_path, '[cluster]\naddress = "tcp://10.0.0.5:8786"\nconnect_timeout_s = 4\n')
    args = argparse.Namespace(cluster=None, config=cfg)
    resolve_cluster(args)
    assert (args.cluster, args.cluster_timeout_s) == ("tcp://10.0.0.5:8786", 4.0)
    args = argparse.Namespace(cluster="local:2", config=cfg)
    resolve_cluster(args)
    assert (args.cluster, args.cluster_timeout_s) == ("local:2", 4.0)
    args = argparse.Namespace(cluster=None, config=cfg)
    resolve_cluster(args, config_applies=False)  # bench -r asic: the substrate is here
    assert args.cluster is None
    args = argparse.Namespace(cluster=None, config=None)
    resolve_cluster(args)
    assert args.cluster is None and args.cluster_timeout_s is None


def test_bad_cluster_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    cfg = _config(tmp_path, '[cluster]\naddress = "nowhere"\n')
    rc = main(["bench", "narma10", "-r", "esn", "--seeds", "1", "-q", "--config", cfg])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "config cluster.address: value 'nowhere'" in err
