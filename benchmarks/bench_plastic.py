"""Plastic-liquid cost for bench_spiking.py ``--plastic``: stage-1 speed and NALSM vs LSM presentations.

Stage 1 (batch 1, 20 ms per sample, weights carried over): the numba kernel, the NumPy loop, the torch loop
and (a few samples) the dense reference, in M neuron-steps/s. Presentations: the same digits samples through
lsm (fixed +-1 weights, the torch event backend), the fixed liquid with NALSM's stage-1 weights (same
activity as NALSM, no plasticity; stage 1 started at the bound 3, as ``nalsm`` by default), and nalsm by the
numba kernel and by the torch event loop, round-robin
``--repeats`` rounds, best wall and CPU time each; the ratio to lsm is the figure of merit (<= 3 wanted).
numba's compile time is measured apart (a fresh compilation, no disk cache) and excluded from the rows.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from reservoir.spiking import plastic_kernel
from reservoir.spiking.liquid import build_liquid
from reservoir.spiking.reservoir import PLASTIC_W_START
from reservoir.spiking.simulate import Plasticity, initialise_weights, simulate_fixed, simulate_plastic

STAGE1_MS = 20


def _timed(fn: Any) -> tuple[float, float, Any]:
    """(wall s, process CPU s, result) of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def plastic_cost(args: argparse.Namespace, p_all: torch.Tensor, log: Any) -> dict[str, Any]:
    """Stage-1 speed and the per-presentation cost of NALSM against LSM; p_all: (k, 64) probabilities."""
    torch.set_num_threads(1)
    n = args.plastic_size
    liquid = build_liquid(n, 64, seed=0)
    start = replace(
        liquid, w0=(np.sign(liquid.w0) * PLASTIC_W_START).astype(liquid.w0.dtype)
    )  # nalsm's default
    plast = Plasticity()
    log(f"plasticity: N={n} synapses={liquid.n_syn} load {os.getloadavg()[0]:.2f}")
    kernel = plastic_kernel.AVAILABLE
    first_call_s = compile_s = math.nan
    if kernel:  # first call: load from numba's disk cache, or compile; then a fresh compile, timed alone
        first_call_s, _, _ = _timed(
            lambda: initialise_weights(start, p_all[:1], torch.Generator(), plast, method="numba")
        )
        compile_s = plastic_kernel.compile_seconds()
        log(f"  numba: first call {first_call_s:.2f} s (cache load or compile), compile {compile_s:.2f} s")
    else:
        log("  numba not installed: only the torch/NumPy rows")
    stage1: list[dict[str, Any]] = []
    w_init = None
    k0 = args.n_init_bench
    methods = [("numba", k0)] if kernel else []
    methods += [("numpy", max(k0 // 4, 1)), ("torch", max(k0 // 16, 1)), ("dense", 5)]
    for method, k in methods:
        wall, cpu, w = _timed(
            lambda m=method, k=k: initialise_weights(
                start, p_all[:k], torch.Generator().manual_seed(0), plast, method=m
            )
        )
        work = k * STAGE1_MS * n
        row = {"method": method, "samples": k, "wall_s": wall, "cpu_s": cpu}
        row.update(m_steps_wall=work / wall / 1e6, m_steps_cpu=work / cpu / 1e6, load1=os.getloadavg()[0])
        stage1.append(row)
        log(
            f"  stage 1 {method:<6} {k:>4} samples: {row['m_steps_wall']:6.2f} M neuron-steps/s wall, "
            f"{row['m_steps_cpu']:6.2f} CPU (load {row['load1']:.2f})"
        )
        if w_init is None:
            w_init = w
    assert w_init is not None
    batch, steps = args.plastic_batch, args.ms
    p = p_all[:batch]
    engines = {
        "lsm": lambda: simulate_fixed(liquid, p, steps, torch.Generator().manual_seed(1)),
        "fixed, NALSM weights": lambda: simulate_fixed(
            liquid, p, steps, torch.Generator().manual_seed(1), weights=w_init
        ),
    }
    if kernel:
        engines["nalsm (numba)"] = lambda: simulate_plastic(
            liquid, p, steps, torch.Generator().manual_seed(1), plast, w_start=w_init, method="numba"
        )
    engines["nalsm (torch)"] = lambda: simulate_plastic(
        liquid, p, steps, torch.Generator().manual_seed(1), plast, w_start=w_init, method="torch"
    )
    best: dict[str, list[float]] = {k: [math.inf, math.inf, 0.0] for k in engines}
    counts: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        for name, fn in engines.items():
            wall, cpu, res = _timed(fn)
            b = best[name]
            b[0], b[1] = min(b[0], wall), min(b[1], cpu)
            b[2] = float(res.counts.mean()) * 1000.0 / steps
            counts[name] = res.counts
    same = "nalsm (numba)" in counts and torch.equal(counts["nalsm (numba)"], counts["nalsm (torch)"])
    load = os.getloadavg()[0]
    rows = []
    for name, (wall, cpu, rate) in best.items():
        row = {"engine": name, "batch": batch, "ms": steps, "rate_hz": rate, "load1": load}
        row.update(wall_ms_per_sample=wall / batch * 1e3, cpu_ms_per_sample=cpu / batch * 1e3)
        row.update(ratio_wall=wall / best["lsm"][0], ratio_cpu=cpu / best["lsm"][1])
        rows.append(row)
        log(
            f"  {name:<22} {row['wall_ms_per_sample']:7.2f} ms/presentation wall "
            f"{row['cpu_ms_per_sample']:7.2f} CPU, {rate:5.1f} Hz, x{row['ratio_cpu']:.1f} lsm (CPU)"
        )
    return {
        "size": n,
        "stage1": stage1,
        "presentations": rows,
        "numba_first_call_s": first_call_s,
        "numba_compile_s": compile_s,
        "numba_same_counts_as_torch": same,
    }


def print_plastic(pc: dict[str, Any]) -> None:
    """The stage-1 and presentation tables, the two NALSM backends side by side."""
    print(f"\nStage 1 (batch 1, {STAGE1_MS} ms per sample), N={pc['size']}")
    print(f"{'method':<8} {'samples':>7} {'M/s wall':>9} {'M/s CPU':>8}  load1")
    for r in pc["stage1"]:
        print(
            f"{r['method']:<8} {r['samples']:>7} {r['m_steps_wall']:9.2f} {r['m_steps_cpu']:8.2f}  "
            f"{r['load1']:5.2f}"
        )
    print("\nPresentation cost (same samples, round-robin, best of repeats)")
    print(
        f"{'engine':<22} {'ms/sample wall':>14} {'CPU':>7} {'rate Hz':>8} {'x lsm wall':>10} {'x lsm CPU':>9}"
    )
    for r in pc["presentations"]:
        print(
            f"{r['engine']:<22} {r['wall_ms_per_sample']:14.2f} {r['cpu_ms_per_sample']:7.2f} "
            f"{r['rate_hz']:8.1f} {r['ratio_wall']:10.2f} {r['ratio_cpu']:9.2f}"
        )
    first = pc["presentations"][0]
    print(f"  batch {first['batch']}, {first['ms']} ms, load1 {first['load1']:.2f}")
    if not math.isnan(pc["numba_compile_s"]):
        print(
            f"  numba: compile {pc['numba_compile_s']:.1f} s (fresh, excluded above), first call "
            f"{pc['numba_first_call_s']:.1f} s (disk cache load or compile); same spike counts as torch: "
            f"{pc['numba_same_counts_as_torch']}"
        )
