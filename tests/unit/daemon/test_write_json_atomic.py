"""The one crash-safe JSON writer (status.json, plan progress, recordings' meta.json)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from daemon.recording import write_json_atomic


def test_writes_sorted_json_with_newline_and_creates_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "status.json"
    write_json_atomic(path, {"b": 1, "a": [1.5, None]})
    text = path.read_text()
    assert text.endswith("}\n") and json.loads(text) == {"a": [1.5, None], "b": 1}
    assert text.index('"a"') < text.index('"b"')
    assert sorted(p.name for p in path.parent.iterdir()) == ["status.json"]


def test_unserialisable_object_touches_nothing(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_json_atomic(path, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_failed_rename_keeps_the_old_file_and_removes_the_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    write_json_atomic(path, {"v": 1})
    (tmp_path / "blocker").mkdir()
    with pytest.raises(OSError) as err:
        write_json_atomic(tmp_path / "blocker", {"v": 2})  # a directory in the way: rename fails
    assert err.value.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST)
    assert json.loads(path.read_text()) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "status.json"]


def test_file_reaches_disk_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Order of the system calls: write, fsync the file, rename, fsync the directory."""
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        calls.append("rename")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    write_json_atomic(tmp_path / "x.json", {"v": 1})
    assert calls == ["fsync-file", "rename", "fsync-dir"]
