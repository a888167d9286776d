"""Optional progress notes from long reservoir loops (batches, stage-1 samples).

Library code calls :func:`note` with a short message; it costs one context-variable lookup when nobody
listens. A front end (the ``asicrc`` command line shows them on a terminal) installs a listener with
:func:`listening` for the duration of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_listener: ContextVar[Callable[[str], None] | None] = ContextVar("reservoir_progress", default=None)


def note(message: str) -> None:
    """Tell the listener (if any) what the current long loop is doing."""
    fn = _listener.get()
    if fn is not None:
        fn(message)


@contextmanager
def listening(fn: Callable[[str], None]) -> Iterator[None]:
    """Within the block, :func:`note` messages go to ``fn``."""
    token = _listener.set(fn)
    try:
        yield
    finally:
        _listener.reset(token)
