"""`asicrc run` argument helpers and the state-directory check (no daemon started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.app import with_state_dir
from daemon.cli.run_cmd import parse_hostport
from daemon.config import Config
from daemon.state_dir import StateDirError, check_state_dir


def test_parse_hostport() -> None:
    assert parse_hostport("127.0.0.1:9366") == ("127.0.0.1", 9366)
    assert parse_hostport(":0") == ("127.0.0.1", 0)
    assert parse_hostport("[::1]:80") == ("[::1]", 80)
    for bad in ("9366", "host:", "host:99999", "host:http"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            parse_hostport(bad)


def test_state_dir_is_created_and_probed(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    check_state_dir(d)
    assert d.is_dir() and list(d.iterdir()) == []  # the probe file is gone
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match="not writable") as ei:
        check_state_dir(blocker / "state")
    assert str(blocker / "state") in str(ei.value) and "--state-dir" in str(ei.value)


def test_with_state_dir() -> None:
    cfg = Config()
    assert with_state_dir(cfg, None) is cfg
    assert with_state_dir(cfg, "/x").state_dir == "/x"
