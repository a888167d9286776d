"""Progress of long command-line work on stderr (rich), never on stdout.

Shown only when stderr is a terminal and ``--quiet`` was not given; otherwise every call is a no-op, so
piped or logged stderr stays free of control codes. The display is transient: it is erased when the work
is done, leaving the result (stdout) and any log lines. Close it before printing the result: stdout and
stderr are often the same terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sized
from types import TracebackType
from typing import TextIO, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

T = TypeVar("T")


class Feedback:
    """A spinner with the current step and the elapsed time, plus bars for counted loops."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = not quiet and callable(isatty) and bool(isatty())
        self._progress: Progress | None = None
        self._step: TaskID | None = None
        self._main = ""

    def __enter__(self) -> Feedback:
        if self.enabled:
            progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[count]}"),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
                transient=True,
                redirect_stdout=False,  # the result goes to the real stdout, never into the display
                redirect_stderr=False,
            )
            progress.start()
            self._progress = progress
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Erase the display (idempotent)."""
        progress, self._progress, self._step = self._progress, None, None
        if progress is not None:
            progress.stop()

    def step(self, description: str) -> None:
        """Show ``description`` as the current step (a spinner and the time since the first step)."""
        self._main = description
        self._show(description)

    def detail(self, note: str) -> None:
        """Add ``note`` (an inner loop: a batch, a sample) to the current step."""
        self._show(f"{self._main} - {note}" if self._main else note)

    def _show(self, description: str) -> None:
        progress = self._progress
        if progress is None:
            return
        if self._step is None:
            self._step = progress.add_task(description, total=None, count="")
        else:
            progress.update(self._step, description=description)

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Iterate ``items``, advancing a bar labelled ``description`` (``total`` defaults to len(items))."""
        progress = self._progress
        if progress is None:
            yield from items
            return
        if total is None and isinstance(items, Sized):
            total = len(items)
        of = "" if total is None else f"/{total}"
        task = progress.add_task(description, total=total, count=f"0{of}")
        try:
            for done, item in enumerate(items, 1):
                yield item
                progress.update(task, advance=1, count=f"{done}{of}")
        finally:
            progress.remove_task(task)
