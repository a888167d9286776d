"""End-to-end ingest through real ptys: emulator firehose -> serial transport -> chain bring-up -> vectorised
decoder -> share check -> event batches -> pipeline -> DaemonState and the recorder (Arrow IPC segments),
exactly the daemon's board supervisor path.

Measurements (a fourth row, ``timestamps_bare_reader``, is the floor: a bare blocking reader process on the
same emulator, i.e. what the emulator and the OS alone contribute):

1. throughput: ``--links`` emulated boards (in a separate process, so its CPU is not counted) each emit
   ``--rate`` random nonce replies/s at 3.125 Mbaud; the daemon runs one BoardSupervisor per link. Reports
   frames/s received, loss (emulator nonces vs events published; must be 0), the daemon process's CPU in
   cores and per 1,000 frames/s. Target: 4 links x 28,400 = 113,600 frames/s, zero loss, <= 0.5 core.
2. timestamp error on the ideal link: each event's serialization-corrected stamp (the recording's
   ``t_wire_ns``, keyed ``t_ns`` here) minus the emulator's ground truth, both end to end (the modelled
   time the frame's last byte left the wire: ``ts_error_*``) and host side (the host time the emulator
   actually wrote the frame's last byte to the pty: ``ts_host_error_*``, what the daemon is responsible
   for); median and p99 (target median < 200 us).
3. the same on the FTDI link model (16 ms latency timer): shows the quantisation a real bridge adds.

benchmarks/bench_timestamps.py breaks the timestamp figures down further (p90, raw vs corrected stamps).

Busy host: ``--load K`` starts K competitor processes that spin on the CPU for the whole throughput run (a
second workload on the same cores; the OS decides who runs). The emulated boards need CPU themselves (real
boards do not): on a small host they may starve too, and their late control replies then count as
telemetry failures. Beside loss it reports
how often a board was declared lost (``links_lost``: the supervisor's re-inits; ``reconnects``), which must
stay 0: scheduling delay is not a lost board. ``--only-throughput`` skips the timestamp rows.

Run: ``.venv/bin/python benchmarks/bench_ingest.py [--links 4] [--rate 28000] [--seconds 5] [--load K]
[--json]``. Figures are noisy on a shared machine; the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.board_control import PartsControl
from daemon.config import BoardConfig, SafetyLimits, TimingConfig
from daemon.events import Pipeline
from daemon.recorder import Recorder, RecorderPolicy
from daemon.state import DaemonState
from daemon.supervisor import BoardSupervisor
from drivers.chain import ChainTiming
from drivers.transport import SerialTransport

#: One 3.125 Mbaud link at line rate: 3.125e6 / 110 bits per 11-byte reply (docs/protocol.md "Rates").
LINK_RATE = 28_400
TARGET_FRAMES = 113_600
TARGET_CORES = 0.5
TARGET_MEDIAN_US = 200.0
#: Longest wait (s) for the emulator to write out its backlog after the firehose stops.
DRAIN_MAX_S = 60.0
BAUD = 3_125_000
#: Daemon timing for the benchmark: no job rotation during the run (a new job would restart the firehose
#: after the emulator is told to stop), telemetry once a second as in production.
TIMING = TimingConfig(job_interval_s=600.0, telemetry_interval_s=1.0, silence_timeout_s=600.0)
CHAIN_TIMING = ChainTiming(reset_hold_s=0.01, reset_settle_s=0.01, enum_gap_s=0.2, ramp_step_delay_s=0.005)


# ---------------------------------------------------------------------------------------------- emulator side


def _spin() -> None:
    """Child process: a busy competitor (pure CPU, no I/O) until terminated."""
    x = 0
    while True:
        x = (x * 1_103_515_245 + 12_345) & 0xFFFF_FFFF


def start_load(k: int) -> list[Any]:
    """Start ``k`` busy competitor processes (stop them with :func:`stop_load`)."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spin, daemon=True, name=f"bench-load-{i}") for i in range(k)]
    for p in procs:
        p.start()
    return procs


def stop_load(procs: list[Any]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.join(10)


def _emulator(
    links: int, rate: float, link: str, truth: bool, conn: Any, seed0: int = 0, needs_job: bool = True
) -> None:
    """Child process: serve ``links`` firehose boards; answer 'stop' and 'stats' requests on ``conn``.

    ``needs_job``: a chip fires only while it holds a job (False for the bare reader, which sends none)."""
    from simulator.board_spec import BoardConfig as SimCfg
    from simulator.pty_server import SimulatedBoard

    async def main() -> None:
        boards = []
        for i in range(links):
            # a chip reset by a re-initialisation holds no job and sends nothing until it gets one (as on
            # hardware), so a bring-up after a reconnect is not flooded by the firehose
            cfg = SimCfg(
                seed=seed0 + i, link=link, record_truth=truth, name=f"b{i}", firehose_needs_job=needs_job
            )
            b = SimulatedBoard(cfg)
            await b.start()
            boards.append(b)
        conn.send([(b.data_path, b.control_path) for b in boards])
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd in ("go", "stop"):  # firehose on after bring-up (the link is at 3.125 Mbaud), then off
                for b in boards:
                    b._pump()  # emit everything due (to the link), so nothing generated is left in the core
                    b.core.firehose_rate = rate if cmd == "go" else None
                    b.core._update_rates()
                    if cmd == "stop":  # reset held at the same instant: not one more nonce is generated
                        b.core.set_reset_line(False, b.core.now)
                    b._tick()  # re-arm the emulator's wake for the new emission schedule
                conn.send(True)
            elif cmd == "pending":  # replies not yet written to the ptys (the emulator lags when starved)
                conn.send(sum(len(b.link._queue) + len(b._data.out or b"") for b in boards if b._data))
            elif cmd == "stats":
                out = []
                for b in boards:
                    item: dict[str, Any] = {
                        "nonces": b.core.stats.nonces,
                        "dropped": b._data.dropped,  # type: ignore[union-attr]
                        "baud": b.core.baud,
                    }
                    if truth:
                        gw = [
                            (g, w)
                            for g, w in zip(b.ground_truth, b.write_ns, strict=True)
                            if g.frame[:2] == b"\xaa\x55" and g.frame[-1] & 0x80
                        ]
                        item["t_ns"] = np.array([b.host_ns(g.wire_end_s) for g, _ in gw], dtype=np.int64)
                        item["deliver_ns"] = np.array([b.host_ns(g.deliver_s) for g, _ in gw], np.int64)
                        item["write_ns"] = np.array([w for _, w in gw], dtype=np.int64)
                        item["nonce"] = np.array(
                            [int.from_bytes(g.frame[2:6], "big") for g, _ in gw], np.uint32
                        )
                    out.append(item)
                conn.send(out)
            else:
                for b in boards:
                    await b.stop()
                conn.send(True)
                return

    asyncio.run(main())


def _raw_reader(path: str, reply_len: int, baud: int, conn: Any) -> None:
    """Child process: a bare blocking reader of the data pty (no asyncio, no daemon), stamping each read the
    same way the daemon does: the floor the emulator and the OS set for the timestamp error."""
    import os
    import select
    import tty

    from drivers.read_decoder import ReadDecoder
    from drivers.transport import ReadBatch

    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    dec = ReadDecoder(reply_len=reply_len)
    read_id = 0
    t_out: list[np.ndarray] = []
    th_out: list[np.ndarray] = []
    n_out: list[np.ndarray] = []
    conn.send("ready")
    while not conn.poll():
        r, _, _ = select.select([fd], [], [], 0.05)
        if not r:
            continue
        data = os.read(fd, 65536)
        cols = dec.decode([ReadBatch(data, time.monotonic_ns(), read_id)], baud).nonces
        read_id += 1
        t_out.append(cols.t_wire_ns)
        th_out.append(cols.t_ns)
        n_out.append(cols.nonce)
    conn.recv()
    os.close(fd)
    conn.send(
        (
            np.concatenate(t_out) if t_out else np.zeros(0, np.int64),
            np.concatenate(n_out) if n_out else np.zeros(0, np.uint32),
            np.concatenate(th_out) if th_out else np.zeros(0, np.int64),
        )
    )


def _pct(e_ns: np.ndarray) -> dict[str, float]:
    e = e_ns / 1e3
    return {
        "median_us": float(np.median(e)),
        "p90_us": float(np.percentile(e, 90)),
        "p99_us": float(np.percentile(e, 99)),
        "p1_us": float(np.percentile(e, 1)),
        "min_us": float(e.min()),
    }


def ts_errors(
    t_ns: np.ndarray, t_host_ns: np.ndarray, nonce: np.ndarray, truth: dict[str, Any]
) -> dict[str, Any]:
    """Timestamp errors of received replies against the emulator's ground truth, matched one to one: the
    k-th received nonce must be the k-th nonce the emulator sent (raises otherwise).

    Keys ``{t_ns,t_host_ns}-{write,wire_end}``: percentiles (us) of the stamp minus the actual pty write
    time (host side) or the modelled wire end (end to end); ``lateness``: actual write minus modelled
    delivery (the emulator's own scheduling error).
    """
    k = len(nonce)
    if k == 0 or k > len(truth["nonce"]) or not np.array_equal(nonce, truth["nonce"][:k]):
        raise RuntimeError("received nonces do not match the ground truth order")
    w = truth["write_ns"][:k]
    if (w < 0).any():
        raise RuntimeError("a received reply has no recorded write time")
    out: dict[str, Any] = {"samples": k, "lost": int(len(truth["nonce"]) - k)}
    for ref_name, ref in (("write", w), ("wire_end", truth["t_ns"][:k])):
        for col, t in (("t_ns", t_ns), ("t_host_ns", t_host_ns)):
            out[f"{col}-{ref_name}"] = _pct(t - ref)
    out["lateness"] = _pct(w - truth["deliver_ns"][:k])
    out["ts_error_median_us"] = out["t_ns-wire_end"]["median_us"]
    out["ts_error_p99_us"] = out["t_ns-wire_end"]["p99_us"]
    out["ts_error_p1_us"] = out["t_ns-wire_end"]["p1_us"]
    out["ts_host_error_median_us"] = out["t_ns-write"]["median_us"]
    out["ts_host_error_p99_us"] = out["t_ns-write"]["p99_us"]
    out["ts_samples"] = k
    return out


async def _reference(rate: float, seconds: float, link: str = "ideal") -> dict[str, Any]:
    """Timestamp error of a bare reader (9-byte replies at the reset baud: no bring-up needed)."""
    ctx = mp.get_context("spawn")
    loop = asyncio.get_running_loop()
    emu, emu_child = ctx.Pipe()
    pe = ctx.Process(target=_emulator, args=(1, rate, link, True, emu_child, 0, False), daemon=True)
    pe.start()
    ((data, _ctrl),) = await loop.run_in_executor(None, emu.recv)
    rd, rd_child = ctx.Pipe()
    pr = ctx.Process(target=_raw_reader, args=(data, 9, 115_200, rd_child), daemon=True)
    pr.start()
    await loop.run_in_executor(None, rd.recv)
    for cmd in ("go", None, "stop"):
        if cmd is None:
            await asyncio.sleep(seconds)
            continue
        emu.send(cmd)
        await loop.run_in_executor(None, emu.recv)
    await asyncio.sleep(1.0)
    emu.send("stats")
    (truth,) = await loop.run_in_executor(None, emu.recv)
    rd.send("stop")
    got_t, got_n, got_th = await loop.run_in_executor(None, rd.recv)
    emu.send("exit")
    await loop.run_in_executor(None, emu.recv)
    pe.join(10)
    pr.join(10)
    return {"path": "bare_reader", "link": link} | ts_errors(got_t, got_th, got_n, truth)


# ---------------------------------------------------------------------------------------------- daemon side


async def _ingest(
    links: int,
    rate: float,
    seconds: float,
    link: str,
    truth: bool,
    record: bool = False,
    load: int = 0,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    # one emulator process per link: the emulator (pure Python) needs about a core per line-rate link
    pipes, procs = [], []
    for i in range(links):
        parent, child = ctx.Pipe()
        procs.append(ctx.Process(target=_emulator, args=(1, rate, link, truth, child, i), daemon=True))
        procs[-1].start()
        pipes.append(parent)

    async def ask(cmd: str) -> list[Any]:
        for p in pipes:
            p.send(cmd)
        return [await loop.run_in_executor(None, p.recv) for p in pipes]

    loop = asyncio.get_running_loop()
    paths = [(await loop.run_in_executor(None, p.recv))[0] for p in pipes]
    pipe = Pipeline()
    state = DaemonState()
    pipe.add_listener("state", state.update_from_events)
    sub = pipe.subscribe("collect", 1_000_000, logs=False) if truth else None
    rec_task = None
    tmp = tempfile.TemporaryDirectory(prefix="bench-ingest-")
    if record:  # the recorder as the daemon runs it: Arrow IPC segments, flush every second (worker thread)
        recorder = Recorder(Path(tmp.name) / "run", policy=RecorderPolicy(), stats=state.recorder)
        rec_task = asyncio.create_task(recorder.run(pipe.subscribe("recorder", 4096)))
    sups = []
    for i, (data, ctrl) in enumerate(paths):
        board = BoardConfig(
            name=f"b{i}", kind="gamma", data_port=data, control_port=ctrl, baud=BAUD, safety=SafetyLimits()
        )
        sups.append(
            BoardSupervisor(
                board,
                TIMING,
                pipe,
                state.add_board(board.name, "gamma"),
                functools.partial(SerialTransport, data),
                control=PartsControl(functools.partial(SerialTransport, ctrl), "gamma"),
                chain_timing=CHAIN_TIMING,
                valid_scale=0.0,
            )
        )
    tasks = [asyncio.create_task(s.run()) for s in sups]
    competitors: list[Any] = []
    try:
        while not all(s.connected for s in sups):  # noqa: ASYNC110 - polling a plain attribute
            await asyncio.sleep(0.05)
        competitors = start_load(load)
        await ask("go")
        await asyncio.sleep(1.0)  # warm-up
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        n0 = sum(s.counters.nonces for s in sups)
        await asyncio.sleep(seconds)
        r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        n1 = sum(s.counters.nonces for s in sups)
        await ask("stop")
        stop_load(competitors)
        drain_until = time.monotonic() + DRAIN_MAX_S  # everything emitted must reach the daemon
        last = -1
        while time.monotonic() < drain_until:
            for s in sups:
                s.events.publish()
            now_n = sum(s.counters.nonces for s in sups)
            pending = sum(await ask("pending"))
            if pending == 0 and now_n == last:
                break
            last = now_n
            await asyncio.sleep(0.5)
        stats = [x[0] for x in await ask("stats")]
        undelivered = sum(await ask("pending"))
    finally:
        stop_load(competitors)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pipe.close()
        if rec_task is not None:
            await rec_task
        tmp.cleanup()
        await ask("exit")
        for proc in procs:
            proc.join(10)
    wall = w1 - w0
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    fps = (n1 - n0) / wall
    emitted = sum(x["nonces"] for x in stats)
    received = sum(s.counters.nonces for s in sups)
    out: dict[str, Any] = {
        "links": links,
        "link": link,
        "rate_per_link": rate,
        "frames_per_s": fps,
        "cores": cpu / wall,
        "cores_per_1000_fps": cpu / wall / (fps / 1000.0) if fps else None,
        "emitted": emitted,
        "received": received,
        "lost": emitted - received,
        "emulator_dropped_bytes": sum(x["dropped"] for x in stats),
        "emulator_undelivered": undelivered,
        "emulator_baud": [x["baud"] for x in stats],
        "crc_errors": sum(s.counters.crc_errors for s in sups),
        "recorded_rows": state.recorder.rows if record else None,
        "recorder_dropped_rows": pipe.dropped_rows,
        "dropped_bytes": sum(s.counters.dropped_bytes for s in sups),
        "load": load,
        "links_lost": sum(s.counters.bring_ups - 1 for s in sups),
        "reconnects": sum(s.state.reconnects for s in sups),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    if truth and sub is not None:
        import pyarrow as pa

        tab = pa.Table.from_batches(sub.drain())
        if len(stats) != 1:
            raise ValueError("timestamp runs use one link")
        got_t = tab.column("t_wire_ns").to_numpy()  # the corrected estimate ("t_ns" in this bench's keys)
        got_th = tab.column("t_host_ns").to_numpy()
        got_n = tab.column("nonce").to_numpy()
        out |= {"path": "daemon"} | ts_errors(got_t, got_th, got_n, stats[0])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--links", type=int, default=4)
    ap.add_argument("--rate", type=float, default=28_000.0, help="firehose replies/s per link")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--ts-rate", type=float, default=2_000.0, help="replies/s for the timestamp runs")
    ap.add_argument("--no-record", action="store_true", help="leave the recorder out of the throughput run")
    ap.add_argument("--load", type=int, default=0, metavar="K", help="K busy competitor processes")
    ap.add_argument("--only-throughput", action="store_true", help="skip the timestamp rows")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    if args.load < 0 or args.links < 1 or args.seconds <= 0 or args.rate <= 0:
        print("bench_ingest: --load must be >= 0, --links >= 1, --seconds and --rate > 0", file=sys.stderr)
        return 2
    rows: dict[str, Any] = {
        "throughput": asyncio.run(
            _ingest(
                args.links,
                args.rate,
                args.seconds,
                "ideal",
                False,
                record=not args.no_record,
                load=args.load,
            )
        )
    }
    if not args.only_throughput:
        rows |= _timestamp_rows(args)
    if args.json:
        print(json.dumps(rows))
        return 0
    t = rows["throughput"]
    per_k = t["cores_per_1000_fps"]
    lost_pct = 100.0 * t["lost"] / t["emitted"] if t["emitted"] else 0.0
    print(
        f"ingest: {t['links']} links x {t['rate_per_link']:.0f}/s, load {t['load']}: "
        f"{t['frames_per_s']:,.0f} frames/s (target {TARGET_FRAMES:,}), lost {t['lost']} of {t['emitted']:,} "
        f"({lost_pct:.3f} %), boards declared lost {t['links_lost']} (reconnects {t['reconnects']}), "
        f"emulator overrun {t['emulator_dropped_bytes']} bytes, {t['cores']:.3f} cores"
        f" (target <= {TARGET_CORES}), {per_k or 0:.4f} cores per 1,000 frames/s"
        f" -> {(per_k or 0) * TARGET_FRAMES / 1000:.2f} cores at the target rate;"
        f" recorded {t['recorded_rows']} rows, pipeline drops {t['recorder_dropped_rows']};"
        f" load average {' '.join(str(x) for x in t['loadavg'])}"
    )
    for key in ("timestamps_ideal", "timestamps_ftdi", "timestamps_bare_reader"):
        if key not in rows:
            continue
        r = rows[key]
        print(
            f"{key}: host side (t_ns - pty write) median {r['ts_host_error_median_us']:.1f} us, "
            f"p99 {r['ts_host_error_p99_us']:.1f} us; end to end (t_ns - modelled wire end) median "
            f"{r['ts_error_median_us']:.1f} us, p99 {r['ts_error_p99_us']:.1f} us, "
            f"p1 {r['ts_error_p1_us']:.1f} us over {r['ts_samples']} frames, lost {r['lost']}"
            f" (target median < {TARGET_MEDIAN_US} us on the ideal link)"
        )
    return 0


def _timestamp_rows(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "timestamps_ideal": asyncio.run(_ingest(1, args.ts_rate, min(args.seconds, 3.0), "ideal", True)),
        "timestamps_ftdi": asyncio.run(_ingest(1, args.ts_rate, min(args.seconds, 3.0), "ftdi", True)),
        "timestamps_bare_reader": asyncio.run(_reference(min(args.ts_rate, 500.0), min(args.seconds, 3.0))),
    }


if __name__ == "__main__":
    sys.exit(main())
