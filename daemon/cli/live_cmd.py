"""``asicrc live``: train a live readout on the emulator, or serve one over MQTT (docs/mqtt.md).

    asicrc live train --simulate --out model.npz [--steps N] [--delay K] [--chips C] [--n-sub S]
                      [--slot-ms MS] [--time-scale X] [--seed N] [--json]
    asicrc live serve --mqtt HOST:PORT --readout model.npz (--simulate | --config FILE) [--host-id H]
                      [--username U --password-file F] [--tls [--ca-file F]] ...

``train`` runs ``--steps`` uniform random inputs in [0, 1] through an emulated board, one input step per
substrate call as the live service runs them, and fits the readout on the input delayed by ``--delay``
steps (0: reproduce the input). It reports the fit quality: NRMSE on the training steps and on the last
``--holdout`` fraction of the steps, held out of a first fit (the model written is then fitted on every
step). ``serve`` runs the service standalone (its own supervised board or emulator,
:mod:`daemon.live`); inside the daemon use the config's ``[live]`` section instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from daemon.cli.errors import UsageError, plain
from daemon.cli.progress import Feedback
from daemon.exit_codes import EXIT_OK, EXIT_USAGE


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("live", help="live reservoir service: train a readout, serve it over MQTT")
    p.description = plain(__doc__)
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    verbs = p.add_subparsers(dest="live_command", metavar="{train,serve}")
    t = verbs.add_parser("train", help="train a LiveModel on an emulated board")
    t.add_argument("--simulate", action="store_true", help="train on the emulator (required today)")
    t.add_argument("--out", required=True, metavar="FILE", help="LiveModel .npz to write")
    t.add_argument("--steps", type=int, default=200, help="training inputs (default 200)")
    t.add_argument("--washout", type=int, default=10, help="first steps left out of the fit (default 10)")
    t.add_argument("--delay", type=int, default=0, help="target = input K steps ago (default 0)")
    t.add_argument("--chips", type=int, default=1, help="emulated chips (default 1)")
    t.add_argument("--n-sub", type=int, default=4, help="masked sub-slots per input (default 4)")
    t.add_argument("--slot-ms", type=float, default=40.0, help="sub-slot length, board ms (default 40)")
    t.add_argument("--f-min", type=float, default=400.0, help="lowest frequency, MHz (default 400)")
    t.add_argument("--f-max", type=float, default=575.0, help="highest frequency, MHz (default 575)")
    t.add_argument("--time-scale", type=float, default=10.0, help="emulator clock speed-up (default 10)")
    t.add_argument("--seed", type=int, default=0, help="inputs, mask and emulator seed (default 0)")
    t.add_argument(
        "--holdout", type=float, default=0.2, help="fraction of the steps scored out of sample (default 0.2)"
    )
    t.add_argument("--json", action="store_true", help="print the training summary as JSON on stdout")
    t.add_argument("--quiet", "-q", action="store_true", help="no progress display on stderr")
    t.set_defaults(func=train_main)
    s = verbs.add_parser("serve", help="serve a LiveModel over MQTT (standalone, no daemon)")
    s.add_argument("--mqtt", required=True, metavar="HOST:PORT", help="broker address")
    s.add_argument("--readout", required=True, metavar="FILE", help="LiveModel .npz (asicrc live train)")
    s.add_argument("--simulate", action="store_true", help="drive an emulated board")
    s.add_argument("--time-scale", type=float, default=10.0, help="emulator clock speed-up (default 10)")
    s.add_argument("--config", metavar="FILE", help="daemon config: its first [[boards]] entry is driven")
    s.add_argument("--host-id", help="MQTT host id (default: the hostname)")
    s.add_argument("--topic-root", default="asicrc", help="topic root (default asicrc)")
    s.add_argument("--username", metavar="U", help="broker user name")
    s.add_argument("--password-file", metavar="F", help="file holding the broker password (first line)")
    s.add_argument("--tls", action="store_true", help="connect to the broker with TLS")
    s.add_argument("--ca-file", metavar="F", help="CA bundle for --tls (default: the system store)")
    s.add_argument("--metrics-port", type=int, metavar="PORT", help="serve metrics on 127.0.0.1:PORT")
    s.set_defaults(func=serve_main)
    p.set_defaults(func=lambda _a: _usage(p))


def _usage(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def train_main(args: argparse.Namespace) -> int:
    """``asicrc live train``: fit and write a LiveModel; :class:`UsageError` (exit 2) on bad flags."""
    if not args.simulate:
        raise UsageError("train needs --simulate (training on a configured board: run a modulate plan)")
    checks = (
        (args.steps > args.washout + args.delay + 1, "--steps must exceed --washout + --delay + 1"),
        (args.washout >= 0 and args.delay >= 0, "--washout and --delay must be >= 0"),
        (1 <= args.chips <= 256, "--chips out of range; allowed 1 .. 256"),
        (1 <= args.n_sub <= 1024, "--n-sub out of range; allowed 1 .. 1024"),
        (args.slot_ms > 0 and args.time_scale > 0, "--slot-ms and --time-scale must be > 0"),
        (50.0 <= args.f_min < args.f_max <= 1200.0, "need 50 <= --f-min < --f-max <= 1200 (MHz)"),
        (0.0 <= args.holdout < 1.0, "--holdout must be in [0, 1)"),
    )
    for ok, msg in checks:
        if not ok:
            raise UsageError(msg)
    out = Path(args.out)
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out!r}: directory {str(out.parent)!r} does not exist")
    logging.getLogger("daemon").setLevel(logging.DEBUG if args.verbose >= 2 else logging.INFO)
    from daemon.live import LiveModel, LiveParams
    from daemon.live_train import train_on_emulator

    params = LiveParams(
        n_sub=args.n_sub,
        f_min=args.f_min,
        f_max=args.f_max,
        slot_ns=int(args.slot_ms * 1e6),
        seed=args.seed,
        n_chips=args.chips,
    )
    print(f"asicrc live: training on {args.steps} inputs (emulator x{args.time_scale:g})", file=sys.stderr)
    with Feedback(args.quiet) as feedback:
        bar = iter(feedback.track(range(args.steps), "emulated board steps"))

        def step(_i: int) -> None:
            next(bar, None)

        model, fit = train_on_emulator(
            params,
            steps=args.steps,
            delay=args.delay,
            washout=args.washout,
            holdout=args.holdout,
            time_scale=args.time_scale,
            progress=step,
        )
    model.save(out)
    check = LiveModel.load(out)
    summary = {
        "out": str(out),
        "steps": args.steps,
        "delay": args.delay,
        "features": int(check.readout.n_features_in_),
        "alpha": float(check.readout.alpha_),
        "fit": fit,
        "params": dataclasses.asdict(check.params),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        held = fit["holdout_nrmse"]
        held_s = "n/a" if held is None else f"{held:.3f} on the last {fit['n_holdout']} steps"
        print(
            f"fit: NRMSE {fit['train_nrmse']:.3f} on {fit['n_train']} training steps, held out {held_s} "
            f"(1.0 = no better than the mean; delay {args.delay})"
        )
        print(f"asicrc live: wrote {out} ({summary['features']} features)", file=sys.stderr)
    return EXIT_OK


def serve_main(args: argparse.Namespace) -> int:
    """``asicrc live serve``: the service on an emulated board (``--simulate``) or the first board of
    ``--config``, metrics on ``--metrics-port``; 2 on a usage error."""
    if not args.simulate and not args.config:
        raise UsageError("serve needs --simulate or --config FILE")
    if args.ca_file and not args.tls:
        raise UsageError("--ca-file needs --tls")
    if args.ca_file and not Path(args.ca_file).is_file():
        raise UsageError(f"--ca-file {args.ca_file!r}: no such file")
    if not Path(args.readout).is_file():
        raise UsageError(f"--readout {args.readout!r}: no such file (asicrc live train --out FILE)")
    from daemon.mqtt_link import parse_broker, read_password

    try:
        host, port = parse_broker(args.mqtt)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    import asyncio
    import contextlib
    import socket

    from prometheus_client import CollectorRegistry, start_http_server

    from daemon.config import SimulateConfig, load_config
    from daemon.live import LiveModel, LiveService, SubstrateSource, live_connection, run_live
    from daemon.mqtt_link import MqttSettings
    from daemon.substrate import BoardSubstrate

    try:
        model = LiveModel.load(Path(args.readout))
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"--readout {args.readout!r}: not a LiveModel file ({exc})") from None
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    settings = MqttSettings(
        host=host,
        port=port,
        username=args.username,
        password=read_password(args.password_file) if args.password_file else None,
        topic_root=args.topic_root,
        host_id=args.host_id or socket.gethostname(),
        tls=args.tls,
        ca_file=args.ca_file,
    )
    if args.simulate:
        substrate = BoardSubstrate(sim=SimulateConfig(chips=model.params.n_chips, time_scale=args.time_scale))
    else:
        substrate = BoardSubstrate(board=load_config(args.config).boards[0])
    registry = CollectorRegistry()
    if args.metrics_port:
        start_http_server(args.metrics_port, addr="127.0.0.1", registry=registry)
    source = SubstrateSource(model.params, substrate)
    service, link = live_connection(
        settings, lambda publish: LiveService(model, source, publish, registry=registry)
    )
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_live(service, link))
    finally:
        substrate.close()
    return 0
