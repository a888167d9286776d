"""The torch device of a liquid: ``cpu``, ``cuda`` (or ``cuda:K``) or ``auto`` (docs/spiking.md, "Devices").

``auto`` is ``cuda`` when ``torch.cuda.is_available()``, else ``cpu``. Asking ``cuda`` on a host without it
is a :class:`ValueError` with one clear line (the command line turns it into exit code 2).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import Any, TypeVar

import torch

DEVICES = ("cpu", "cuda", "auto")
T = TypeVar("T")


def check_device_name(name: str) -> None:
    """ValueError unless ``name`` is cpu, auto, cuda or cuda:K (K a non-negative integer)."""
    base, sep, index = str(name).partition(":")
    if base in ("cpu", "auto") and not sep:
        return
    if base == "cuda" and (not sep or index.isdigit()):
        return
    raise ValueError(f"device must be one of {', '.join(DEVICES)} (or cuda:K), got {name!r}")


def resolve_device(name: str = "auto") -> torch.device:
    """The device ``name`` stands for on this host; ValueError when it names CUDA and CUDA is absent."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            built = "built without CUDA" if torch.version.cuda is None else "no usable GPU"
            raise ValueError(
                f"device {name!r}: CUDA is not available on this host (torch {torch.__version__}, {built}); "
                "use cpu or auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this host has {torch.cuda.device_count()} CUDA device(s)")
    return dev


@contextlib.contextmanager
def default_device(dev: torch.device) -> Iterator[None]:
    """Factory functions (``torch.zeros``, ``torch.full``, ...) allocate on ``dev`` inside the block.

    A no-op on the CPU, where torch's device mode would only add per-call overhead to the small-op loops.
    """
    if dev.type == "cpu":
        yield
        return
    with dev:
        yield


def on_device(obj: T, dev: torch.device) -> T:
    """A copy of dataclass ``obj`` with its tensor fields (and those of nested dataclasses) on ``dev``;
    ``obj`` itself on the CPU (tables are built there)."""
    if dev.type == "cpu":
        return obj
    moved: T = _moved(obj, dev)
    return moved


def _moved(obj: Any, dev: torch.device) -> Any:
    changes: dict[str, Any] = {}
    for f in fields(obj):
        val = getattr(obj, f.name)
        if isinstance(val, torch.Tensor):
            changes[f.name] = val.to(dev)
        elif hasattr(val, "__dataclass_fields__"):
            changes[f.name] = _moved(val, dev)
    return replace(obj, **changes)
