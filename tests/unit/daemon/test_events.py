"""Event batches, the fan-out pipeline (bounded queues, counted drops) and the DaemonState fold."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.events import (
    EVENT_SCHEMA,
    LOG_SCHEMA,
    EventBatchError,
    Pipeline,
    is_log_batch,
    make_event_batch,
)
from daemon.state import HASHES_PER_DIFF1, INTERARRIVAL_BUCKETS_S, DaemonState, PlanProgress


def batch(
    board: str, t_ns: np.ndarray, chip: np.ndarray, valid: np.ndarray, ticket: float = 4.0
) -> pa.RecordBatch:
    n = len(t_ns)
    return make_event_batch(
        board,
        t_host_ns=t_ns + 5,
        t_ns=t_ns,
        chip=chip,
        core=np.arange(n) % 80,
        small_core=np.arange(n) % 4,
        job_id=np.full(n, 24, np.uint8),
        nonce=np.arange(n, dtype=np.uint32),
        valid=valid,
        voltage_v=1.2,
        freq_mhz=485.0,
        ticket_diff=ticket,
        read_id=np.arange(n) // 3,
    )


def simple(board: str = "b0", n: int = 4, t0: int = 0) -> pa.RecordBatch:
    t = t0 + np.arange(n, dtype=np.int64) * 1_000_000
    return batch(board, t, np.arange(n) % 3, np.ones(n, bool))


# ------------------------------------------------------------------------------------------ batches


def test_batch_has_the_contract_schema_and_defaults() -> None:
    b = simple(n=5)
    assert b.schema.equals(EVENT_SCHEMA)
    assert b.column("board").to_pylist() == ["b0"] * 5
    assert b.column("point").to_pylist() == [-1] * 5  # default: no plan point
    assert b.column("share_diff").to_pylist() == [0.0] * 5
    assert b.column("voltage_v").to_numpy().dtype == np.float32
    assert not is_log_batch(b)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"chip": np.array([0, 1, 40_000, 2])}, "chip"),
        ({"job_id": 300}, "job_id"),
        ({"valid": np.array([1.0, 0.0, 1.0, 1.0])}, "valid"),
        ({"nonce": np.array([0.5, 1.0, 2.0, 3.0])}, "nonce"),
        ({"core": np.arange(3)}, "length"),
        ({"bogus": np.arange(4)}, "unknown"),
        ({"voltage_v": np.array(["a", "b", "c", "d"])}, "voltage_v"),
    ],
)
def test_batch_validation_names_the_column(change: dict[str, Any], message: str) -> None:
    cols: dict[str, Any] = {
        "t_host_ns": np.arange(4),
        "t_ns": np.arange(4),
        "chip": np.arange(4),
        "core": 0,
        "small_core": 0,
        "job_id": 8,
        "nonce": np.arange(4, dtype=np.uint32),
        "valid": True,
        "voltage_v": 1.2,
        "freq_mhz": 485.0,
        "ticket_diff": 1.0,
        "read_id": 0,
    }
    cols.update(change)
    with pytest.raises(EventBatchError, match=message):
        make_event_batch("b0", **cols)


def test_missing_column_is_an_error() -> None:
    with pytest.raises(EventBatchError, match="missing event column 'read_id'"):
        make_event_batch(
            "b", t_host_ns=np.arange(2), t_ns=np.arange(2), chip=0, core=0, small_core=0, job_id=0, nonce=0,
            valid=True, voltage_v=1.0, freq_mhz=1.0, ticket_diff=1.0,
        )  # fmt: skip


@given(
    st.lists(
        st.tuples(st.integers(0, 2**63 - 1), st.integers(-(2**15), 2**15 - 1), st.integers(0, 2**32 - 1)),
        min_size=0,
        max_size=50,
    )
)
def test_batch_roundtrips_every_in_range_value(rows: list[tuple[int, int, int]]) -> None:
    t = np.array([r[0] for r in rows], np.int64)
    chip = np.array([r[1] for r in rows], np.int64)  # wider dtype: narrowed after a range check
    nonce = np.array([r[2] for r in rows], np.int64)
    b = make_event_batch(
        "x", t_host_ns=t, t_ns=t, chip=chip, core=0, small_core=0, job_id=0, nonce=nonce, valid=False,
        voltage_v=1.0, freq_mhz=500, ticket_diff=1, read_id=0,
    )  # fmt: skip
    assert b.num_rows == len(rows)
    assert b.column("t_ns").to_pylist() == t.tolist()
    assert b.column("chip").to_pylist() == chip.tolist()
    assert b.column("nonce").to_pylist() == nonce.tolist()


# ------------------------------------------------------------------------------------------ pipeline


def test_full_queue_drops_for_that_subscriber_only_and_counts_rows() -> None:
    p = Pipeline(clock=lambda: 42)
    slow = p.subscribe("slow", maxsize=1)
    fast = p.subscribe("fast", maxsize=10)
    for i in range(3):
        p.publish(simple(n=4, t0=i * 10**9))
    assert slow.stats.dropped_batches == 2 and slow.stats.dropped_rows == 8
    assert fast.stats.dropped_rows == 0 and fast.stats.queued == 3
    assert p.published_rows == 12 and p.dropped_rows == 8
    got = fast.drain()
    assert [b.column("t_ns")[0].as_py() for b in got] == [0, 10**9, 2 * 10**9]  # FIFO
    assert fast.stats.delivered_rows == 12


def test_logs_reach_only_log_subscribers_with_clock_and_json_payload() -> None:
    p = Pipeline(clock=lambda: 123)
    ev_only = p.subscribe("ev", 5, logs=False)
    both = p.subscribe("both", 5)
    p.log("b0", "setpoint", {"voltage_v": 1.2, "why": ("plan", 3)})
    p.publish(simple())
    assert ev_only.stats.queued == 1 and both.stats.queued == 2
    row = both.get_nowait()
    assert row is not None and is_log_batch(row) and row.schema.equals(LOG_SCHEMA)
    assert row.to_pylist() == [
        {
            "t_ns": 123,
            "board": "b0",
            "kind": "setpoint",
            "payload": json.dumps({"voltage_v": 1.2, "why": ["plan", 3]}),
        }
    ]
    with pytest.raises(ValueError, match="log kind"):
        p.log("b0", "gossip", {})


def test_listener_errors_are_counted_and_do_not_stop_fanout() -> None:
    p = Pipeline()
    sub = p.subscribe("s", 5)
    seen: list[str] = []

    def bad(board: str, b: pa.RecordBatch) -> None:
        raise RuntimeError("boom")

    p.add_listener("bad", bad)
    p.add_listener("good", lambda board, b: seen.append(board))
    p.publish(simple("bx"))
    assert p.listener_errors == 1 and seen == ["bx"] and sub.stats.queued == 1


def test_duplicate_subscriber_and_bad_size_are_errors() -> None:
    p = Pipeline()
    p.subscribe("a", 1)
    with pytest.raises(ValueError, match="already exists"):
        p.subscribe("a", 1)
    with pytest.raises(ValueError, match="maxsize"):
        p.subscribe("b", 0)


async def test_async_iteration_ends_after_close_and_drains_queued() -> None:
    p = Pipeline()
    sub = p.subscribe("s", 10)
    received: list[int] = []

    async def consume() -> None:
        async for b in sub:
            received.append(b.num_rows)

    task = asyncio.create_task(consume())
    p.publish(simple(n=2))
    await asyncio.sleep(0)
    p.publish(simple(n=3))
    p.close()
    p.publish(simple(n=7))  # after close: ignored
    await task
    assert received == [2, 3]
    assert await sub.get() is None


async def test_wait_times_out_without_data_and_wakes_on_publish() -> None:
    p = Pipeline()
    sub = p.subscribe("s", 10)
    assert await sub.wait(0) is False
    waiter = asyncio.create_task(sub.wait(None))
    await asyncio.sleep(0)
    p.publish(simple())
    assert await waiter is True


# ------------------------------------------------------------------------------------------ state


def reference_fold(batches: list[pa.RecordBatch]) -> tuple[dict[int, int], dict[int, int], list[int], float]:
    """Row-by-row reference of what DaemonState folds vectorised."""
    nonces: dict[int, int] = {}
    invalid: dict[int, int] = {}
    hist = [0] * (len(INTERARRIVAL_BUCKETS_S) + 1)
    hashes = 0.0
    last: int | None = None
    for b in batches:
        for row in b.to_pylist():
            nonces[row["chip"]] = nonces.get(row["chip"], 0) + 1
            if not row["valid"]:
                invalid[row["chip"]] = invalid.get(row["chip"], 0) + 1
            else:
                hashes += row["ticket_diff"] * HASHES_PER_DIFF1
            if last is not None:
                dt = max(row["t_ns"] - last, 0) * 1e-9
                k = next(
                    (i for i, le in enumerate(INTERARRIVAL_BUCKETS_S) if dt <= le),
                    len(INTERARRIVAL_BUCKETS_S),
                )
                hist[k] += 1
            last = row["t_ns"]
    return nonces, invalid, hist, hashes


@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 9), st.booleans(), st.integers(0, 10**11)), min_size=1, max_size=30
        ),
        min_size=1,
        max_size=6,
    )
)
def test_state_fold_matches_row_by_row_reference(spec: list[list[tuple[int, bool, int]]]) -> None:
    state = DaemonState()
    state.add_board("b", chips=4)
    batches = []
    t = 0
    for rows in spec:
        times = []
        for _, _, dt in rows:
            t += dt
            times.append(t)
        batches.append(
            batch(
                "b", np.array(times, np.int64), np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
            )
        )
    for b in batches:
        state.update_from_events("b", b)
    nonces, invalid, hist, hashes = reference_fold(batches)
    board = state.boards["b"]
    assert len(board.nonces) >= 4
    assert {i: int(v) for i, v in enumerate(board.nonces) if v} == nonces
    assert {i: int(v) for i, v in enumerate(board.invalid) if v} == invalid
    assert board.hist_counts.tolist() == hist
    assert board.hist_count == sum(hist) == sum(len(r) for r in spec) - 1
    assert board.estimated_hashes == pytest.approx(hashes)


def test_bucket_bounds_are_inclusive_and_span_100us_to_100s() -> None:
    assert INTERARRIVAL_BUCKETS_S[0] == 1e-4 and INTERARRIVAL_BUCKETS_S[-1] == 100.0
    state = DaemonState()
    # gaps exactly on bounds land in that bucket (Prometheus "le"); 200 s lands in +Inf
    gaps = [100_000, 1_000_000_000, 200_000_000_000]
    t = np.cumsum([0, *gaps]).astype(np.int64)
    state.update_from_events("b", batch("b", t, np.zeros(4, int), np.ones(4, bool)))
    h = state.boards["b"].hist_counts
    assert h[0] == 1 and h[INTERARRIVAL_BUCKETS_S.index(1.0)] == 1 and h[-1] == 1 and h.sum() == 3


def test_out_of_order_stamps_count_as_zero_gap_and_rate_uses_event_time() -> None:
    state = DaemonState()
    state.update_from_events(
        "b", batch("b", np.array([5_000, 1_000], np.int64), np.zeros(2, int), np.ones(2, bool))
    )
    assert state.boards["b"].hist_counts[0] == 1 and state.boards["b"].hist_sum_s == 0.0
    state = DaemonState()
    for k in range(1, 5):  # 10 events per second of event time
        t = np.int64(k * 10**9) + np.arange(10, dtype=np.int64) * 100_000_000
        state.update_from_events("b", batch("b", t, np.zeros(10, int), np.ones(10, bool)))
    assert state.boards["b"].nonce_rate_hz == pytest.approx(10.0, rel=0.05)


def test_status_is_json_and_health_follows_boards_and_heartbeat() -> None:
    now = [0]
    state = DaemonState(version="9.9", clock=lambda: now[0])
    a = state.add_board("a", "bitaxe-ultra", 2)
    b = state.add_board("b", "emulator", 1)
    a.set_setpoint(1.2, 485.0, 256.0)
    a.count_safety("refused", "freq_max")
    a.count_safety("refused", "freq_max")
    a.plan = PlanProgress("sweep-1", i=3, n=12, eta_s=90.0)
    a.chip_temp_c = float("nan")  # a bad sensor read must not break JSON
    state.update_from_events("a", simple("a"))
    status = json.loads(json.dumps(state.to_status(), allow_nan=False))
    assert status["boards"]["a"]["setpoint"] == {"voltage_v": 1.2, "freq_mhz": 485.0, "ticket_diff": 256.0}
    assert status["boards"]["a"]["safety"] == [{"action": "refused", "reason": "freq_max", "count": 2}]
    assert status["boards"]["a"]["plan"]["fraction"] == 0.25
    assert status["boards"]["a"]["nonces"] == 4 and status["boards"]["a"]["temperature_c"]["chip"] is None
    assert state.health() == (True, "ok")
    a.status = b.status = "failed"
    assert state.health() == (False, "all boards failed")
    b.status = "connected"
    state.heartbeat()
    now[0] = 31 * 10**9
    ok, reason = state.health(max_heartbeat_age_s=30.0)
    assert not ok and "heartbeat" in reason
