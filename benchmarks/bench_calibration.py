"""End-to-end calibration of ``asicrc analyze``: the real daemon on the emulator at a held point, against the
emulator's own ground truth for the very same events (docs/analyze.md, "End-to-end calibration").

Each run: ``asicrc run --config`` as a subprocess with a ``hold`` plan (1 chip: 1.20 V, 485 MHz, ticket
difficulty 1, ~100 nonces/s; 4 chips: 1.10 V, 300 MHz, ~62 nonces/s per chip, ~19 A in the emulator's power
model, inside the single-phase regulator's IOUT_OC_WARN 25 A, see :data:`HOLD_4`) for ``--seconds``, on an
emulated board with 1 or 4 chips, the emulator either in the
daemon's process (``--simulate 1``, ``[simulate] truth_dir``) or in its own (``asicrc sim --truth`` plus
``[[boards]]`` on its ptys), on an idle host or one loaded with two busy processes. The recording is analysed
with ``asicrc analyze --by point`` and ``--by chip``; the ground truth (modelled emission time of every
recorded nonce, matched by nonce value) is written as a recording with the same labels and analysed the same
way. Planted kinds (simulator ``Knobs``: dead time, drift, modulation, serial correlation) go through the
same path (emulator in its own process).

Reported: per configuration, the streams called poisson / artifact / non-poisson for the daemon's recording
and for the truth; per planted kind, the share of streams called non-poisson with a kind naming it (power).

Run: ``.venv/bin/python benchmarks/bench_calibration.py [--seeds 5] [--seconds 30] [--knob-seconds 200]
[--only default|knobs] [--jobs N] [--json OUT]``; the defaults are a quick run. Default-emulator runs go one
at a time (the host load is part of the case); ``--jobs`` runs planted-kind runs side by side. Report
``uptime`` beside the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.events import EVENT_SCHEMA, make_event_batch  # noqa: E402
from daemon.recording import read_table  # noqa: E402
from drivers.parts.tps546_config import Tps546Config  # noqa: E402
from simulator.power_budget import chain_current_a  # noqa: E402

#: The held point: ~101 nonces/s per chip (485e6 * 894 / 2^32).
HOLD = {"hold_voltage_v": 1.2, "hold_freq_mhz": 485.0, "hold_ticket_diff": 1.0}
#: The 4-chip held point: 4 chips at :data:`HOLD` draw ~35 A in the emulator's power model, above the
#: single-phase TPS546's IOUT_OC_FAULT 30 A (ESP-Miner's configuration, latch-off), so the regulator would
#: switch the board off. 1.10 V (the envelope's floor) and 300 MHz draw ~18.5-19.1 A (seeds 100-105, fan
#: 100 %), under 80 % of IOUT_OC_WARN 25 A; ~62 nonces/s per chip (300e6 * 894 / 2^32), ~250/s in all.
HOLD_4 = {"hold_voltage_v": 1.1, "hold_freq_mhz": 300.0, "hold_ticket_diff": 1.0}
#: Planted kinds: ``asicrc sim`` arguments, and the analyser's kind that names it (exactly).
KNOBS: dict[str, tuple[list[str], str]] = {
    "dead-time": (["--dead-time", "0.003"], "regular/dead-time"),
    "drift": (["--drift", "0.3,20"], "rate-drift"),
    "modulation": (["--modulation", "0.4,2"], "modulation"),
    "serial-correlation": (["--serial-correlation", "0.3"], "serial-correlation"),
}
#: Shrunk daemon timing (fast ramps and flushes; the shipped behaviour in a fraction of the time).
CONFIG = """
[safety]
freq_step_rate_mhz_s = 4000.0
[timing]
control_tick_s = 0.05
job_interval_s = 0.5
telemetry_interval_s = 0.1
status_interval_s = 5.0
silence_timeout_s = 10.0
[recorder]
flush_interval_s = 0.2
fsync_interval_s = 0.0
[http]
enabled = false
[[plans]]
name = "hold"
kind = "hold"
"""


def hold_point(chips: int, seed: int) -> dict[str, float]:
    """The held point for ``chips``; ValueError when the emulated chain would draw IOUT_OC_WARN or more."""
    hold = HOLD if chips == 1 else HOLD_4
    amps = chain_current_a(chips, hold["hold_voltage_v"], hold["hold_freq_mhz"], seed=seed)
    warn = Tps546Config().iout_oc_warn_limit
    if amps >= warn:
        raise ValueError(
            f"{chips} chips at {hold}: {amps:.1f} A, not under the regulator's IOUT_OC_WARN {warn} A"
        )
    return hold


@dataclass(frozen=True)
class Case:
    """One run: chips on the board, where the emulator runs, host load, seed, planted kind ('' = none)."""

    chips: int
    emulator: str  # "inproc" | "child"
    load: str  # "idle" | "loaded"
    seed: int
    knob: str = ""

    @property
    def config(self) -> str:
        return f"{self.knob or 'default'} {self.chips}chip {self.emulator} {self.load}"


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` busy-looping child processes for the duration (each ended by its own pid)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "daemon", *args]


def run_daemon(case: Case, seconds: float, work: Path) -> tuple[Path, Path]:
    """Run the daemon for ``case``; (recording directory, ground-truth CSV)."""
    state, truth = work / "state", work / "truth"
    truth.mkdir(parents=True)
    cfg = work / "asicrc.toml"
    text = CONFIG + "".join(f"{k} = {v}\n" for k, v in hold_point(case.chips, case.seed).items())
    sim: subprocess.Popen[str] | None = None
    argv = _python("run", "--config", str(cfg), "--state-dir", str(state), "--duration", str(seconds))
    if case.emulator == "inproc":
        assert not case.knob, "planted kinds go through the emulator in its own process"
        text += f'[simulate]\nchips = {case.chips}\nseed = {case.seed}\ntruth_dir = "{truth}"\n'
        argv += ["--simulate", "1"]
        truth_csv = truth / "sim0-truth.csv"
    else:
        sim_argv = _python("sim", "--chips", str(case.chips), "--seed", str(case.seed))
        sim_argv += ["--truth", str(truth / "board"), *(KNOBS[case.knob][0] if case.knob else [])]
        sim = subprocess.Popen(sim_argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert sim.stdout is not None
        board = json.loads(sim.stdout.readline())["boards"][0]
        text += '[[boards]]\nname = "emu"\nkind = "gamma"\n'
        text += f'data_port = "{board["data"]}"\ncontrol_port = "{board["control"]}"\nchips = {case.chips}\n'
        truth_csv = truth / "board0.csv"
    cfg.write_text(text)
    try:
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"daemon failed ({proc.returncode}): {proc.stderr[-2000:]}")
    finally:
        if sim is not None:
            sim.send_signal(signal.SIGINT)
            sim.wait(30)
    runs = sorted(p for p in (state / "recordings").iterdir() if p.is_dir())
    return runs[-1], truth_csv


def truth_recording(rec: Path, truth_csv: Path, out: Path) -> tuple[int, dict[str, float]]:
    """Write the emulator's emission times of the recorded nonces as a recording (each event its own read,
    the recording's board, chip, point and setpoint); returns the events matched and the delivery delay
    (ms, median / p99 / max): read time minus emission, the emulator's clock offset taken as the smallest
    write-minus-emission (both processes read CLOCK_MONOTONIC; the emulator is never early)."""
    tab = read_table(rec)
    nonce = tab.column("nonce").to_numpy().astype(np.int64)
    rows = np.genfromtxt(truth_csv, delimiter=",", names=True, dtype=None, encoding="ascii")
    frames = [bytes.fromhex(f) for f in rows["frame_hex"]]
    is_nonce = np.array([f[:2] == b"\xaa\x55" and bool(f[-1] & 0x80) for f in frames])
    t_nonce = np.array([int.from_bytes(f[2:6], "big") for f, m in zip(frames, is_nonce) if m], np.int64)
    emit = np.asarray(rows["emit_s"], np.float64)[is_nonce]
    vals, counts = np.unique(t_nonce, return_counts=True)
    unique = vals[counts == 1]  # a nonce value emitted twice cannot be matched: left out
    lookup = dict(zip(t_nonce.tolist(), emit.tolist()))
    keep = np.isin(nonce, unique)
    t = np.array([round(lookup[int(v)] * 1e9) for v in nonce[keep]], np.int64)
    n = len(t)
    write = np.asarray(rows["write_ns"], np.int64)[is_nonce]
    written = write >= 0
    offset = int(np.min(write[written] - np.round(emit[written] * 1e9).astype(np.int64)))
    delay = (tab.column("t_host_ns").to_numpy()[keep] - t - offset) / 1e6
    q = np.percentile(delay, [50, 99, 100]) if n else np.zeros(3)
    delays = {"median_ms": float(q[0]), "p99_ms": float(q[1]), "max_ms": float(q[2])}
    cols = {name: tab.column(name).to_numpy()[keep] for name in ("chip", "voltage_v", "freq_mhz", "point")}
    batch = make_event_batch(
        str(tab.column("board")[0]),
        t_host_ns=t,
        t_ns=t,
        t_wire_ns=t,
        chip=cols["chip"],
        core=0,
        small_core=0,
        job_id=np.zeros(n, np.uint8),
        nonce=nonce[keep].astype(np.uint32),
        valid=True,
        voltage_v=cols["voltage_v"],
        freq_mhz=cols["freq_mhz"],
        ticket_diff=tab.column("ticket_diff").to_numpy()[keep],
        read_id=np.arange(n),
        read_pos=0,
        read_nonces=1,
        point=cols["point"],
    )
    order = np.argsort(t, kind="stable")
    out.mkdir(parents=True)
    path = out / "events-000000.arrows"
    with pa.OSFile(str(path), "wb") as f, pa.ipc.new_stream(f, EVENT_SCHEMA) as w:
        w.write_batch(batch.take(pa.array(order)))
    return n, delays


def analyze(rec: Path, by: str) -> list[dict[str, Any]]:
    """``asicrc analyze REC --by BY --json``: stream, n_events, verdict, kind, artefact names per stream."""
    proc = subprocess.run(
        _python("analyze", str(rec), "--by", by, "--json"), cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode == 2 and "are needed" in proc.stderr:  # the only stream is too short to test
        name = proc.stderr.split("'")[1] if "'" in proc.stderr else str(rec)
        return [{"stream": name, "n_events": None, "verdict": "not testable", "kind": None, "artifacts": []}]
    if proc.returncode != 0:
        raise RuntimeError(f"analyze failed: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    objs = doc if isinstance(doc, list) else [doc]
    return [
        {
            **{k: o.get(k) for k in ("stream", "n_events", "verdict", "kind")},
            "artifacts": [a["name"] for a in o.get("artifacts") or []],
        }
        for o in objs
    ]


def format_check(rec: Path) -> bool:
    """The recording keeps what the host knew (docs/recording-format.md): ``t_ns`` is the read time, every
    read's events carry positions 0..k-1 and k nonces, and the wire estimate is never after the read."""
    tab = read_table(rec)
    t, th = tab.column("t_ns").to_numpy(), tab.column("t_host_ns").to_numpy()
    if any(tab.column(c).null_count for c in ("t_wire_ns", "read_pos", "read_nonces")):
        return False
    rid = tab.column("read_id").to_numpy()
    pos, k = tab.column("read_pos").to_numpy(), tab.column("read_nonces").to_numpy()
    start = np.flatnonzero(np.concatenate(([True], rid[1:] != rid[:-1])))
    sizes = np.diff(np.append(start, len(rid)))
    ok_runs = bool(np.all(k[start] == sizes) and np.all(pos == np.arange(len(rid)) - np.repeat(start, sizes)))
    return bool(np.array_equal(t, th) and ok_runs and np.all(tab.column("t_wire_ns").to_numpy() <= th))


def run_case(case: Case, seconds: float) -> dict[str, Any]:
    """One run, analysed by point and by chip, recording and truth."""
    with tempfile.TemporaryDirectory(prefix="asicrc-cal-") as tmp:
        work = Path(tmp)
        with busy(2) if case.load == "loaded" else contextlib.nullcontext():
            rec, truth_csv = run_daemon(case, seconds, work)
        matched, delays = truth_recording(rec, truth_csv, work / "truth-rec")
        out: dict[str, Any] = {**asdict(case), "config": case.config, "matched": matched, "delay": delays}
        out["format_ok"] = format_check(rec)
        for by in ("point", "chip"):
            out[f"daemon_{by}"] = analyze(rec, by)
            out[f"truth_{by}"] = analyze(work / "truth-rec", by)
    return out


def names_kind(obj: dict[str, Any], kind: str) -> bool:
    """The stream is called non-Poisson (alone, or beyond an artefact) with exactly ``kind``."""
    return obj["verdict"] == "non-poisson" and obj.get("kind") == kind


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table: per configuration and grouping, verdict counts for the daemon and the truth."""
    lines = [
        "| configuration | by | runs | streams | events/stream | daemon: poisson / artifact / non-poisson "
        "| truth: poisson / artifact / non-poisson | daemon non-poisson, truth poisson "
        "| planted kind named (daemon / truth) | delivery delay p99 / max (ms) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    key = lambda r: (r["knob"], r["chips"], r["emulator"], r["load"])  # noqa: E731
    for _, grp in itertools.groupby(sorted(results, key=key), key=key):
        runs = list(grp)
        for by in ("point", "chip"):
            d = [o for r in runs for o in r[f"daemon_{by}"]]
            t = [o for r in runs for o in r[f"truth_{by}"]]

            def counts(objs: list[dict[str, Any]]) -> str:
                return " / ".join(str(sum(o["verdict"] == v for o in objs)) for v in VERDICTS)

            knob = runs[0]["knob"]
            named = "-"
            if knob:
                word = KNOBS[knob][1]
                nd, nt = sum(names_kind(o, word) for o in d), sum(names_kind(o, word) for o in t)
                named = f"{nd}/{len(d)} / {nt}/{len(t)}"
            ev = int(np.median([o["n_events"] for o in d])) if d else 0
            dl = [r["delay"] for r in runs if "delay" in r]
            delay = (
                f"{np.median([x['p99_ms'] for x in dl]):.3g} / {max(x['max_ms'] for x in dl):.3g}"
                if dl
                else "-"
            )
            lines.append(
                f"| {runs[0]['config']} | {by} | {len(runs)} | {len(d)} | {ev} | {counts(d)} | {counts(t)} "
                f"| {false_calls(runs, by)} | {named} | {delay} |"
            )
    return "\n".join(lines)


VERDICTS = ("poisson", "artifact", "non-poisson")


def false_calls(runs: list[dict[str, Any]], by: str) -> int:
    """Streams the daemon's recording calls non-poisson while the truth of the same events is poisson."""
    pairs = [p for r in runs for p in zip(r[f"daemon_{by}"], r[f"truth_{by}"])]
    return sum(d["verdict"] == "non-poisson" and t["verdict"] == "poisson" for d, t in pairs)


def cases(seeds: int, only: str, chip_counts: tuple[int, ...] = (1, 4)) -> list[Case]:
    out: list[Case] = []
    if only in ("all", "default"):
        for chips, emu, load, seed in itertools.product(
            chip_counts, ("inproc", "child"), ("idle", "loaded"), range(seeds)
        ):
            out.append(Case(chips, emu, load, 100 + seed))
    if only in ("all", "knobs"):
        for knob, seed in itertools.product(KNOBS, range(seeds)):
            out.append(Case(1, "child", "idle", 200 + seed, knob))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=1, help="seeds per configuration")
    ap.add_argument("--seconds", type=float, default=15.0, help="hold duration of a default run (s)")
    ap.add_argument(
        "--knob-seconds", type=float, default=30.0, help="hold duration of a planted-kind run (s)"
    )
    ap.add_argument("--only", choices=("all", "default", "knobs"), default="all")
    ap.add_argument(
        "--chips", type=int, choices=(1, 4), action="append", help="default runs: chip count(s) (both)"
    )
    ap.add_argument("--jobs", type=int, default=1, help="planted-kind runs at once (each loads the host)")
    ap.add_argument("--json", metavar="OUT", help="write every run's streams and verdicts as JSON")
    args = ap.parse_args(argv)
    results: list[dict[str, Any]] = []
    t0 = time.monotonic()

    def done(case: Case, r: dict[str, Any]) -> None:
        results.append(r)
        bad = [o["stream"] for o in r["daemon_point"] + r["daemon_chip"] if o["verdict"] == "non-poisson"]
        print(
            f"[{time.monotonic() - t0:6.0f} s] {case.config} seed {case.seed}: {r['matched']} events "
            f"matched; daemon non-poisson: {bad or 'none'}",
            file=sys.stderr,
            flush=True,
        )
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))

    todo = cases(args.seeds, args.only, tuple(args.chips or (1, 4)))
    for case in (c for c in todo if not c.knob):  # one at a time: the host load is part of the case
        done(case, run_case(case, args.seconds))
    knobs = [c for c in todo if c.knob]
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for case, fut in zip(knobs, [pool.submit(run_case, c, args.knob_seconds) for c in knobs]):
            done(case, fut.result())
    print(f"load average: {os.getloadavg()[0]:.2f} (1 min) at the end; {time.monotonic() - t0:.0f} s")
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
