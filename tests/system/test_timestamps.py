"""Ground truth with actual pty write times, and the driver path's timestamps checked against it on real ptys.

No timing thresholds: only orderings that hold however loaded the machine is (a reply is written no earlier
than its modelled delivery; a read returns no earlier than the write that carried its last byte).
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import numpy as np
import pytest

from drivers.read_decoder import ReadDecoder
from drivers.transport import SerialTransport, TransportClosed
from simulator.board_spec import BoardConfig
from simulator.pty_server import SimulatedBoard

pytestmark = pytest.mark.system

#: Firehose rate (replies/s) at the reset baud (115,741: 9-byte replies, ~1,280/s line rate).
RATE = 400.0
#: Nonce replies to collect per run.
WANT = 150
#: Reset-baud nonce replies are 9 bytes (no version-rolling bytes before bring-up).
REPLY_LEN = 9


def _nonce_rows(board: SimulatedBoard) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nonce, write_ns, modelled delivery in host ns) of every nonce reply in the ground truth."""
    rows = [
        (int.from_bytes(g.frame[2:6], "big"), w, board.host_ns(g.deliver_s))
        for g, w in zip(board.ground_truth, board.write_ns, strict=True)
        if g.frame[:2] == b"\xaa\x55" and g.frame[-1] & 0x80
    ]
    arr = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="ascii") as f:
        return list(csv.DictReader(f))


def _align(got: np.ndarray, sent: np.ndarray) -> int:
    """Index in ``sent`` of the first received nonce (replies written before the host opened the port are
    flushed by the open); asserts the received run then matches the sent one exactly."""
    (hits,) = np.nonzero(sent == got[0])
    assert len(hits) >= 1, "first received nonce was never sent"
    off = int(hits[0])
    np.testing.assert_array_equal(got, sent[off : off + len(got)])
    return off


async def _collect(link: str, seed: int, truth_path: Path) -> tuple[SimulatedBoard, dict[str, np.ndarray]]:
    """Serve a firehose board, read it through SerialTransport + ReadDecoder until WANT nonces."""
    cfg = BoardConfig(seed=seed, link=link, firehose_rate=RATE, record_truth=True, truth_path=str(truth_path))
    board = SimulatedBoard(cfg)
    await board.start()
    transport = SerialTransport(board.data_path)
    await transport.open()
    decoder = ReadDecoder(reply_len=REPLY_LEN)
    nonce: list[np.ndarray] = []
    t_host: list[np.ndarray] = []
    t_wire: list[np.ndarray] = []
    try:
        async with asyncio.timeout(30):
            while sum(len(n) for n in nonce) < WANT:
                cols = decoder.decode([await transport.read()], transport.baud).nonces
                nonce.append(cols.nonce.astype(np.int64))
                t_host.append(cols.t_ns)
                t_wire.append(cols.t_wire_ns)
    except TransportClosed:  # pragma: no cover - reported by the assertions below
        pass
    finally:
        await transport.close()
        await board.stop()
    got = {
        "nonce": np.concatenate(nonce),
        "t_ns": np.concatenate(t_host),
        "t_wire_ns": np.concatenate(t_wire),
    }
    return board, got


@pytest.mark.parametrize("link", ["ideal", "ftdi"])
async def test_truth_has_monotonic_write_times_and_host_stamps_are_causal(link: str, tmp_path: Path) -> None:
    board, got = await _collect(link, seed=7, truth_path=tmp_path / "truth.csv")
    t_nonce, write_ns, deliver_ns = _nonce_rows(board)
    k = len(got["nonce"])
    assert k >= WANT
    # Matched exactly, one to one, in order: consecutive received nonces are consecutive sent nonces.
    off = _align(got["nonce"], t_nonce)
    # Every received reply has an actual write time; they never decrease and none precedes the modelled
    # delivery (the emulator is never early).
    w = write_ns[off : off + k]
    assert (w > 0).all()
    assert (np.diff(w) >= 0).all()
    assert (w >= deliver_ns[off : off + k]).all()
    # Over all truth rows, written rows are in order too (-1: never written, e.g. still in flight at stop).
    all_w = np.array(board.write_ns, dtype=np.int64)
    written = all_w[all_w >= 0]
    assert len(written) >= k and (np.diff(written) >= 0).all()
    # Causality on the driver path: a read is stamped no earlier than the write that carried the reply.
    assert (got["t_ns"] >= w).all()
    # The serialization estimate only ever moves a stamp earlier, never later than the read.
    assert (got["t_wire_ns"] <= got["t_ns"]).all()
    # The CSV written at stop carries the same write times.
    rows = _read_csv(tmp_path / "truth.csv")
    assert [int(r["write_ns"]) for r in rows] == board.write_ns
    assert len(rows) == len(board.ground_truth)


async def test_modelled_truth_is_reproducible_from_the_seed(tmp_path: Path) -> None:
    """Replies (and their order) come from the seed; only the measured write times differ between runs."""
    a, got_a = await _collect("ideal", seed=11, truth_path=tmp_path / "a.csv")
    b, got_b = await _collect("ideal", seed=11, truth_path=tmp_path / "b.csv")
    k = min(len(a.ground_truth), len(b.ground_truth))
    assert k >= WANT
    assert [g.frame for g in a.ground_truth[:k]] == [g.frame for g in b.ground_truth[:k]]
    # Modelled emission times follow the seed's Poisson stream, not the host's scheduling.
    # (equal up to float rounding, which depends on how the run was sliced into advance() steps).
    assert [g.emit_s for g in a.ground_truth[:k]] == pytest.approx(
        [g.emit_s for g in b.ground_truth[:k]], abs=1e-9
    )
    na, nb = _nonce_rows(a)[0], _nonce_rows(b)[0]
    _align(got_a["nonce"], na)
    _align(got_b["nonce"], nb)
    assert [r["frame_hex"] for r in _read_csv(tmp_path / "a.csv")][:k] == [
        g.frame.hex() for g in b.ground_truth[:k]
    ]
