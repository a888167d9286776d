"""``asicrc run``: the daemon in the foreground (``--simulate N`` serves N emulated boards in-process)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from daemon.cli.errors import UsageError, positive_float
from daemon.config import ConfigError, default_config, load_config
from daemon.exit_codes import EXIT_NO_BOARDS

NO_BOARDS_HELP = """asicrc run: no boards configured.
  Configure one in a TOML file and pass it with --config, e.g.:
      [[boards]]
      name = "gamma0"
      kind = "gamma"
      data_port = "/dev/ttyACM1"
  (a commented example is systemd/asicrc.example.toml), or try the emulator:
      asicrc run --simulate 2
"""


DESCRIPTION = (
    "Run the daemon in the foreground. With --simulate N, N emulated boards are served in-process and driven "
    "through the same driver path as hardware. SIGTERM/SIGINT put every board in its safe state, flush the "
    "recorder and exit 0. Progress and logs go to stderr."
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="run the daemon in the foreground", description=DESCRIPTION)
    p.add_argument("--config", metavar="FILE", help="TOML configuration (see systemd/asicrc.example.toml)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the frames and I2C writes the bring-up and the first plan point would send, decoded,"
        " and exit without opening any device",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: one JSON object per write")
    p.add_argument("--simulate", metavar="N", type=int, default=0, help="serve N emulated boards in-process")
    p.add_argument("--state-dir", metavar="DIR", help="state directory (recordings, plan progress)")
    p.add_argument("--http", metavar="HOST:PORT", help="serve /metrics, /healthz, /status here")
    p.add_argument("--duration", metavar="S", type=positive_float, help="stop cleanly after S seconds (> 0)")
    p.set_defaults(func=main)


def parse_hostport(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT`` for 127.0.0.1) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--http expects HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def main(args: argparse.Namespace) -> int:
    """Load the configuration, check there is something to run, and run the daemon until stopped."""
    logging.getLogger("daemon").setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
    from daemon.app import Daemon, with_state_dir
    from daemon.memory import use_system_arrow_pool

    use_system_arrow_pool()  # freed Arrow buffers go back through malloc, which the daemon trims (soak)

    if args.simulate < 0 or args.simulate > 64:
        raise UsageError(f"--simulate {args.simulate} out of range; allowed 0 .. 64")
    try:
        cfg = load_config(args.config) if args.config else default_config()
        http = parse_hostport(args.http) if args.http else None
    except (ConfigError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    if not cfg.boards and not args.simulate:
        print(NO_BOARDS_HELP, file=sys.stderr, end="")
        return EXIT_NO_BOARDS
    if args.json and not args.dry_run:
        raise UsageError("--json goes with --dry-run")
    if args.dry_run:
        from daemon.cli.dry_run_cmd import print_dry_run

        if args.simulate:
            raise UsageError("--dry-run shows configured boards only; drop --simulate")
        return print_dry_run(cfg, args.json)
    cfg = with_state_dir(cfg, args.state_dir)
    daemon = Daemon(
        cfg, state_dir=Path(cfg.state_dir), http=http, duration_s=args.duration, simulate=args.simulate
    )
    return asyncio.run(daemon.run())
