"""The daemon's state directory (recordings, ``status.json``, plan progress): created private and proven
writable before anything is started."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from daemon.recording import make_dir


class StateDirError(OSError):
    """The state directory cannot be created or written."""


def check_state_dir(path: Path) -> None:
    """Create ``path`` if needed (mode 0750 whatever the umask) and prove it is writable.

    Raises :class:`StateDirError` naming it if not.
    """
    try:
        make_dir(path)
        fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StateDirError(
            exc.errno or 0,
            f"state directory {path} is not writable ({exc.strerror or exc}); "
            "fix its permissions or free space, or choose another with --state-dir / state_dir",
        ) from exc
