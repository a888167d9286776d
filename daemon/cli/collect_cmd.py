"""``asicrc collect``: one central recording from many hosts' MQTT event topics, plus one readout fitted from
the readout statistics the hosts publish (docs/mqtt.md, "Fleet collector").

    asicrc collect --mqtt HOST:PORT [--username U --password-file F] [--tls [--ca-file F]]
                   [--topic-root asicrc] --out DIR [--duration S] [--alpha gcv|cv|FLOAT] [--json]

Stops cleanly on SIGINT/SIGTERM (or after ``--duration``): the recording is flushed and closed, and
``DIR/readout.npz`` is written when statistics arrived. ``--json`` prints the final counts on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
from pathlib import Path

from daemon.cli.errors import (  # 2: bad --mqtt, unreadable password file, unusable --out
    UsageError,
    check_output_dir,
    plain,
)
from daemon.exit_codes import EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("collect", help="fleet collector: MQTT events of many hosts -> one recording")
    p.description = plain(__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--mqtt", metavar="HOST:PORT", required=True, help="broker address")
    p.add_argument("--username", metavar="U", help="broker user name")
    p.add_argument("--password-file", metavar="F", help="file holding the broker password (first line)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca-file", metavar="F", help="CA bundle for --tls (default: the system store)")
    p.add_argument("--topic-root", default="asicrc", help="topic root (default asicrc)")
    p.add_argument("--out", metavar="DIR", required=True, help="recording directory to write")
    p.add_argument("--duration", metavar="S", type=float, help="stop cleanly after S seconds")
    p.add_argument(
        "--alpha", default="gcv", help="readout ridge alpha: gcv (default), cv (hosts as folds), or a number"
    )
    p.add_argument("--client-id", help="MQTT client id (default asicrc-collect-<host>-<pid>)")
    p.add_argument("--json", action="store_true", help="print the final counts as one JSON object on stdout")
    p.set_defaults(func=main)


def parse_alpha(text: str) -> float | str:
    """``gcv``, ``cv`` or a float >= 0."""
    if text in ("gcv", "cv"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--alpha expects gcv, cv or a number >= 0, got {text!r}") from None
    if not value >= 0.0:
        raise ValueError(f"--alpha must be >= 0, got {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    logging.getLogger("daemon").setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
    from daemon.collect_session import collect_until_stopped
    from daemon.mqtt import MqttSettings
    from daemon.mqtt_link import parse_broker, read_password

    try:
        host, port = parse_broker(args.mqtt)
        alpha = parse_alpha(args.alpha)
        password = read_password(args.password_file) if args.password_file else None
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from exc
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be > 0, got {args.duration}")
    check_output_dir(args.out, "--out")
    settings = MqttSettings(
        host=host,
        port=port,
        tls=args.tls,
        ca_file=args.ca_file,
        username=args.username,
        password=password,
        topic_root=args.topic_root,
    )
    identifier = args.client_id or f"asicrc-collect-{socket.gethostname()}-{os.getpid()}"
    result = asyncio.run(collect_until_stopped(settings, Path(args.out), alpha, args.duration, identifier))
    if args.json:
        print(json.dumps(result, sort_keys=True))
    return EXIT_OK
