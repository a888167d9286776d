"""The ``--cluster`` / ``[cluster] address`` syntax (docs/cluster.md), checked without importing Dask."""

from __future__ import annotations

import re

__all__ = ["parse_spec"]

#: ``tcp://host:port``, ``tls://host:port`` or ``host:port``.
_ADDRESS = re.compile(r"^(?:(?:tcp|tls)://)?[A-Za-z0-9_.\-\[\]:]+:\d+$")


def parse_spec(spec: str) -> tuple[str, int | None]:
    """``local`` -> ("local", None); ``local:N`` -> ("local", N); an address -> (address, None).

    :class:`ValueError` (one line) on anything else.
    """
    spec = spec.strip()
    if spec == "local" or spec.startswith("local:"):
        _, _, n = spec.partition(":")
        if not n:
            return "local", None
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--cluster local:N needs N >= 1 workers, got {spec!r}")
        return "local", int(n)
    if not _ADDRESS.match(spec):
        raise ValueError(f"--cluster expects local, local:N or tcp://HOST:PORT, got {spec!r}")
    return spec, None
