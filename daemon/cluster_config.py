"""``[cluster]`` of the configuration: where ``asicrc bench`` and ``asicrc analyze`` send their tasks.

``address`` is what ``--cluster`` takes (``local``, ``local:N`` or ``tcp://HOST:8786``; "" = no cluster, the
default); ``--cluster`` on the command line overrides it. ``connect_timeout_s`` bounds connecting to the
scheduler and waiting for a worker. See docs/cluster.md. Checking the address does not import Dask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reservoir.cluster_spec import parse_spec


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Dask cluster of the offline commands. Units: s."""

    address: str = ""
    connect_timeout_s: float = field(default=30.0, metadata={"lo": 1.0, "hi": 3600.0, "choices": None})


def cluster_problem(c: ClusterConfig) -> str | None:
    """Why ``c.address`` is not a cluster address (None when it is, or is empty)."""
    if not c.address:
        return None
    try:
        parse_spec(c.address)
    except ValueError as exc:
        return f"value {c.address!r}: {exc}".replace("--cluster expects", "expected").replace(
            "--cluster local:N", "local:N"
        )
    return None
