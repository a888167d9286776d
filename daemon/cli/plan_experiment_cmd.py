"""``asicrc plan-experiment``: could a run on hardware detect a computational effect? (docs/asic-results.md)

    asicrc plan-experiment [--chips 2] [--hashrate-ghs G | --freq-mhz 485] [--ticket-diff 1] [--slot-ms 100]
                           [--n-sub 2] [--hours 1] [--json]

Prints the expected events per sub-slot and chip, the shot-noise floor of each feature and the smallest
planted gain (echo, threshold; memory capacity and NARMA10) the experiment could detect, scaled from the
dose-response measured on the emulator (reservoir/power.py).
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from daemon.cli.errors import UsageError
from daemon.exit_codes import EXIT_OK
from reservoir.power import Experiment, hashrate_ghs, plan


def register(subparsers: Any) -> None:
    """Add the ``plan-experiment`` subcommand."""
    p = subparsers.add_parser(
        "plan-experiment", help="events per sub-slot, noise floors and detectable effect of a planned run"
    )
    p.add_argument("--chips", type=int, default=2, help="chips on the chain (default 2)")
    p.add_argument("--hashrate-ghs", type=float, default=None, help="hash rate per chip, GH/s")
    p.add_argument("--freq-mhz", type=float, default=485.0, help="clock when no --hashrate-ghs (485)")
    p.add_argument("--ticket-diff", type=float, default=1.0, help="ticket difficulty (default 1)")
    p.add_argument("--slot-ms", type=float, default=100.0, help="sub-slot length, ms (default 100)")
    p.add_argument("--n-sub", type=int, default=2, help="sub-slots per input step (default 2)")
    p.add_argument("--hours", type=float, default=1.0, help="experiment time, hours (default 1)")
    p.add_argument("--p-invalid", type=float, default=1e-4, help="expected invalid-nonce fraction")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=run)


def _fmt(x: float) -> str:
    return "not detectable" if not math.isfinite(x) else f"{x:.3g}"


def run(args: argparse.Namespace) -> int:
    """Handler: print the plan."""
    try:
        if args.freq_mhz <= 0:
            raise ValueError(f"freq_mhz must be > 0, got {args.freq_mhz}")
        ghs = args.hashrate_ghs if args.hashrate_ghs is not None else hashrate_ghs(args.freq_mhz)
        e = Experiment(
            chips=args.chips,
            hashrate_ghs=ghs,
            ticket_diff=args.ticket_diff,
            slot_s=args.slot_ms / 1e3,
            n_sub=args.n_sub,
            duration_s=args.hours * 3600.0,
            p_invalid=args.p_invalid,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    out = plan(e)
    if args.json:
        print(json.dumps({k: v for k, v in out.items()}, default=lambda x: None))
        return EXIT_OK
    fl = out["floors"]
    print(
        f"{e.chips} chip(s) at {ghs:.4g} GH/s, ticket difficulty {e.ticket_diff:g}, {args.slot_ms:g} ms "
        f"sub-slots x {e.n_sub}, {args.hours:g} h"
    )
    print(f"events per sub-slot and chip: {out['events_per_subslot_per_chip']:.3g}")
    print(
        f"shot-noise floor: count {fl['count']:.3g} (relative), log-interval mean {fl['log_iv_mean']:.3g} "
        f"(log units), invalid fraction {fl['invalid_frac']:.2g}"
    )
    print(f"test samples in one run: {out['test_samples']} (after a {200}-step washout, 2/3 train)")
    if not out["mde_gain"]:
        print("smallest detectable planted gain: no dose-response reference")
    for key, g in out["mde_gain"].items():
        print(f"smallest detectable planted gain, {key}: {_fmt(g)}")
    print(
        "(scaled as events^-1/2 test-samples^-1/4 from the emulator's dose-response at 2 chips x 2 "
        "sub-slots, 5 seeds x 200 test samples; chips and sub-slots are not scaled; docs/asic-results.md)"
    )
    return EXIT_OK
