"""Per-stream statistics and the verdict: ``poisson``, ``non-poisson`` (with a kind) or ``artifact``.

Usage::

    res = analyze_stream(times_ns)                     # one stream, family = its own tests
    results = decide([compute_stream(t, name=k) for k, t in streams.items()], correction="holm")

Every test of every stream enters one multiple-comparison family (Holm by default: the family-wise error
rate is at most ``alpha``; Benjamini-Hochberg controls the false-discovery rate instead). A test *rejects*
when its adjusted p < alpha and, for the artefact detectors, its effect gate passes. A stream with an
artefact is re-tested beyond it (:mod:`reservoir.timing.beyond`, a second family at alpha / 5): ``artifact``
when nothing remains, else ``non-poisson`` with the remaining kind and the artefacts still listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats as sps

from reservoir.timing import artifacts, beyond, core, nulls, periodic
from reservoir.timing.explain import summary as summary  # re-exported: reservoir.timing.verdict.summary

I64 = NDArray[np.int64]
F64 = NDArray[np.float64]

#: Family-wise (or FDR) level of the verdict.
ALPHA = 0.05
#: Fewest events a stream needs (20 whole windows for the Fano curve, 5+ lags for Ljung-Box).
MIN_EVENTS = 30
#: Interval-shuffle surrogates per stream (evidence: does the Fano curve survive shuffling the intervals?)
SHUFFLE_SURROGATES = 39
#: Fano windows at or above this many mean intervals count as "long" (drift / modulation shows there).
LONG_WINDOW_MULTIPLE = 10.0

ARTIFACT_TESTS = ("timestamp-quantum", "polling", "dead-time")
STRUCTURE_TESTS = ("cv", "fano", "ks", "ad", "ljung-box")

Verdict = Literal["poisson", "non-poisson", "artifact"]


class TooFewEvents(ValueError):
    """A stream holds fewer events than :data:`MIN_EVENTS`."""


@dataclass
class StreamStats:
    """Statistics of one stream before the multiple-comparison decision. Rates in Hz, times in s."""

    name: str
    n_events: int
    duration_s: float
    rate_hz: float
    mean_interval_s: float
    cv: float
    cv_null95: tuple[float, float]
    fano: dict[float, float]
    fano_null95: dict[float, tuple[float, float]]
    fano_p: dict[float, float]
    fano_shuffle95: dict[float, tuple[float, float]]
    ks_d: float
    ad_a2: float
    ljung_box_q: float
    acf: list[float]
    pvalues: dict[str, float]
    detections: dict[str, artifacts.Detection]
    extra: dict[str, Any] = field(default_factory=dict)
    #: window-count tests at the resolution of the largest gated artefact (None: no artefact candidate)
    coarse: beyond.Beyond | None = None
    #: the strongest periodic component of the long-window counts: tells modulation from drift
    periodicity: periodic.Periodicity | None = None

    @property
    def rate_change(self) -> str:
        """``modulation`` when the counts carry a periodic component, else ``rate-drift``."""
        p = self.periodicity
        return "modulation" if p is not None and p.periodic else "rate-drift"


@dataclass
class StreamResult:
    """A stream's statistics plus its verdict; :meth:`to_json` is the ``asicrc analyze --json`` object."""

    stats: StreamStats
    p_adjusted: dict[str, float]
    rejected: list[str]
    verdict: Verdict
    kind: str | None
    artifacts: list[dict[str, Any]]
    #: when an artefact is called: the tests of the stream beyond it (``structure``: any rejected, ``kind``)
    beyond_artifact: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: n_events, rate_hz, cv, cv_null95, fano, ks_p, verdict, kind, artifacts, ..."""
        s = self.stats

        def key(w: float) -> str:
            return f"{w:.6g}"

        return {
            "stream": s.name,
            "n_events": s.n_events,
            "duration_s": s.duration_s,
            "rate_hz": s.rate_hz,
            "cv": s.cv,
            "cv_null95": list(s.cv_null95),
            "fano": {key(w): v for w, v in s.fano.items()},
            "fano_null95": {key(w): list(v) for w, v in s.fano_null95.items()},
            "fano_shuffle95": {key(w): list(v) for w, v in s.fano_shuffle95.items()},
            "ks_d": s.ks_d,
            "ks_p": s.pvalues["ks"],
            "ad_a2": s.ad_a2,
            "ad_p": s.pvalues["ad"],
            "ljung_box_q": s.ljung_box_q,
            "ljung_box_p": s.pvalues["ljung-box"],
            "acf": s.acf,
            "pvalues": s.pvalues,
            "p_adjusted": self.p_adjusted,
            "rejected": self.rejected,
            "verdict": self.verdict,
            "summary": summary(self),
            "kind": self.kind,
            "artifacts": self.artifacts,
            "beyond_artifact": self.beyond_artifact,
            "periodicity": asdict(s.periodicity) if s.periodicity is not None else None,
            "evidence": {k: asdict(d) for k, d in s.detections.items()},
            **s.extra,
        }


def _shuffle_band(
    gaps: F64, windows: Sequence[float], n_sur: int, rng: np.random.Generator
) -> dict[float, tuple[float, float]]:
    """2.5-97.5 % range of the Fano factor over interval-shuffle surrogates (order destroyed)."""
    if n_sur <= 0 or not windows:
        return {}
    vals = np.empty((n_sur, len(windows)))
    for i in range(n_sur):
        t = np.concatenate(([0], np.cumsum(rng.permutation(gaps)))).astype(np.int64)
        for j, w in enumerate(windows):
            vals[i, j] = core.fano(core.window_counts([t], w))
    lo, hi = np.quantile(vals, [0.025, 0.975], axis=0)
    return {w: (float(a), float(b)) for w, a, b in zip(windows, lo, hi)}


def compute_stream(
    times_ns: I64 | Sequence[I64],
    *,
    name: str = "stream",
    read_ids: I64 | None = None,
    mc: bool = True,
    surrogates: int = SHUFFLE_SURROGATES,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> StreamStats:
    """All statistics of one stream of sorted int64 ns timestamps (or a list of contiguous segments).

    ``mc=False`` skips the Monte-Carlo p-values (CV, KS, AD get p = nan, not part of the family) and the
    surrogates: the fast path. ``read_ids`` (one per event, in the order of the segments' events: the
    recording's ``read_id`` column) let the batch detector see which intervals lie inside one read. Raises
    :class:`TooFewEvents` below :data:`MIN_EVENTS` events.
    """
    segs = core.as_segments(times_ns)
    n_events = sum(len(s) for s in segs)
    if n_events < MIN_EVENTS:
        raise TooFewEvents(f"stream {name!r}: {n_events} events, at least {MIN_EVENTS} are needed")
    gi = core.intervals_ns(segs)
    if len(gi) and int(gi.min()) < 0:
        raise ValueError(f"stream {name!r}: timestamps are not sorted")
    g = gi.astype(np.float64) / core.NS
    n = len(g)
    dur = core.duration_s(segs)
    mean = float(np.mean(g))
    rate = n / dur if dur > 0 else float("inf")
    cv = core.cv(g)
    longest = max((int(s[-1]) - int(s[0])) / core.NS for s in segs)
    windows = core.fano_windows(mean, longest)
    fano: dict[float, float] = {}
    fano_p: dict[float, float] = {}
    fano_band: dict[float, tuple[float, float]] = {}
    for w in windows:
        c = core.window_counts(segs, w)
        if len(c) >= core.FANO_MIN_WINDOWS and c.mean() > 0:
            fano[w] = core.fano(c)
            fano_p[w] = core.fano_pvalue(fano[w], len(c))
            fano_band[w] = core.fano_null95(len(c))
    # a zero interval (two events in one host stamp) is read as half a nanosecond, the clock's resolution:
    # Anderson-Darling's log F(0) would be -inf
    xs = np.sort(np.maximum(g, 0.5 / core.NS))
    ks_d = float(core.ks_exp(xs))
    ad_a2 = float(core.ad_exp(xs))
    lb_q, lb_p, acf = core.ljung_box(g)
    nan = float("nan")
    pvalues: dict[str, float] = {
        "cv": nulls.cv_pvalue(cv, n) if mc else nan,
        "fano": min(1.0, min(fano_p.values()) * len(fano_p)) if fano_p else nan,
        "ks": nulls.ks_pvalue(ks_d, n) if mc else nan,
        "ad": nulls.ad_pvalue(ad_a2, n) if mc else nan,
        "ljung-box": lb_p,
    }
    same_read = None
    if read_ids is not None and len(read_ids) == n_events:
        same_read = artifacts.in_read_mask(np.asarray(read_ids, dtype=np.int64), [len(x) for x in segs])
    dets = {
        d.name: d
        for d in (
            artifacts.quantum(gi),
            artifacts.batch_delivery(gi, read_ids, same_read),
            artifacts.dead_time(gi),
        )
    }
    for d in dets.values():
        pvalues[d.name] = d.p
    tau = core.time_rescaled(segs, core.RESCALE_BIN_MULTIPLE * mean)
    rescaling: dict[str, Any] = {"bin_s": core.RESCALE_BIN_MULTIPLE * mean}
    if len(tau) >= MIN_EVENTS:
        tau_d = float(core.ks_exp(np.sort(tau)))
        rescaling.update(cv=core.cv(tau), ks_d=tau_d, ks_p=nulls.ks_pvalue(tau_d, len(tau)) if mc else nan)
    res = [beyond.resolution_s(d) for d in dets.values() if d.gated]
    coarse = beyond.coarse(segs, mean, max(res)) if res else None
    w_per = coarse.min_window_s if coarse is not None else LONG_WINDOW_MULTIPLE * mean
    per = periodic.periodicity(core.window_counts(segs, w_per), w_per)
    rng = np.random.default_rng([seed, n])
    shuffle = _shuffle_band(g * core.NS, list(fano), surrogates if mc else 0, rng)
    return StreamStats(
        name=name,
        n_events=n_events,
        duration_s=dur,
        rate_hz=rate,
        mean_interval_s=mean,
        cv=cv,
        cv_null95=nulls.cv_null95(n) if mc else (nan, nan),
        fano=fano,
        fano_null95=fano_band,
        fano_p=fano_p,
        fano_shuffle95=shuffle,
        ks_d=ks_d,
        ad_a2=ad_a2,
        ljung_box_q=lb_q,
        acf=[float(a) for a in acf],
        pvalues=pvalues,
        detections=dets,
        extra={"time_rescaling": rescaling, **(extra or {})},
        coarse=coarse,
        periodicity=per,
    )


def _kind(s: StreamStats, rejected: set[str]) -> str:
    """The kind of non-Poisson structure, from the rejected tests (see docs/analyze.md)."""
    if "dead-time" in rejected:
        return "regular/dead-time"
    sig_w = [w for w, p in s.fano_p.items() if p * len(s.fano_p) < ALPHA]
    long_high = "fano" in rejected and any(
        s.fano[w] > 1 and w >= LONG_WINDOW_MULTIPLE * s.mean_interval_s for w in sig_w
    )
    if long_high and not ("ljung-box" in rejected and _short_range(s)):
        return s.rate_change
    long_low = "fano" in rejected and any(
        s.fano[w] < 1 and w >= LONG_WINDOW_MULTIPLE * s.mean_interval_s for w in sig_w
    )
    if long_low:  # only a regular source thins the variance of long-window counts; correlation raises it
        return "regular/dead-time"
    if "ljung-box" in rejected:
        return "serial-correlation"
    if ("cv" in rejected and s.cv < 1) or ("fano" in rejected and any(s.fano[w] < 1 for w in sig_w)):
        return "regular/dead-time"
    if "fano" in rejected:
        return s.rate_change
    return "non-exponential"


def _short_range(s: StreamStats) -> bool:
    """True when the interval autocorrelation is gone by lag 5: Ljung-Box over lags 5..10 does not reject
    (p >= 0.01). A drift or a modulation correlates intervals far apart; an interval process that remembers
    only its neighbours does not (and raises the long-window Fano factor to a plateau, not a climb)."""
    n = s.n_events - 1
    r = np.asarray(s.acf[4:10])
    if len(r) < 2:
        return False
    k = np.arange(5, 5 + len(r))
    q = float(n * (n + 2) * np.sum(r**2 / (n - k)))
    return bool(sps.chi2.sf(q, len(r)) >= 0.01)


def decide(
    streams: Sequence[StreamStats],
    *,
    alpha: float = ALPHA,
    correction: Literal["holm", "bh", "none"] = "holm",
) -> list[StreamResult]:
    """Verdicts for several streams with one multiple-comparison family over all their tests."""
    flat: list[tuple[int, str, float]] = []
    for i, s in enumerate(streams):
        for k, p in s.pvalues.items():
            if not np.isnan(p):
                flat.append((i, k, p))
    adj = _adjust([p for _, _, p in flat], correction)
    per: list[dict[str, float]] = [{} for _ in streams]
    for (i, k, _), a in zip(flat, adj):
        per[i][k] = a
    out: list[StreamResult] = []
    for s, padj in zip(streams, per):
        rejected = {k for k, a in padj.items() if a < alpha}
        rejected -= {k for k in ARTIFACT_TESTS if not s.detections[k].gated}
        art = _artifacts(s, rejected)
        if art:
            verdict: Verdict = "artifact"
            kind: str | None = ", ".join(a["name"] for a in art)
        elif rejected:
            verdict, kind = "non-poisson", _kind(s, rejected)
        else:
            verdict, kind = "poisson", None
        out.append(StreamResult(s, padj, sorted(rejected), verdict, kind, art))
    _decide_beyond(out, alpha, correction)
    return out


def _decide_beyond(
    results: list[StreamResult], alpha: float, correction: Literal["holm", "bh", "none"]
) -> None:
    """Second stage, for the streams with an artefact: the window-count tests beyond it, one family over
    those streams at ``alpha`` x :data:`beyond.ALPHA_FRACTION`. A rejection turns ``artifact`` into
    ``non-poisson`` with the kind of what remains; the artefacts stay listed."""
    flat = [
        (i, k, p)
        for i, r in enumerate(results)
        if r.artifacts and r.stats.coarse is not None
        for k, p in r.stats.coarse.pvalues.items()
        if not np.isnan(p)
    ]
    adj = _adjust([p for _, _, p in flat], correction)
    per: dict[int, dict[str, float]] = {}
    for (i, k, _), a in zip(flat, adj):
        per.setdefault(i, {})[k] = a
    level = alpha * beyond.ALPHA_FRACTION
    for i, r in enumerate(results):
        if not r.artifacts:
            continue
        c = r.stats.coarse
        padj = per.get(i, {})
        rej = {k for k, a in padj.items() if a < level}
        info: dict[str, Any] = {"structure": bool(rej), "kind": None, "rejected": sorted(rej)}
        info["p_adjusted"] = padj
        info["level"] = level
        if c is not None:
            info.update(c.to_json())
            if rej:
                info["kind"] = beyond.kind(c, rej, alpha, r.stats.rate_change)
                r.verdict, r.kind = "non-poisson", info["kind"]
        r.beyond_artifact = info


def _adjust(ps: list[float], correction: Literal["holm", "bh", "none"]) -> list[float]:
    if correction == "holm":
        return core.holm(ps)
    if correction == "bh":
        return core.benjamini_hochberg(ps)
    return list(ps)


def _artifacts(s: StreamStats, rejected: set[str]) -> list[dict[str, Any]]:
    """Artefacts called among the rejected tests, each with its evidence; a source dead time is not one."""
    d = s.detections
    out: list[dict[str, Any]] = []
    pol = "polling" in rejected
    qua = "timestamp-quantum" in rejected
    pev = d["polling"].evidence
    # reads that carried several events, or several events per delivery, are batching, not a clock grid
    batched = pev.get("mean_batch_size", 1.0) >= artifacts.POLLING_MIN_BATCH
    batched = batched or bool(pev.get("read_structure_gated"))
    if pol and (batched or not qua):
        out.append(_art(d["polling"]))
    elif qua:
        out.append(_art(d["timestamp-quantum"]))
    if "dead-time" in rejected and d["dead-time"].evidence.get("mechanism") in ("delivery", "link"):
        out.append(_art(d["dead-time"]))
    return out


def _art(d: artifacts.Detection) -> dict[str, Any]:
    return {"name": d.name, "p": d.p, "evidence": d.evidence}


def analyze_stream(times_ns: I64 | Sequence[I64], **kwargs: Any) -> StreamResult:
    """:func:`compute_stream` then :func:`decide` on that stream alone."""
    return decide([compute_stream(times_ns, **kwargs)])[0]
