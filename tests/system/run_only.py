"""The ``asicrc run`` entry used by system tests that start a daemon subprocess.

``python -c RUN_ONLY run ...`` registers only the ``run`` subcommand: the full CLI also imports the analysis
and bench modules (scipy, matplotlib), which costs seconds per start.
"""

RUN_ONLY = (
    "import argparse, sys\n"
    "from daemon.cli import run_cmd, setup_logging\n"
    "p = argparse.ArgumentParser(prog='asicrc')\n"
    "p.add_argument('-v', '--verbose', action='count', default=0)\n"
    "run_cmd.register(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:])\n"
    "setup_logging(a.verbose)\n"
    "sys.exit(a.func(a))\n"
)
