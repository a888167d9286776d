"""Hardening fixes from the reliability work (RELIABILITY.md findings): recordings, state files, [mqtt].

Each test pins one fix: a damaged ``.part`` never stops recovery, damaged finished segments raise a clear
error naming the segment, a non-object ``meta.json`` is ignored, state files are private whatever the umask,
event and log rows lost to write errors are counted apart, and the new ``[mqtt]`` keys reach the bridge.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.config import ConfigError, parse_config
from daemon.events import make_event_batch, make_log_batch
from daemon.mqtt_link import MqttSettings
from daemon.plan_progress import ProgressStore, SweepProgress
from daemon.recorder import Recorder, RecorderPolicy
from daemon.recording import read_table, recover_dir, write_json_atomic
from daemon.state import DaemonState
from daemon.state_dir import check_state_dir

BATCHES = 4
ROWS = 5
SEGMENT = "events-000000.arrows"


def _batch(i: int) -> pa.RecordBatch:
    seq = np.arange(ROWS, dtype=np.int64) + i * ROWS
    return make_event_batch(
        "sim0", t_host_ns=seq, t_ns=seq, chip=0, core=0, small_core=0, job_id=0, nonce=seq.astype(np.uint32),
        valid=True, voltage_v=1.2, freq_mhz=485.0, ticket_diff=256.0, read_id=seq,
    )  # fmt: skip


def _segment(tmp: Path) -> tuple[bytes, bytes, list[int]]:
    """(a torn ``.part`` after BATCHES flushes, the finished segment, the part's size after each flush)."""
    run = tmp / "template"
    rec = Recorder(run, boards=["sim0"])
    ends = []
    for i in range(BATCHES):
        rec.add(_batch(i))
        rec.flush(fsync=False)
        ends.append((run / f"{SEGMENT}.part").stat().st_size)
    part = (run / f"{SEGMENT}.part").read_bytes()
    rec.close()
    return part, (run / SEGMENT).read_bytes(), ends


def _flips(data: bytes, upto: int | None = None) -> Iterator[tuple[int, bytes]]:
    """Every single-bit/byte flip of ``data`` (of its first ``upto`` bytes) in a fixed order."""
    for pos in range(len(data) if upto is None else min(upto, len(data))):
        for mask in (0x01, 0x80, 0xFF):
            buf = bytearray(data)
            buf[pos] ^= mask
            yield pos, bytes(buf)


def _open_error(data: bytes) -> type[BaseException] | None:
    try:
        pa.ipc.open_stream(pa.py_buffer(data))
    except (pa.ArrowException, OSError) as exc:
        return type(exc)
    return None


def _arrow_but_not_invalid(e: type[BaseException]) -> bool:
    return issubclass(e, pa.ArrowException) and not issubclass(e, pa.ArrowInvalid | OSError)


def _unsound_but_readable(data: bytes) -> bool:
    """Arrow reads every batch without raising, yet one fails ``validate(full=True)``."""
    try:
        batches = list(pa.ipc.open_stream(pa.py_buffer(data)))
    except (pa.ArrowException, OSError):
        return False
    for b in batches:
        try:
            b.validate(full=True)
        except pa.ArrowException:
            return True
    return False


def _run(tmp: Path, name: str, data: bytes) -> Path:
    run = tmp / "run"
    run.mkdir(exist_ok=True)
    for p in run.iterdir():
        p.unlink()
    (run / name).write_bytes(data)
    return run


# ------------------------------------------------------------------------------ 1. damaged torn segments


def test_part_with_a_schema_flip_that_arrow_does_not_call_invalid_is_set_aside(tmp_path: Path) -> None:
    part, _, _ = _segment(tmp_path)
    found = next(
        (d for _, d in _flips(part, 400) if (e := _open_error(d)) and _arrow_but_not_invalid(e)),
        None,
    )
    assert found is not None  # e.g. ArrowNotImplementedError: what escaped recover_dir before the fix
    run = _run(tmp_path, f"{SEGMENT}.part", found)
    (rec,) = recover_dir(run)  # does not raise
    assert rec.path is None and rec.rows == 0 and not list(run.glob("*.part"))
    assert rec.set_aside is not None and (run / rec.set_aside).read_bytes() == found  # moved, not deleted
    assert read_table(run).num_rows == 0


def test_part_whose_last_batch_is_unsound_keeps_the_sound_batches_before_it(tmp_path: Path) -> None:
    part, _, ends = _segment(tmp_path)
    head, last = part[: ends[-2]], part[ends[-2] :]
    hit = next((head + d for _, d in _flips(last) if _unsound_but_readable(head + d)), None)
    assert hit is not None  # Arrow reads the damaged batch without complaint: only validation catches it
    run = _run(tmp_path, f"{SEGMENT}.part", hit)
    (rec,) = recover_dir(run)
    table = read_table(run)
    table.validate(full=True)
    assert rec.rows == table.num_rows == (BATCHES - 1) * ROWS
    assert table.column("nonce").to_pylist() == list(range((BATCHES - 1) * ROWS))


# ------------------------------------------------------------------------- 2. damaged finished segments


def test_unsound_finished_segment_raises_a_value_error_naming_it(tmp_path: Path) -> None:
    _, done, _ = _segment(tmp_path)
    hit = next((d for _, d in _flips(done) if _unsound_but_readable(d)), None)
    assert hit is not None  # such flips exist: Arrow alone would hand back a corrupted table
    run = _run(tmp_path, SEGMENT, hit)
    with pytest.raises(ValueError, match=SEGMENT) as err:
        read_table(run)
    assert "corrupted recording segment" in str(err.value)


def test_segment_in_another_schema_is_a_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    sink = pa.BufferOutputStream()
    t = pa.table({"x": [1, 2, 3]})
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    (run / SEGMENT).write_bytes(sink.getvalue().to_pybytes())
    with pytest.raises(ValueError, match="schema is not the events schema"):
        read_table(run)


def test_sound_segments_still_read_in_full(tmp_path: Path) -> None:
    _, done, _ = _segment(tmp_path)
    run = _run(tmp_path, SEGMENT, done)
    assert read_table(run).column("nonce").to_pylist() == list(range(BATCHES * ROWS))


# ----------------------------------------------------------------------------------- 3. meta.json not a dict


@pytest.mark.parametrize("meta", [b"[]", b"1", b'"x"', b"null", b'{"recovered": 3}', b"\xff"])
def test_meta_json_that_is_not_an_object_is_treated_as_empty(tmp_path: Path, meta: bytes) -> None:
    part, _, _ = _segment(tmp_path)
    run = _run(tmp_path, f"{SEGMENT}.part", part)
    (run / "meta.json").write_bytes(meta)
    (rec,) = recover_dir(run)
    assert rec.rows == BATCHES * ROWS
    on_disk = json.loads((run / "meta.json").read_text())
    assert [r["rows"] for r in on_disk["recovered"]] == [BATCHES * ROWS]
    # reopening the run (Recorder.open) with the same kind of damage does not raise either
    (run / "meta.json").write_bytes(meta)
    again = Recorder(run, boards=["sim0"])
    again.open()
    again.close()
    assert again.stats.write_errors == 0
    assert json.loads((run / "meta.json").read_text())["run_id"] == "run"


def test_reopened_run_keeps_its_first_start_time(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = Recorder(run, boards=["sim0"])
    first.open()
    first.close()
    start = json.loads((run / "meta.json").read_text())["start_unix_ns"]
    second = Recorder(run, boards=["sim0"], meta={"start_unix_ns": start + 10**12})
    second.open()
    second.close()
    assert json.loads((run / "meta.json").read_text())["start_unix_ns"] == start


# ------------------------------------------------------------------------------ 4. private state files


@pytest.fixture
def umask_0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_state_dir_and_json_files_are_private_even_with_umask_0(tmp_path: Path, umask_0: None) -> None:
    state = tmp_path / "a" / "state"
    check_state_dir(state)
    assert _mode(state) == 0o750 and _mode(tmp_path / "a") == 0o750
    write_json_atomic(state / "status.json", {"x": 1})
    ProgressStore(state / "plans").save(SweepProgress("p", "b", "fp", 3, done=1))
    assert _mode(state / "status.json") == 0o640
    (plan,) = (state / "plans").iterdir()
    assert _mode(state / "plans") == 0o750 and _mode(plan) == 0o640
    assert json.loads(plan.read_text())["done"] == 1
    assert not list(state.rglob("*.tmp"))


def test_leftover_world_readable_temp_file_does_not_leak_its_mode(tmp_path: Path, umask_0: None) -> None:
    tmp = tmp_path / ".status.json.tmp"
    tmp.write_text("old")
    tmp.chmod(0o666)
    write_json_atomic(tmp_path / "status.json", {"ok": True})
    assert _mode(tmp_path / "status.json") == 0o640


def test_failed_json_write_leaves_no_temp_file(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "status.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- 9. dropped event vs log rows counted apart


def test_write_errors_count_event_and_log_rows_apart(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    rec = Recorder(blocker / "r", boards=["sim0"], policy=RecorderPolicy(retry_interval_s=10))
    rec.open()
    rec.add(_batch(0))
    rec.add(make_log_batch(1, "sim0", "plan", {"event": "start"}))
    rec.add(make_log_batch(2, "sim0", "plan", {"event": "done"}))
    rec.flush()
    assert rec.stats.error_dropped_rows == ROWS and rec.stats.error_dropped_log_rows == 2
    status = rec.stats.to_status()
    assert status["error_dropped_rows"] == ROWS and status["error_dropped_log_rows"] == 2


# ------------------------------------------------------------------------------------- 5. [mqtt] config


def test_mqtt_keys_reach_the_bridge_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    cfg = parse_config(
        {
            "mqtt": {
                "enabled": True, "tls": True, "ca_file": str(ca), "status_interval_s": 0.5,
                "buffer_messages": 50, "homeassistant": True, "password": "pw-1", "token": "tok-1",
            }
        }
    )  # fmt: skip
    s = MqttSettings.from_config(cfg.mqtt)
    assert (s.tls, s.ca_file, s.status_interval_s, s.buffer_messages, s.homeassistant) == (
        True, str(ca), 0.5, 50, True,
    )  # fmt: skip
    assert s.password == "pw-1" and s.token == "tok-1"
    assert "pw-1" not in repr(s) and "tok-1" not in repr(s)
    assert "pw-1" not in repr(cfg) and "tok-1" not in repr(cfg)  # a logged config shows no secret
    plain = MqttSettings.from_config(parse_config({}).mqtt)
    assert plain.ca_file is None and plain.token is None and plain.password is None


def test_ca_file_of_a_disabled_section_is_not_looked_up() -> None:
    cfg = parse_config({"mqtt": {"tls": True, "ca_file": "/nonexistent/ca.crt"}})
    assert cfg.mqtt.ca_file == "/nonexistent/ca.crt"


@pytest.mark.parametrize(
    ("mqtt", "key", "text"),
    [
        ({"enabled": True, "tls": True, "ca_file": "/nonexistent/ca.crt"}, "mqtt.ca_file", "no such file"),
        ({"tls": False, "ca_file": "/etc/hostname"}, "mqtt.ca_file", "tls = false"),
        ({"status_interval_s": 0.01}, "mqtt.status_interval_s", "out of range"),
        ({"status_interval_s": 4000}, "mqtt.status_interval_s", "out of range"),
        ({"buffer_messages": 9}, "mqtt.buffer_messages", "out of range"),
        ({"buffer_messages": 1_000_001}, "mqtt.buffer_messages", "out of range"),
        ({"homeassistant": "yes"}, "mqtt.homeassistant", "true or false"),
    ],
)
def test_bad_mqtt_keys_are_clear_errors(mqtt: dict[str, object], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"mqtt": mqtt})
    assert err.value.path == key and text in str(err.value)


def test_mqtt_status_holds_counters_but_no_settings() -> None:
    from daemon.mqtt import MqttStats

    state = DaemonState()
    assert state.to_status()["mqtt"] is None
    state.mqtt = MqttStats(published=3, dropped=1, reconnects=2, connected=True, commands_refused=4)
    m = state.to_status()["mqtt"]
    assert m == {
        "connected": True, "published": 3, "dropped": 1, "reconnects": 2, "commands_accepted": 0,
        "commands_refused": 4, "last_error": None,
    }  # fmt: skip


def test_example_config_parses_with_the_new_keys() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[3]
    data = tomllib.loads((root / "systemd" / "asicrc.example.toml").read_text())
    assert {"ca_file", "status_interval_s", "buffer_messages", "homeassistant"} <= set(data["mqtt"])
    cfg = parse_config(data)
    assert cfg.mqtt.buffer_messages == 1000 and cfg.mqtt.status_interval_s == 10.0
