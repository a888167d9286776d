"""``asicrc`` console script: one argparse parser, one module per subcommand.

Each module in :data:`SUBCOMMANDS` exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the handler. ``--json`` output goes to stdout only; logs and progress go to stderr.

Registration is lazy: ``asicrc run ...`` imports only ``run_cmd`` (the analysis and bench modules pull in
scipy, scikit-learn and matplotlib, seconds per start on a small host); ``asicrc``, ``asicrc --help`` and an
unknown command import them all, so help and the "invalid choice" error list every subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: One module per subcommand (``daemon.cli.<name>_cmd`` registers ``<name>``), in ``asicrc --help`` order.
SUBCOMMANDS: tuple[str, ...] = (
    "daemon.cli.run_cmd",
    "daemon.cli.sim_cmd",
    "daemon.cli.decode_cmd",
    "daemon.cli.bench_cmd",
    "daemon.cli.analyze_cmd",
    "daemon.cli.record_cmd",
    "daemon.cli.collect_cmd",
    "daemon.cli.live_cmd",
    "daemon.cli.plan_experiment_cmd",
)


def command_name(module: str) -> str:
    """``daemon.cli.run_cmd`` -> ``run``; ``plan_experiment_cmd`` -> ``plan-experiment``."""
    return module.rsplit(".", 1)[1].removesuffix("_cmd").replace("_", "-")


def requested_command(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` asks for, when it is one of ours (the top level takes only flags)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in {command_name(m) for m in SUBCOMMANDS} else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand registered, or only the subcommand ``only``."""
    parser = argparse.ArgumentParser(
        prog="asicrc",
        description="Hardware-in-the-loop reservoir computing on BM1366 mining ASICs.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if only is None or command_name(name) == only:
            importlib.import_module(name).register(sub)
    return parser


def setup_logging(verbose: int) -> None:
    """Log to stderr: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asicrc`` console script; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(requested_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
