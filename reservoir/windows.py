"""Nonce events cut into the slots of a schedule: the one windowing rule of the asic reservoir.

**Slot rule.** Slot ``k`` holds the events with ``starts[k] <= t_ns < starts[k + 1]``; the last slot holds
``starts[-1] <= t_ns < starts[-1] + slot_ns``. A slot therefore lasts until the next slot's setpoint took
effect (the chip keeps counting at slot ``k``'s frequency until then), and its ``duration_ns`` is that real
length, not the nominal ``slot_ns``. Events before the first start or after the end of the last slot belong
to no slot and are left out. ``starts`` must be non-decreasing (a zero-length slot is empty).

Both the asic substrate (``daemon/substrate.py``, starts at the PLL writes) and the live service
(``daemon/live/sources.py``, starts at the plan's sub-slot starts) cut their events with
:func:`window_events`; docs/architecture.md §3.4.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from reservoir.substrate import EventSlot

I64 = NDArray[np.int64]


def slot_bounds(starts_ns: ArrayLike, slot_ns: int) -> tuple[I64, I64]:
    """``(starts, ends)`` (ns) of each slot under the slot rule; ``ValueError`` if starts decrease."""
    starts = np.asarray(starts_ns, dtype=np.int64).reshape(-1)
    if starts.size > 1 and bool(np.any(np.diff(starts) < 0)):
        raise ValueError("slot starts must be non-decreasing")
    ends = np.append(starts[1:], starts[-1] + int(slot_ns)) if starts.size else starts.copy()
    return starts, ends


def window_events(
    t_ns: ArrayLike,
    chip: ArrayLike,
    core: ArrayLike,
    valid: ArrayLike,
    starts_ns: ArrayLike,
    slot_ns: int,
    n_chips: int,
    temperature_c: ArrayLike = np.nan,
) -> list[EventSlot]:
    """One :class:`EventSlot` per start: the events (any order; columns of equal length) in that slot.

    ``temperature_c`` (deg C): a scalar, one value per slot (n_slots,), or per slot and chip
    (n_slots, n_chips). Events keep their order in time (stable for equal timestamps).
    """
    t = np.asarray(t_ns, dtype=np.int64).reshape(-1)
    cols = [np.asarray(c).reshape(-1) for c in (chip, core, valid)]
    if any(len(c) != len(t) for c in cols):
        raise ValueError("event columns differ in length")
    order = np.argsort(t, kind="stable")
    t = t[order]
    ch, co = (c[order].astype(np.int16) for c in cols[:2])
    ok = cols[2][order].astype(bool)
    starts, ends = slot_bounds(starts_ns, slot_ns)
    temp = np.asarray(temperature_c, dtype=np.float64)
    if temp.ndim == 1:
        temp = temp[:, None]
    temps = np.broadcast_to(temp, (len(starts), n_chips))
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, ends, side="left")
    width = ends - starts
    return [
        EventSlot(t[a:b], ch[a:b], co[a:b], ok[a:b], temps[k].copy(), int(starts[k]), int(width[k]))
        for k, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True))
    ]
