"""``asicrc decode``: through ``main([...])`` with capsys, and once as a subprocess of the console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.capture_decode import Summary, iter_records
from daemon.cli import main
from daemon.cli.decode_cmd import parse_hex
from drivers.chipmath import DIFF1_TARGET
from drivers.frames import NonceReply, RegisterReply, read_reg, write_reg
from tests.unit.drivers.test_share import BLOCK_HASH_DISPLAY, block_125552_job, block_125552_reply

REAL_DIFF = DIFF1_TARGET / int(BLOCK_HASH_DISPLAY, 16)


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, object]], str]:
    code = main(["decode", "--json", *argv])
    cap = capsys.readouterr()
    return code, [json.loads(line) for line in cap.out.splitlines()], cap.err


def test_literal_frames_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["decode", "55 AA 52 05 00 00 0A AA 55 13 66 00 00 00 00 00 00 05"])
    cap = capsys.readouterr()
    assert code == 0
    lines = cap.out.splitlines()
    assert len(lines) == 2
    assert "READ_REGISTER" in lines[0] and "CHIP_ID" in lines[0]
    assert "register" in lines[1] and "13660000" in lines[1]
    assert "decoded 2 frames" in cap.err and "0 CRC errors" in cap.err


def test_json_nonce_after_its_job_has_share_difficulty(capsys: pytest.CaptureFixture[str]) -> None:
    stream = block_125552_job().encode() + block_125552_reply().encode()
    code, records, _ = run_json(capsys, stream.hex())
    assert code == 0
    assert [r["kind"] for r in records] == ["job", "nonce"]
    job, nonce = records
    assert job["crc_ok"] is True and job["job_id"] == 0x18
    assert job["prev_block_hash"] == "00000000000008a3a41b85b8b29ad444def299fee21793cd8b9e567eab02cd81"
    assert nonce["job_id"] == 0x18 and nonce["small_core"] == 5
    assert nonce["nonce"] == "42a14695" and nonce["version_bits"] == 0
    assert nonce["share_difficulty"] == pytest.approx(REAL_DIFF, rel=1e-12)
    assert nonce["hash"] == BLOCK_HASH_DISPLAY


def test_nonce_without_its_job_has_null_share(capsys: pytest.CaptureFixture[str]) -> None:
    stream = block_125552_job(job_id=0x20).encode() + block_125552_reply().encode()  # reply says job 0x18
    _, records, _ = run_json(capsys, stream.hex())
    assert records[1]["kind"] == "nonce" and records[1]["share_difficulty"] is None
    _, records, _ = run_json(capsys, block_125552_reply().encode().hex())
    assert records[0]["share_difficulty"] is None


def test_garbage_and_bad_crc_are_counted_not_fatal(capsys: pytest.CaptureFixture[str]) -> None:
    good = RegisterReply(0xCAFEF00D, 0x40, 0x8C).encode()
    bad = good[:-1] + bytes([good[-1] ^ 1])
    stream = b"\x01\x02" + bad + b"\xff" + good + b"\xaa\x55\x00"
    code, records, err = run_json(capsys, stream.hex())
    assert code == 0
    assert [(r["kind"], r["crc_ok"]) for r in records] == [("register", False), ("register", True)]
    assert records[1]["value"] == "cafef00d" and records[1]["reg_name"] == "HASH_COUNTER_TOTAL"
    assert "1 CRC errors" in err
    assert f"{2 + 11 + 1 + 3} of {len(stream)} bytes skipped" in err


def test_file_capture_and_reply_len_9(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "capture.bin"
    frames = [NonceReply(i, 0, 8 * i) for i in range(5)]
    capture.write_bytes(read_reg(0).encode() + b"".join(f.encode(9) for f in frames))
    code, records, _ = run_json(capsys, "--file", str(capture), "--reply-len", "9", "--chips", "4")
    assert code == 0
    assert [r["kind"] for r in records] == ["command"] + ["nonce"] * 5
    assert [r["job_id"] for r in records[1:]] == [8 * i & 0xF8 for i in range(5)]
    assert all(r["chip_index"] == 0 for r in records[1:])


def test_write_command_fields(capsys: pytest.CaptureFixture[str]) -> None:
    _, records, _ = run_json(capsys, write_reg(0x14, 0xFF, chip_addr=4, broadcast=False).encode().hex())
    (rec,) = records
    assert rec == {
        "kind": "command",
        "crc_ok": True,
        "offset": 0,
        "length": 11,
        "cmd": "WRITE_REGISTER",
        "broadcast": False,
        "chip_addr": 4,
        "reg": 0x14,
        "reg_name": "TICKET_MASK",
        "value": "000000ff",
        "raw": "55aa41090414000000ff" + f"{write_reg(0x14, 0xFF, 4, False).encode()[-1]:02x}",
    }


@pytest.mark.parametrize("text", ["zz", "abc", "", "55 AA 5"])
def test_bad_hex_is_a_clear_error(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", text]) == 2
    err = capsys.readouterr().err
    assert "asicrc decode: error:" in err and "Traceback" not in err


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode"]) == 2
    assert "nothing to decode" in capsys.readouterr().err
    assert main(["decode", "55aa", "--file", "x"]) == 2
    assert main(["decode", "--file", str(tmp_path / "missing.bin")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_parse_hex_accepts_common_separators() -> None:
    assert parse_hex("55 AA:52-05,0x00 0X00\n0a") == bytes.fromhex("55aa52050000 0a")


def test_iter_records_summary() -> None:
    summary = Summary()
    records = list(iter_records(b"\x00" * 5 + read_reg(0).encode() + b"\x55", summary=summary))
    assert len(records) == 1 and summary.garbage_bytes == 6 and summary.kinds == {"command": 1}


@pytest.mark.system
def test_console_script_subprocess(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("asicrc")
    script = str(exe) if exe.exists() else shutil.which("asicrc")
    if script is None:
        pytest.skip("asicrc console script not installed")
    stream = b"\x99" + block_125552_job().encode() + block_125552_reply().encode()
    proc = subprocess.run(
        [script, "decode", "--json", stream.hex()], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["kind"] for r in records] == ["job", "nonce"]
    assert records[1]["share_difficulty"] == pytest.approx(REAL_DIFF, rel=1e-12)
    assert "1 of" in proc.stderr
    bad = subprocess.run([script, "decode", "0xZZ"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "not a hex digit" in bad.stderr
