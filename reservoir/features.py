"""Event batches -> reservoir state vectors, and the shot-noise floor of each feature.

Per slot (one virtual node) and per chip the features are (FEATURES order):

* ``count``: events in the slot;
* ``log_iv_mean`` / ``log_iv_std``: mean and standard deviation of log inter-event intervals (log seconds)
  among that chip's events in the slot (0 when fewer than 2 / 3 events);
* ``invalid_frac``: fraction of events failing the share check (0 when empty);
* ``core_spread``: distinct core ids / events (1 for all-distinct; 0 when empty);
* ``temperature``: mean chip temperature during the slot (deg C).

A state row for input step t concatenates its S slots x n_chips x len(FEATURES) values.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from reservoir.substrate import NS_PER_S, EventSlot

F64 = NDArray[np.float64]

FEATURES: tuple[str, ...] = (
    "count",
    "log_iv_mean",
    "log_iv_std",
    "invalid_frac",
    "core_spread",
    "temperature",
)
#: Standard deviation of log(X) for X ~ Exponential: pi / sqrt(6) (a Poisson process's log-interval noise).
LOG_EXP_SD = float(np.pi / np.sqrt(6.0))


def features_per_slot(slots: Sequence[EventSlot], n_chips: int) -> F64:
    """Features (n_slots, n_chips, len(FEATURES)), vectorised over all events of all slots."""
    n_slots = len(slots)
    out = np.zeros((n_slots, n_chips, len(FEATURES)))
    if n_slots == 0:
        return out
    out[:, :, 5] = np.stack([np.asarray(s.temperature_c, dtype=np.float64)[:n_chips] for s in slots])
    sizes = np.array([s.t_ns.size for s in slots])
    if sizes.sum() == 0:
        return out
    slot_idx = np.repeat(np.arange(n_slots), sizes)
    t = np.concatenate([s.t_ns for s in slots]).astype(np.int64)
    chip = np.concatenate([s.chip for s in slots]).astype(np.int64)
    core = np.concatenate([s.core for s in slots]).astype(np.int64)
    valid = np.concatenate([s.valid for s in slots]).astype(bool)
    keep = (chip >= 0) & (chip < n_chips)
    t, chip, core, valid, slot_idx = t[keep], chip[keep], core[keep], valid[keep], slot_idx[keep]
    G = n_slots * n_chips
    g = slot_idx * n_chips + chip
    counts = np.bincount(g, minlength=G).astype(np.float64)
    flat = out.reshape(G, len(FEATURES))
    flat[:, 0] = counts
    nz = counts > 0
    invalid = np.bincount(g, weights=(~valid).astype(np.float64), minlength=G)
    flat[nz, 3] = invalid[nz] / counts[nz]
    # distinct cores per group
    pairs = np.unique(g * 65536 + core)
    distinct = np.bincount(pairs // 65536, minlength=G).astype(np.float64)
    flat[nz, 4] = distinct[nz] / counts[nz]
    # log intervals within each group
    order = np.lexsort((t, g))
    gs, ts = g[order], t[order]
    same = gs[1:] == gs[:-1]
    liv = np.log(np.maximum(np.diff(ts).astype(np.float64) / NS_PER_S, 1e-9))[same]
    gi = gs[1:][same]
    n_iv = np.bincount(gi, minlength=G).astype(np.float64)
    s1 = np.bincount(gi, weights=liv, minlength=G)
    s2 = np.bincount(gi, weights=liv * liv, minlength=G)
    m1 = n_iv >= 1
    flat[m1, 1] = s1[m1] / n_iv[m1]
    m2 = n_iv >= 2
    var = (s2[m2] - s1[m2] ** 2 / n_iv[m2]) / (n_iv[m2] - 1.0)
    flat[m2, 2] = np.sqrt(np.clip(var, 0.0, None))
    return out


def states_from_slots(slots: Sequence[EventSlot], n_steps: int, n_sub: int, n_chips: int) -> F64:
    """State matrix (n_steps, n_sub * n_chips * len(FEATURES)) from n_steps * n_sub consecutive slots."""
    if len(slots) != n_steps * n_sub:
        raise ValueError(
            f"expected {n_steps * n_sub} slots ({n_steps} steps x {n_sub} sub-slots), got {len(slots)}"
        )
    return features_per_slot(slots, n_chips).reshape(n_steps, n_sub * n_chips * len(FEATURES))


def noise_floor(slots: Sequence[EventSlot], n_chips: int) -> dict[str, float]:
    """Expected relative shot noise of the features at the observed mean count per slot and chip.

    count: 1/sqrt(mean count); log-interval mean: (pi/sqrt(6)) / sqrt(count - 1) in log units (absolute);
    invalid fraction: sqrt(p (1 - p) / count) (absolute). Also reports the mean count itself.
    """
    if not slots:
        return {
            "mean_count_per_slot": 0.0,
            "count": float("inf"),
            "log_iv_mean": float("inf"),
            "invalid_frac": 0.0,
        }
    counts = np.array([np.bincount(s.chip, minlength=n_chips)[:n_chips] for s in slots], dtype=np.float64)
    m = float(counts.mean())
    n_inv = sum(int((~s.valid).sum()) for s in slots)
    n_all = max(int(counts.sum()), 1)
    p = n_inv / n_all
    return {
        "mean_count_per_slot": m,
        "count": float(1.0 / np.sqrt(m)) if m > 0 else float("inf"),
        "log_iv_mean": float(LOG_EXP_SD / np.sqrt(m - 1.0)) if m > 1 else float("inf"),
        "invalid_frac": float(np.sqrt(p * (1 - p) / m)) if m > 0 else float("inf"),
    }
