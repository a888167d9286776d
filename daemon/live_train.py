"""Training a live readout on an emulated board (``asicrc live train``; docs/mqtt.md).

Uniform random inputs in [0, 1] run through the board one input step per substrate call, as the live service
runs them; the readout is fitted on the input delayed by ``delay`` steps after a washout. The fit quality is
the NRMSE of a first fit on the training steps and on the held-out last ``holdout`` fraction; the model
returned is then fitted on every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from daemon.config import SimulateConfig
from daemon.live import LiveModel, LiveParams, live_states
from reservoir.readout import RidgeReadout
from reservoir.tasks.base import nrmse


def fit_quality(states: Any, y: Any, holdout: float) -> dict[str, Any]:
    """NRMSE of a gcv ridge fit on the training part, in sample and on the held-out last ``holdout``."""
    n = len(y)
    n_hold = round(n * holdout)
    if n - n_hold < 2:
        n_hold = 0
    cut = n - n_hold
    first = RidgeReadout(alpha="gcv").fit(states[:cut], y[:cut])
    train = nrmse(first.predict(states[:cut]), y[:cut])
    held = nrmse(first.predict(states[cut:]), y[cut:]) if n_hold >= 2 else None
    return {
        "train_nrmse": train,
        "holdout_nrmse": held if held is None or np.isfinite(held) else None,
        "n_train": cut,
        "n_holdout": n_hold,
    }


def train_on_emulator(
    params: LiveParams,
    *,
    steps: int,
    delay: int,
    washout: int,
    holdout: float,
    time_scale: float,
    progress: Callable[[int], None] | None = None,
) -> tuple[LiveModel, dict[str, Any]]:
    """A LiveModel trained on an emulated board of ``params.n_chips`` chips (inputs and mask seeded by
    ``params.seed``, the emulator by ``params.seed + 1``) and its :func:`fit_quality`; ``progress(i)`` after
    each step."""
    from daemon.substrate import BoardSubstrate  # the emulator and the supervisor: imported when training

    u = np.random.default_rng(params.seed).uniform(0.0, 1.0, steps)
    y = np.roll(u, delay)  # the first `delay` targets wrap around: inside the washout
    sim = SimulateConfig(chips=params.n_chips, time_scale=time_scale, seed=params.seed + 1)
    washout = max(washout, delay)
    with BoardSubstrate(sim=sim) as substrate:
        states = live_states(substrate, list(u), params, progress=progress)
    fit = fit_quality(states[washout:], y[washout:], holdout)
    model = LiveModel(params, RidgeReadout(alpha="gcv").fit(states[washout:], y[washout:]))
    return model, fit
