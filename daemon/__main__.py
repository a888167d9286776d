"""``python -m daemon`` runs the ``asicrc`` command line."""

import sys

from daemon.cli import main

sys.exit(main())
