"""The installed asicrc version, for ``status``, recordings' ``meta.json`` and ``asicrc --version``."""

from __future__ import annotations

import importlib.metadata

#: What :func:`package_version` returns when run from a tree that is not installed (a PEP 440 local version).
UNKNOWN_VERSION = "0+unknown"


def package_version() -> str:
    """The ``asicrc`` distribution's version, or :data:`UNKNOWN_VERSION` when it is not installed."""
    try:
        return importlib.metadata.version("asicrc")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN_VERSION
