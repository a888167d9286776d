"""``asicrc sim``: serve emulated BM1366 boards on ptys until SIGINT/SIGTERM.

Prints one JSON line on stdout, ``{"boards": [{"data": ..., "control": ...}], "difficulty_scale": ..., ...}``,
then serves. With ``--stdin-control``, each JSON line read from stdin is a fault for one board
(``{"board": 0, "kind": "garbage", "n": 100}``) and is answered by one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from daemon.cli.errors import UsageError
from daemon.exit_codes import EXIT_OK
from simulator.bitaxe_raw import DEFAULT_FIRMWARE, FIRMWARES
from simulator.board_spec import BoardConfig
from simulator.chain import MAX_CHIPS, Knobs
from simulator.mining import DEFAULT_DIFFICULTY_SCALE
from simulator.plant import parse_plants
from simulator.serve import serve_boards


def _pair(text: str) -> tuple[float, float]:
    try:
        a, p = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AMPLITUDE,PERIOD_S (two numbers), got {text!r}") from None
    if a < 0 or p <= 0:
        raise argparse.ArgumentTypeError(f"amplitude must be >= 0 and period > 0, got {text!r}")
    return a, p


def _chips(text: str) -> int:
    n = int(text)
    if not 1 <= n <= MAX_CHIPS:
        raise argparse.ArgumentTypeError(f"--chips must be 1..{MAX_CHIPS}, got {n}")
    return n


def _positive(text: str) -> float:
    x = float(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return x


def _nonneg(text: str) -> float:
    x = float(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return x


def _unit(text: str) -> float:
    x = float(text)
    if not 0 <= x < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return x


def register(subparsers: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser("sim", help="serve emulated BM1366 boards on ptys (prints the paths as JSON)")
    p.add_argument("--chips", type=_chips, default=1, help="chips per chain (1-128)")
    p.add_argument("--boards", type=int, default=1, help="number of boards")
    p.add_argument("--seed", type=int, default=0, help="random seed (board i uses seed + i)")
    p.add_argument("--speed", type=_positive, default=1.0, help="simulated seconds per real second")
    p.add_argument("--link", choices=("ideal", "ftdi"), default="ideal", help="chip->host link model")
    p.add_argument("--ftdi-latency", type=_positive, default=0.016, help="FTDI latency timer (s)")
    p.add_argument("--board-kind", choices=("gamma", "ultra"), default="gamma", help="I2C parts emulated")
    p.add_argument(
        "--raw-firmware",
        choices=tuple(FIRMWARES),
        default=DEFAULT_FIRMWARE,
        help="bitaxe-raw variant on the control port (docs/emulator.md)",
    )
    p.add_argument(
        "--difficulty-scale",
        type=_positive,
        default=DEFAULT_DIFFICULTY_SCALE,
        help="nonces meet ticket difficulty * scale (default 2^-28)",
    )
    p.add_argument("--firehose", type=_positive, default=None, metavar="RATE", help="random nonces/s/chain")
    p.add_argument(
        "--firehose-after-job",
        action="store_true",
        help="firehose only from chips holding a job, i.e. after bring-up (a saturated slow link cannot "
        "starve the bring-up exchange)",
    )
    p.add_argument("--dead-time", type=_nonneg, default=0.0, metavar="S", help="per-chip dead time (s)")
    p.add_argument("--drift", type=_pair, default=None, metavar="A,P", help="log-rate walk: sd, tau (s)")
    p.add_argument("--modulation", type=_pair, default=None, metavar="A,P", help="rate sinusoid: amp, period")
    p.add_argument(
        "--plant",
        action="append",
        default=[],
        metavar="KIND=GAIN",
        help="planted input-dependent dynamics, repeatable: echo=G, threshold=G (docs/emulator.md)",
    )
    p.add_argument(
        "--plant-param",
        action="append",
        default=[],
        metavar="KIND.NAME=VALUE",
        help="a planted kind's parameter, repeatable (e.g. echo.tau_ms=300)",
    )
    p.add_argument(
        "--serial-correlation",
        type=_unit,
        default=0.0,
        metavar="RHO",
        help="lag-1 correlation of each chip's intervals (EAR(1), exponential intervals; 0 = off)",
    )
    p.add_argument("--truth", default=None, metavar="PREFIX", help="write ground truth PREFIX<board>.csv")
    p.add_argument("--link-dir", default=None, help="symlinks <name>-data/-control here")
    p.add_argument("--stdin-control", action="store_true", help="read fault JSON lines from stdin")
    p.add_argument("--check-baud", action="store_true", help="garble bytes when host and chain bauds differ")
    p.set_defaults(func=run)


def configs(args: argparse.Namespace) -> list[BoardConfig]:
    """One :class:`BoardConfig` per board from parsed arguments (ValueError on a bad ``--plant``)."""
    plants = parse_plants(getattr(args, "plant", ()), getattr(args, "plant_param", ()))
    knobs = Knobs(
        dead_time_s=args.dead_time,
        drift_amplitude=args.drift[0] if args.drift else 0.0,
        drift_period_s=args.drift[1] if args.drift else 60.0,
        modulation_amplitude=args.modulation[0] if args.modulation else 0.0,
        modulation_period_s=args.modulation[1] if args.modulation else 10.0,
        serial_correlation=args.serial_correlation,
    )
    return [
        BoardConfig(
            chips=args.chips,
            seed=args.seed + i,
            speed=args.speed,
            link=args.link,
            board_kind=args.board_kind,
            raw_firmware=args.raw_firmware,
            difficulty_scale=args.difficulty_scale,
            firehose_rate=args.firehose,
            firehose_needs_job=args.firehose_after_job,
            knobs=knobs,
            ftdi_latency_s=args.ftdi_latency,
            record_truth=args.truth is not None,
            truth_path=f"{args.truth}{i}.csv" if args.truth else None,
            link_dir=args.link_dir,
            name=f"board{i}",
            check_baud=args.check_baud,
            plants=plants,
        )
        for i in range(args.boards)
    ]


async def serve(args: argparse.Namespace) -> int:
    """Start the boards, print the JSON line (pty paths and the run's settings), serve until a signal."""
    header = {k: getattr(args, k) for k in ("difficulty_scale", "seed", "speed", "chips", "link")}
    header["board_kind"] = args.board_kind

    def announce(infos: list[dict[str, Any]]) -> None:
        print(json.dumps({"boards": infos, **header, "firehose": args.firehose}), flush=True)

    await serve_boards(configs(args), announce, stdin_control=args.stdin_control)
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Entry point of ``asicrc sim``."""
    if args.boards < 1:
        raise UsageError("--boards must be >= 1")
    try:
        parse_plants(args.plant, args.plant_param)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return asyncio.run(serve(args))
