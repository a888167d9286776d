"""Timing statistics of event streams against a homogeneous Poisson null, with host-artefact detection.

Public API: :func:`compute_stream`, :func:`decide`, :func:`analyze_stream`, :class:`StreamResult`,
:class:`TooFewEvents`, :func:`holm`, :func:`benjamini_hochberg`; generators with known truth in
:mod:`reservoir.timing.synth`; the HTML report in :mod:`reservoir.timing.report`.
"""

from reservoir.timing.core import benjamini_hochberg, holm
from reservoir.timing.verdict import (
    ALPHA,
    MIN_EVENTS,
    StreamResult,
    StreamStats,
    TooFewEvents,
    analyze_stream,
    compute_stream,
    decide,
    summary,
)

__all__ = [
    "ALPHA",
    "MIN_EVENTS",
    "StreamResult",
    "StreamStats",
    "TooFewEvents",
    "analyze_stream",
    "benjamini_hochberg",
    "compute_stream",
    "decide",
    "holm",
    "summary",
]
