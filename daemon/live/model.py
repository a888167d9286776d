"""The live reservoir's model: the reservoir parameters a readout was trained with, and its file.

A :class:`LiveModel` is a readout ``.npz`` (:func:`daemon.collect.save_readout`) whose ``meta.live`` holds the
:class:`LiveParams`; :func:`train_live_model` fits one by running inputs one step per substrate call, as the
live service runs them (docs/mqtt.md, "Live reservoir").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from daemon.collect import load_readout, save_readout
from reservoir.asic import AsicReservoir, input_mask, mask_setpoints
from reservoir.readout import RidgeReadout
from reservoir.substrate import Substrate


@dataclass(frozen=True)
class LiveParams:
    """Reservoir parameters a readout was trained with (stored in the readout file's ``meta.live``).

    ``n_sub`` sub-slots per input of ``slot_ns`` ns each, frequencies in [``f_min``, ``f_max``] MHz, mask
    ``seed``; inputs in [``u_lo``, ``u_hi``] map to [-1, 1]; ``n_chips`` chips of the training board.
    """

    n_sub: int = 4
    f_min: float = 400.0
    f_max: float = 575.0
    slot_ns: int = 40_000_000
    seed: int = 0
    u_lo: float = 0.0
    u_hi: float = 1.0
    n_chips: int = 1

    def scale(self, u: float) -> float:
        """``u`` mapped from [u_lo, u_hi] to [-1, 1] (clipped)."""
        span = self.u_hi - self.u_lo
        x = 2.0 * (u - self.u_lo) / span - 1.0 if span > 0 else 0.0
        return float(min(1.0, max(-1.0, x)))

    def setpoints(self, x: float) -> np.ndarray:
        """Frequency setpoints (n_sub,) in MHz of one input ``x`` already scaled to [-1, 1] (the same mask
        and mapping as :meth:`reservoir`, without a substrate)."""
        mask = input_mask(self.seed, self.n_sub, 1)
        return mask_setpoints(np.array([[x]]), mask, self.f_min, self.f_max)

    def reservoir(self, substrate: Substrate) -> AsicReservoir:
        """The :class:`AsicReservoir` (one input) these parameters describe, on ``substrate``."""
        return AsicReservoir(substrate, 1, self.n_sub, self.f_min, self.f_max, self.slot_ns, self.seed)


@dataclass(frozen=True)
class LiveModel:
    """A readout plus the reservoir parameters its states came from."""

    params: LiveParams
    readout: RidgeReadout

    def save(self, path: Path) -> None:
        """As a readout ``.npz`` (:func:`daemon.collect.save_readout`) with ``meta.live`` = the params."""
        save_readout(path, self.readout, meta={"live": asdict(self.params)})

    @classmethod
    def load(cls, path: Path) -> LiveModel:
        """Inverse of :meth:`save`; ``ValueError`` when the file has no live parameters."""
        f = load_readout(path)
        live = f.meta.get("live")
        if not isinstance(live, dict):
            raise ValueError(f"{path}: readout has no live reservoir parameters (meta.live)")
        return cls(LiveParams(**live), f.readout)


def train_live_model(
    substrate: Substrate,
    u: Sequence[float],
    y: Sequence[float],
    params: LiveParams,
    *,
    alpha: float | str = "gcv",
    washout: int = 0,
) -> LiveModel:
    """Run ``u`` one step per substrate call (as the live service does) and fit the readout on ``y``."""
    states = live_states(substrate, u, params)
    readout = RidgeReadout(alpha=alpha).fit(states[washout:], np.asarray(y, dtype=np.float64)[washout:])
    return LiveModel(params, readout)


def live_states(
    substrate: Substrate,
    u: Sequence[float],
    params: LiveParams,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """The state row (one substrate call) of each input of ``u``, as the live service runs them;
    ``progress(i)`` after each step."""
    res = params.reservoir(substrate)
    rows = []
    for i, v in enumerate(u):
        rows.append(res.run(np.array([[params.scale(float(v))]])))
        if progress is not None:
            progress(i + 1)
    return np.vstack(rows)
