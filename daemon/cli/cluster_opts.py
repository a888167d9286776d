"""``--cluster`` and the config's ``[cluster]`` for ``asicrc bench`` and ``asicrc analyze`` (docs/cluster.md).

:func:`resolve_cluster` sets ``args.cluster`` (the address to use, or None) and ``args.cluster_timeout_s``:
``--cluster`` wins; without it, ``[cluster] address`` of ``--config FILE`` (when given) applies. Neither
reads a config nor imports Dask when there is nothing to use.
"""

from __future__ import annotations

import argparse

from daemon.cli.errors import UsageError


def resolve_cluster(args: argparse.Namespace, config_applies: bool = True) -> None:
    """Fill ``args.cluster`` / ``args.cluster_timeout_s`` from ``--cluster`` or ``--config``'s ``[cluster]``.

    ``config_applies=False`` (e.g. ``bench -r asic``, whose substrate is on this host) ignores the config's
    ``[cluster]``; an explicit ``--cluster`` is kept for the caller to refuse. A bad config is a
    :class:`UsageError`.
    """
    args.cluster_timeout_s = None
    path = getattr(args, "config", None)
    if not path or not config_applies:
        return
    from daemon.config import ConfigError, load_config

    try:
        section = load_config(path).cluster
    except ConfigError as exc:
        raise UsageError(str(exc)) from exc
    args.cluster_timeout_s = section.connect_timeout_s
    if args.cluster is None and section.address:
        args.cluster = section.address
