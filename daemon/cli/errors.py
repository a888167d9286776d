"""Exit codes, one-line errors and argument checks shared by every ``asicrc`` subcommand.

Exit codes (:mod:`daemon.exit_codes`; the table is in README.md, "Exit codes"):

* 0: done;
* 1 (:data:`EXIT_RUNTIME`): the command was well formed but the work failed (a board, a broker, a disk
  that filled up, a report that could not be written after the result was printed);
* 2 (:data:`EXIT_USAGE`): fix the command line or the input it names (a bad flag or number, a missing or
  damaged file, an output path that cannot be written);
* 2 (``EXIT_NO_BOARDS``): ``asicrc run`` has no board to run;
* 130: interrupted (Ctrl-C); 141: stdout was closed early (``| head``), nothing printed on stderr (the
  shell's 128 + signal convention, command-line only).

A handler raises :class:`UsageError` or :class:`RuntimeFailure`; :func:`daemon.cli.main` prints it as one
line ``asicrc CMD: error: MESSAGE`` on stderr and returns its code.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.exit_codes import EXIT_RUNTIME, EXIT_USAGE

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A failure the user is told about in one line; ``exit_code`` is the process exit code."""

    exit_code = EXIT_RUNTIME


class UsageError(CliError):
    """Bad command line or input file: exit 2."""

    exit_code = EXIT_USAGE


class RuntimeFailure(CliError):
    """The work itself failed: exit 1."""

    exit_code = EXIT_RUNTIME


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line usage errors (``asicrc bench: error: ... (asicrc bench --help)``), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


_ROLE = re.compile(r":(?:func|class|mod|meth|data|attr|exc|obj):`~?([^`]+)`")


def plain(doc: str | None) -> str | None:
    """A docstring as plain help text: ``:func:`x``` -> ``x``, double backquotes dropped."""
    if doc is None:
        return None
    return _ROLE.sub(r"\1", doc).replace("``", "")


# ------------------------------------------------------------------------------- argparse value types


def _number(kind: type, text: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'an integer' if kind is int else 'a number'}: {text!r}"
        ) from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return float(value) if kind is float else value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(_number(int, text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(_number(int, text))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(float, text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def open_unit(text: str) -> float:
    """argparse type: a number strictly between 0 and 1 (a significance level)."""
    value = _number(float, text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


# ------------------------------------------------------------------------------- output paths


def check_output_dir(text: str, flag: str) -> Path:
    """``flag DIR`` must be a directory or creatable as one (checked before any long computation)."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} {text}: exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{flag} {text}: directory is not writable")
        return path
    parent = _existing_ancestor(path)
    if not parent.is_dir():
        raise UsageError(f"{flag} {text}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {text}: cannot create it ({parent} is not writable)")
    return path


def check_output_file(text: str, flag: str) -> Path:
    """``flag FILE`` must name a file that can be written (its directory exists, it is not a directory)."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise UsageError(f"{flag} {text}: is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {text}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{flag} {text}: not writable")
    return path


def _existing_ancestor(path: Path) -> Path:
    for p in [path, *path.absolute().parents]:
        if p.exists():
            return p
    return Path("/")  # pragma: no cover - the root always exists


@contextmanager
def cluster_errors() -> Iterator[None]:
    """Within the block, ``--cluster`` failures become CLI errors: a bad address or a missing Dask install
    is a :class:`UsageError` (exit 2), a lost cluster a :class:`RuntimeFailure` (exit 1); docs/cluster.md."""
    from reservoir.distributed import ClusterError  # Dask itself is imported only when a cluster is opened

    try:
        yield
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    except ImportError as exc:
        raise UsageError(f"--cluster needs Dask distributed: pip install 'asicrc[cluster]' ({exc})") from exc
    except ClusterError as exc:
        raise RuntimeFailure(str(exc)) from exc
