"""Process exit codes used by the daemon and every ``asicrc`` subcommand (table in README.md, "Exit codes").

Library code (the daemon's :class:`daemon.app.Daemon`) and the command line both import these, so the
numbers live here rather than in ``daemon/cli/``.
"""

from __future__ import annotations

EXIT_OK = 0
"""Done."""

EXIT_RUNTIME = 1
"""Well-formed command whose work failed (a board, a broker, a full disk)."""

EXIT_USAGE = 2
"""Fix the command line or the input it names (bad flag, missing or damaged file)."""

EXIT_NO_BOARDS = EXIT_USAGE
"""``asicrc run`` found no board to drive (none configured, none answered, all disabled)."""

EXIT_INTERRUPTED = 130
"""Interrupted (Ctrl-C / SIGINT)."""

EXIT_BROKEN_PIPE = 141
"""stdout was closed early (``| head``)."""

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_NO_BOARDS",
    "EXIT_OK",
    "EXIT_RUNTIME",
    "EXIT_USAGE",
]
