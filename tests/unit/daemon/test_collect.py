"""Fleet collector pieces: topics, board relabelling, statistics decoding and summing, readout files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.collect import (
    Collector,
    StatsSum,
    decode_stats,
    load_readout,
    parse_topic,
    relabel_events,
    save_readout,
)
from daemon.events import make_event_batch
from daemon.mqtt import encode_events
from daemon.recorder import RecorderPolicy
from daemon.recording import read_table
from reservoir.readout import RidgeReadout, RidgeStats

NAME = st.text(st.characters(blacklist_characters="/+#\x00", blacklist_categories=["Cs"]), min_size=1)


def _batch(board: str, n: int, t0: int = 0) -> pa.RecordBatch:
    t = np.arange(t0, t0 + n, dtype=np.int64) * 1000
    z = np.zeros(n, np.int64)
    return make_event_batch(
        board,
        t_host_ns=t,
        t_ns=t,
        chip=z,
        core=z,
        small_core=z,
        job_id=z,
        nonce=np.arange(n, dtype=np.uint32),
        valid=np.ones(n, bool),
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=1.0,
        read_id=z,
    )


def _data(seed: int, n: int = 300, d: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = X @ rng.standard_normal(d) + 0.3 + 0.1 * rng.standard_normal(n)
    return X, y


@given(host=NAME, board=NAME)
def test_event_and_stats_topics_parse(host: str, board: str) -> None:
    assert parse_topic(f"asicrc/{host}/events/{board}", "asicrc") == (host, "events", board)
    assert parse_topic(f"asicrc/{host}/readout/stats", "asicrc") == (host, "stats", "")
    assert parse_topic(f"lab/a/{host}/events/{board}", "lab/a") == (host, "events", board)


@pytest.mark.parametrize(
    "topic",
    [
        "asicrc/h/events",
        "asicrc/h/events/",
        "asicrc//events/b0",
        "other/h/events/b0",
        "asicrc/h/status",
        "asicrc/h/readout/other",
        "asicrc/h/events/b0/extra",
    ],
)
def test_other_topics_are_refused(topic: str) -> None:
    assert parse_topic(topic, "asicrc") is None


def test_relabel_prefixes_every_board_with_the_host() -> None:
    table = pa.Table.from_batches([_batch("b0", 3), _batch("b1", 2)])
    out = relabel_events(table, "hostA")
    boards = [v for b in out for v in b.column("board").to_pylist()]
    assert boards == ["hostA/b0"] * 3 + ["hostA/b1"] * 2
    assert all(b.schema.equals(_batch("x", 1).schema) for b in out)


def test_relabel_refuses_another_schema() -> None:
    table = pa.table({"t_ns": pa.array([1, 2], pa.int64())})
    with pytest.raises(ValueError, match="event schema"):
        relabel_events(table, "h")


def test_stats_decode_from_npz_and_json() -> None:
    X, y = _data(1, n=50)
    stats = RidgeStats.from_arrays(X, y)
    for payload in (stats.to_bytes(), json.dumps(stats.to_dict()).encode()):
        got = decode_stats(payload)
        assert got.rows == 50
        np.testing.assert_allclose(got.cxx, stats.cxx)
        np.testing.assert_allclose(got.cxy, stats.cxy)


@pytest.mark.parametrize(
    "payload",
    [b"", b"PK\x03\x04 not a zip", b"\xff\xfe", b"[1, 2]", b'{"n": 1}', b'{"n": 1, "rows": 1, "x_mean": []}'],
)
def test_bad_stats_payloads_raise_value_error(payload: bytes) -> None:
    with pytest.raises(ValueError):
        decode_stats(payload)


def test_non_finite_stats_are_refused() -> None:
    d = RidgeStats.from_arrays(*_data(2, n=20)).to_dict()
    d["cxx"][0][0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        decode_stats(json.dumps(d).encode())


@given(cuts=st.lists(st.integers(1, 299), min_size=1, max_size=4, unique=True))
def test_summed_host_statistics_fit_like_the_concatenated_data(cuts: list[int]) -> None:
    X, y = _data(3)
    edges = [0, *sorted(cuts), len(y)]
    sums = StatsSum()
    for i, (a, b) in enumerate(itertools.pairwise(edges)):
        sums.update(f"h{i}", RidgeStats.from_arrays(X[a:b], y[a:b]))
    fitted = sums.fit(alpha=0.5)
    ref = RidgeReadout(alpha=0.5).fit(X, y)
    np.testing.assert_allclose(fitted.coef_, ref.coef_, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(fitted.intercept_, ref.intercept_, rtol=1e-9, atol=1e-10)


def test_a_host_republishing_its_total_replaces_it() -> None:
    X, y = _data(4)
    sums = StatsSum()
    sums.update("a", RidgeStats.from_arrays(X[:100], y[:100]))
    sums.update("a", RidgeStats.from_arrays(X[:200], y[:200]))  # running total: replaces
    sums.update("a", RidgeStats.from_arrays(X[:200], y[:200]))  # QoS-1 redelivery: no double count
    sums.update("b", RidgeStats.from_arrays(X[200:], y[200:]))
    assert sums.total().rows == 300
    with pytest.raises(ValueError, match="features"):
        sums.update("c", RidgeStats.from_arrays(X[:, :3], y))


def test_hosts_as_cv_folds() -> None:
    X, y = _data(5)
    sums = StatsSum()
    for i in range(3):
        sums.update(f"h{i}", RidgeStats.from_arrays(X[i * 100 : (i + 1) * 100], y[i * 100 : (i + 1) * 100]))
    r = sums.fit("cv")
    assert r.alpha_ in [float(a) for a in r.alphas] and r.fold_stats_ is not None
    assert len(r.fold_stats_) == 3


def test_readout_file_round_trip(tmp_path: Path) -> None:
    X, y = _data(6)
    Y = np.column_stack([y, -2 * y])
    for target in (y, Y):
        r = RidgeReadout(alpha="gcv").fit(X, target)
        path = tmp_path / "readout.npz"
        save_readout(path, r, hosts=["a", "b"], meta={"note": "x"})
        f = load_readout(path)
        assert f.hosts == ("a", "b") and f.meta == {"note": "x"}
        np.testing.assert_allclose(f.readout.predict(X), r.predict(X), rtol=1e-10, atol=1e-10)
        assert f.readout.predict(X).shape == np.shape(target)
        with np.load(path, allow_pickle=False) as z:  # readable with numpy alone
            np.testing.assert_allclose(X @ z["coef"].T + z["intercept"], np.reshape(r.predict(X), (300, -1)))
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ValueError):
        load_readout(tmp_path / "bad.npz")


async def test_collector_records_both_hosts_and_counts_malformed(tmp_path: Path) -> None:
    X, y = _data(7)
    out = tmp_path / "central"
    col = Collector(out, alpha=0.25, policy=RecorderPolicy(flush_interval_s=0.01))
    col.start()
    sent: dict[str, Any] = {
        "asicrc/hostA/events/b0": encode_events(_batch("b0", 5)),
        "asicrc/hostB/events/b0": encode_events(_batch("b0", 7, t0=100)),
        "asicrc/hostB/events/b1": encode_events(_batch("b1", 2)),
        "asicrc/hostA/readout/stats": RidgeStats.from_arrays(X[:120], y[:120]).to_bytes(),
        "asicrc/hostB/readout/stats": json.dumps(RidgeStats.from_arrays(X[120:], y[120:]).to_dict()).encode(),
    }
    for topic, payload in sent.items():
        col.handle(topic, payload)
    col.handle("asicrc/hostC/events/b0", b"garbage")
    col.handle("asicrc/hostC/events/b0", encode_events(pa.record_batch({"x": pa.array([1])})))
    col.handle("asicrc/hostC/readout/stats", b"{}")
    col.handle("asicrc/hostC/bogus", b"")
    path = await col.finish()
    assert col.stats.malformed == {"events": 2, "stats": 1, "topic": 1}
    assert col.stats.hosts == {"hostA", "hostB"} and col.stats.event_rows == 14
    table = read_table(out)
    boards = table.column("board").to_pylist()
    assert sorted(set(boards)) == ["hostA/b0", "hostB/b0", "hostB/b1"]
    assert boards.count("hostB/b0") == 7 and table.num_rows == 14
    meta = json.loads((out / "meta.json").read_text())
    assert meta["collector"] is True and {b["name"] for b in meta["boards"]} >= {"hostA/b0", "hostB/b1"}
    assert path == out / "readout.npz"
    f = load_readout(path)
    ref = RidgeReadout(alpha=0.25).fit(X, y)
    np.testing.assert_allclose(f.readout.coef_, ref.coef_, rtol=1e-9)
    assert f.hosts == ("hostA", "hostB")


async def test_collector_without_statistics_writes_no_readout(tmp_path: Path) -> None:
    col = Collector(tmp_path / "c")
    col.start()
    col.handle("asicrc/h/events/b0", encode_events(_batch("b0", 1)))
    assert await col.finish() is None
    assert not (tmp_path / "c" / "readout.npz").exists()
    assert read_table(tmp_path / "c").num_rows == 1
