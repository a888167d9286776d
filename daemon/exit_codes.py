"""Process exit codes of ``asicrc`` and the daemon, in one place (README.md, "Exit codes").

* :data:`EXIT_OK` 0: done;
* :data:`EXIT_RUNTIME` 1: the command was well formed but the work failed (a board, a broker, a full disk);
* :data:`EXIT_USAGE` 2: fix the command line or the input it names (a bad flag, a missing or damaged file);
* :data:`EXIT_NO_BOARDS` 2: nothing to run (no board configured, or none came up within the start-up
  window), like a usage error: the configuration has to change.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_NO_BOARDS = 2
