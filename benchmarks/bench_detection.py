"""Dose-response of the asic reservoir to planted dynamics: its detection power (docs/asic-results.md).

    .venv/bin/python benchmarks/bench_detection.py [--kinds echo threshold] [--gains 0 0.1 0.25 0.5 1]
        [--events 10 40 160] [--seeds 5] [--chips 2] [--n-sub 2] [--n-train 400 --n-test 200]
        [--tasks memory-capacity narma10] [--mask positive|symmetric] [--out ROWS.jsonl] [--json]
        [--report DIR] [--from-json ROWS.jsonl]

For every planted kind, gain and event rate it runs ``asic`` on the emulated chain (simulator/slots.py: the
same chip model and plants as ``asicrc sim``, driven in process on emulated time, no daemon) beside its
matched ``poisson-null`` (same seeds, sub-slots and chips, at the mean event rate the asic run measured), via
:func:`reservoir.bench.run_bench`, and prints the paired ``asic - null`` difference per task with its
Student-t 95 % interval over seeds. Gain 0 is run once (every kind is then the bare emulator) and is the
no-false-discovery row.

The event rate per sub-slot and chip is set by the slot length at ticket difficulty 1 (~100 nonces/s per chip
at 485 MHz: 10 events = 100 ms, 40 = 400 ms, 160 = 1.6 s). The plants' time constant scales with the slot
(``tau_ms = TAU_SLOTS x slot``: 300 ms at 100 ms slots, the documented default) so every row plants the same
memory in units of input steps and only the shot noise changes. The physics grid is a tenth of a slot
(>= 10 ms). ``--out`` appends one JSON row per (kind, gain, events, task) as soon as it is done; the
minimum detectable effect per event rate (reservoir/power.py) is computed from the rows; ``--report DIR``
writes ``mde.png`` and ``dose_response.png``. ``--mask`` picks the input masks of both runs
(reservoir/asic.py: positive by default; rows committed before 2026-12-03 were measured with symmetric ones).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from reservoir.asic import MASK_SCALES, MASKS
from reservoir.bench import NULL_DRAWS, ci95, run_bench
from reservoir.distributed import map_grid
from reservoir.power import detection_table, paired
from reservoir.substrate import EventSlot, SlotSchedule
from simulator.plant import PlantSpec
from simulator.slots import SlotRunner

#: Nonces per second per chip at 485 MHz, ticket difficulty 1 (f * 894 / 2^32).
RATE_485 = 485e6 * 894 / 2**32
#: Plant time constant in slots (300 ms at the 100 ms slots of the acceptance run).
TAU_SLOTS = 3.0
TASK_NAMES = ("memory-capacity", "narma10")


class EmulatedSubstrate:
    """:class:`reservoir.substrate.Substrate` over a :class:`SlotRunner` (in-process emulated chain).

    ``temperature``: ``"sensor"`` reports what the daemon path reads, the board's EMC2101 (hottest chip,
    floored to 1/8 C) for every chip; ``"off"`` reports a constant, so the readout sees the events only
    (the planted effect isolated from the thermal path, which is characterised on its own).
    """

    def __init__(
        self,
        chips: int,
        seed: int,
        plants: tuple[PlantSpec, ...],
        voltage_v: float = 1.2,
        temperature: str = "off",
    ) -> None:
        if temperature not in ("off", "sensor"):
            raise ValueError(f"temperature must be 'off' or 'sensor', got {temperature!r}")
        self.n_chips = chips
        self.plants = plants
        self.voltage_v = voltage_v
        self.temperature = temperature
        self._runner: SlotRunner | None = None
        self._seed = seed

    def run(self, schedule: SlotSchedule) -> list[EventSlot]:
        slot_s = schedule.slot_ns / 1e9
        if self._runner is None:
            self._runner = SlotRunner(
                self.n_chips, self._seed, plants=self.plants, voltage_v=self.voltage_v, step_s=slot_s / 10
            )
        out = self._runner.run(schedule.freq_mhz, slot_s)
        return [
            EventSlot(s.t_ns, s.chip, s.core, s.valid, self._temp(s.temperature_c), s.start_ns, s.duration_ns)
            for s in out
        ]

    def _temp(self, t: np.ndarray) -> np.ndarray:
        if self.temperature == "off":
            return np.zeros(self.n_chips)
        return np.full(self.n_chips, np.floor(float(np.max(t)) * 8) / 8)


def plants_for(kind: str, gain: float, slot_s: float) -> tuple[PlantSpec, ...]:
    """The planted kind at ``gain`` with its time constant TAU_SLOTS slots (none at gain 0)."""
    if gain == 0 or kind == "none":
        return ()
    return (PlantSpec(kind, gain, (("tau_ms", TAU_SLOTS * slot_s * 1e3),)),)


def one(
    task: str,
    kind: str,
    gain: float,
    events: float,
    a: argparse.Namespace,
    voltage_v: float = 1.2,
    temperature: str = "off",
) -> dict[str, Any]:
    """One row: asic and its matched null over the seeds, at one kind, gain and event rate."""
    slot_s = events / RATE_485
    slot_ns = round(slot_s * 1e9)
    plants = plants_for(kind, gain, slot_s)
    opts: dict[str, Any] = {
        "substrate": lambda seed: EmulatedSubstrate(a.chips, seed, plants, voltage_v, temperature),
        "slot_ns": slot_ns,
        "n_sub": a.n_sub,
        "mask": a.mask,
        "mask_scale": a.mask_scale,
    }
    t0 = time.perf_counter()
    s = run_bench(
        task,
        "asic",
        seeds=a.seeds,
        options=opts,
        task_options={"n_train": a.n_train, "n_test": a.n_test},
        with_null=True,
        null_draws=a.null_draws,
    ).summary
    diff = paired(s["per_seed"], s["null"]["per_seed"])
    return {
        "task": task,
        "metric": s["metric"],
        "kind": kind,
        "gain": gain,
        "voltage_v": voltage_v,
        "temperature": temperature,
        "events_target": events,
        "events_per_subslot": s["noise_floor"]["mean_count_per_slot"],
        "slot_ns": slot_ns,
        "tau_ms": TAU_SLOTS * slot_s * 1e3,
        "chips": a.chips,
        "n_sub": a.n_sub,
        "mask": a.mask,
        "mask_scale": a.mask_scale,
        "n_train": s["n_train"],
        "n_test": s["n_test"],
        "seeds": s["seeds"],
        "asic": s["per_seed"],
        "null": s["null"]["per_seed"],
        "null_chips": s["null"]["n_chips"],
        "null_draws": s["null"]["draws"],
        "diff": diff,
        "diff_mean": float(np.mean(diff)),
        "diff_ci95": ci95(diff),
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }


def _fmt_ci(ci: Any) -> str:
    return "n/a" if ci is None else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Markdown tables: the rows, then the minimum detectable effect per event rate (dose-response rows
    only: 1.2 V, temperature feature off)."""
    print("| task | kind | gain | V | temp. | events / sub-slot / chip | asic | null | asic - null (95 %) |")
    print("|---|---|---|---|---|---|---|---|---|")
    order = sorted(
        rows,
        key=lambda r: (r["task"], r["voltage_v"], r["temperature"], r["events_target"], r["kind"], r["gain"]),
    )
    for r in order:
        print(
            f"| {r['task']} | {r['kind']} | {r['gain']:g} | {r['voltage_v']:g} | {r['temperature']} | "
            f"{r['events_per_subslot']:.1f} | "
            f"{np.mean(r['asic']):.3f} | {np.mean(r['null']):.3f} | "
            f"{r['diff_mean']:+.3f} {_fmt_ci(r['diff_ci95'])} |"
        )
    print()
    print("| task | kind | events / sub-slot / chip | smallest gain detected | interpolated MDE (gain) |")
    print("|---|---|---|---|---|")
    for d in detection_table(dose_rows(rows)):
        det = "none tested" if d["first_detected"] is None else f"{d['first_detected']:g}"
        mde = "n/a" if d["mde_gain"] is None or not math.isfinite(d["mde_gain"]) else f"{d['mde_gain']:.3g}"
        print(f"| {d['task']} | {d['kind']} | {d['events']:.1f} | {det} | {mde} |")


def dose_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The dose-response rows: 1.2 V, temperature feature off."""
    return [r for r in rows if r.get("voltage_v", 1.2) == 1.2 and r.get("temperature", "off") == "off"]


def report(rows: list[dict[str, Any]], directory: str) -> list[Path]:
    """``dose_response.png`` (paired difference vs gain), ``mde.png`` (MDE vs events) into ``directory``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = dose_rows(rows)
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        groups = sorted(
            {(r["kind"], r["events_target"]) for r in rows if r["task"] == task and r["kind"] != "none"}
        )
        for kind, ev in groups:
            rs = [
                r
                for r in rows
                if r["task"] == task and r["events_target"] == ev and r["kind"] in (kind, "none")
            ]
            rs.sort(key=lambda r: r["gain"])
            g = [r["gain"] for r in rs]
            m = [r["diff_mean"] for r in rs]
            lo = [r["diff_mean"] - (r["diff_ci95"] or (r["diff_mean"],) * 2)[0] for r in rs]
            hi = [(r["diff_ci95"] or (r["diff_mean"],) * 2)[1] - r["diff_mean"] for r in rs]
            ax.errorbar(g, m, yerr=[lo, hi], marker="o", capsize=3, label=f"{kind}, {ev:g} ev")
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xlabel("planted gain")
        ax.set_ylabel(f"asic - null ({rows[0]['metric'] if len(tasks) == 1 else task})")
        ax.set_title(task)
        ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = out / "dose_response.png"
    fig.savefig(p1, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    table = detection_table(rows)
    for task in tasks:
        for kind in sorted({d["kind"] for d in table}):
            pts = [(d["events"], d["mde_gain"]) for d in table if d["task"] == task and d["kind"] == kind]
            pts = [(e, g) for e, g in pts if g is not None and math.isfinite(g)]
            if pts:
                ax.loglog(*zip(*pts, strict=True), marker="o", label=f"{task}, {kind}")
    ax.set_xlabel("events per sub-slot and chip")
    ax.set_ylabel("minimum detectable gain")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out / "mde.png"
    fig.savefig(p2, dpi=120)
    plt.close(fig)
    return [p1, p2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kinds", nargs="+", default=["echo", "threshold"], choices=("echo", "threshold"))
    p.add_argument("--gains", nargs="+", type=float, default=[0.0, 0.1, 0.25, 0.5, 1.0])
    p.add_argument("--events", nargs="+", type=float, default=[10.0, 40.0, 160.0])
    p.add_argument("--tasks", nargs="+", default=list(TASK_NAMES), choices=TASK_NAMES)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--chips", type=int, default=2)
    p.add_argument("--n-sub", type=int, default=2)
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--voltage", type=float, default=1.2, help="core voltage (V); 1.10 = stressed point")
    p.add_argument(
        "--null-draws", type=int, default=NULL_DRAWS, help="Poisson draws averaged per seed in the null"
    )
    p.add_argument(
        "--temperature",
        choices=("off", "sensor"),
        default="off",
        help="temperature feature: off (events only, default) or the board sensor's reading",
    )
    p.add_argument(
        "--mask",
        choices=MASKS,
        default=MASKS[0],
        help="input masks of the asic reservoir and its null (reservoir/asic.py); with --from-json, the rows "
        "measured with them (rows without a mask field: symmetric)",
    )
    p.add_argument(
        "--mask-scale",
        choices=MASK_SCALES,
        default=MASK_SCALES[0],
        help="mask magnitudes (reservoir/asic.py); with --from-json, the rows measured with them (rows "
        "without the field: uniform)",
    )
    p.add_argument(
        "--cluster", metavar="ADDRESS", help="grid points as Dask tasks: local[:N] or tcp://HOST:PORT"
    )
    p.add_argument("--out", help="append one JSON row per result to this file")
    p.add_argument("--json", action="store_true", help="print the rows as one JSON array")
    p.add_argument("--report", metavar="DIR", help="write dose_response.png and mde.png")
    p.add_argument(
        "--from-json", metavar="ROWS", nargs="+", help="reprint (and --report) saved rows, run nothing"
    )
    a = p.parse_args(argv)
    if a.from_json:
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for path in a.from_json:
            for line in Path(path).read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    key = (
                        r["task"],
                        r["kind"],
                        r["gain"],
                        r["events_target"],
                        r["voltage_v"],
                        r["temperature"],
                        r.get("mask", "symmetric"),
                        r.get("mask_scale", "uniform"),
                        r.get("null_draws", 1),  # rows before 2026-12-03 evening: one draw, a 1-chip null
                    )
                    seen.setdefault(key, r)  # the same row in two files (gain 0) counts once
        rows = [
            r
            for r in seen.values()
            if r.get("mask", "symmetric") == a.mask
            and r.get("mask_scale", "uniform") == a.mask_scale
            and r.get("null_draws", 1) == a.null_draws
        ]
    else:
        rows = []
        combos = [("none", 0.0)] if 0.0 in a.gains else []
        combos += [(k, g) for k in a.kinds for g in a.gains if g != 0.0]
        grid = [
            (t, k, g, ev, a, a.voltage, a.temperature) for ev in a.events for k, g in combos for t in a.tasks
        ]
        done = map_grid(a.cluster, one, grid)  # in grid order; --cluster: as tasks (docs/cluster.md)
        for _ev in a.events:
            for kind, gain in combos:
                for task in a.tasks:
                    row = next(done)
                    rows.append(row)
                    print(
                        f"{task} {kind}={gain:g} {a.voltage:g} V temp {a.temperature} at "
                        f"{row['events_per_subslot']:.1f} ev: diff "
                        f"{row['diff_mean']:+.3f} {_fmt_ci(row['diff_ci95'])} ({row['elapsed_s']} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                    if a.out:
                        with open(a.out, "a") as f:
                            f.write(json.dumps(row) + "\n")
    if a.json:
        print(json.dumps(rows))
    else:
        print_rows(rows)
    if a.report:
        print("report: " + ", ".join(str(x) for x in report(rows, a.report)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
