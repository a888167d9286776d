"""``asicrc`` console script: one argparse parser, one module per subcommand.

Each module in :data:`SUBCOMMANDS` exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the handler. ``--json`` output goes to stdout only; logs and progress go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

#: (module, one-line help) per subcommand, in the order ``asicrc --help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "daemon.cli.run_cmd",
    "daemon.cli.sim_cmd",
    "daemon.cli.decode_cmd",
    "daemon.cli.bench_cmd",
    "daemon.cli.analyze_cmd",
    "daemon.cli.record_cmd",
    "daemon.cli.collect_cmd",
    "daemon.cli.live_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="asicrc",
        description="Hardware-in-the-loop reservoir computing on BM1366 mining ASICs.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # that subcommand is not built yet
        module.register(sub)
    return parser


def setup_logging(verbose: int) -> None:
    """Log to stderr: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING - 10 * min(verbose, 2)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``asicrc`` console script; returns the process exit code."""
    parser = build_parser()
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
