"""``asicrc`` console script: one argparse parser, one module per subcommand.

Each module in :data:`SUBCOMMANDS` exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the handler. ``--json`` output goes to stdout only; logs and progress go to stderr.

Registration is lazy: ``asicrc run ...`` imports only ``run_cmd`` (the analysis and bench modules pull in
scipy, scikit-learn and matplotlib, seconds per start on a small host); ``asicrc``, ``asicrc --help`` and an
unknown command import them all, so help and the "invalid choice" error list every subcommand.

Errors are one line on stderr with the exit codes of :mod:`daemon.exit_codes` (README.md, "Exit codes");
``-v`` / ``-vv`` are accepted before or after the subcommand; ``-vv`` adds the traceback of an unexpected
error.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from daemon.cli.errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, CliError, OneLineParser
from daemon.exit_codes import EXIT_RUNTIME, EXIT_USAGE

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


def version() -> str:
    """The installed asicrc version (``0+unknown`` when run from a tree that is not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("asicrc")
    except PackageNotFoundError:  # pragma: no cover - the tests run an installed tree
        return "0+unknown"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand registered, or only the subcommand ``only``."""
    parser = OneLineParser(
        prog="asicrc",
        description="Hardware-in-the-loop reservoir computing on BM1366 mining ASICs.",
        epilog="exit codes: 0 done, 1 runtime failure, 2 usage or input error or no boards, 130 interrupted",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output on stderr")
    parser.add_argument("--version", action="version", version=f"asicrc {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        if only is None or command_name(name) == only:
            importlib.import_module(name).register(sub)
    _add_verbose(parser)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for p in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                out.append(p)
    return out


def _add_verbose(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the subcommand too (counted on top of a ``-v`` before it), on every level."""
    for p in _subparsers(parser):
        if not any("-v" in a.option_strings for a in p._actions):
            p.add_argument(
                "-v",
                "--verbose",
                dest="verbose_sub",
                action="count",
                default=argparse.SUPPRESS,  # a nested parser's default must not reset an outer -v
                help="more log output on stderr (-vv: debug, and tracebacks)",
            )
        _add_verbose(p)


def command_label(args: argparse.Namespace) -> str:
    """``asicrc record info`` for the namespace of ``asicrc record info ...`` (error message prefix)."""
    words = [getattr(args, k, None) for k in ("command", "record_command", "live_command")]
    return " ".join(["asicrc", *(str(w) for w in words if w)])


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
        return EXIT_USAGE
    args.verbose = args.verbose + getattr(args, "verbose_sub", 0)
    setup_logging(args.verbose)
    label = command_label(args)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (``| head``): quiet, like any Unix tool
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except CliError as exc:
        print(f"{label}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # last resort: one line (the traceback with -vv), never a bare traceback
        if args.verbose >= 2:
            traceback.print_exc()
        print(
            f"{label}: error: unexpected {type(exc).__name__}: {exc} (run with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
