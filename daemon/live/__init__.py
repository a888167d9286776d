"""The live reservoir service (docs/mqtt.md, "Live reservoir"): MQTT inputs drive a board, a readout predicts.

:mod:`daemon.live.model` (the reservoir parameters and the model file), :mod:`daemon.live.sources` (one
input step on a board -> a state row: :class:`SubstrateSource`, :class:`PlanSource`) and
:mod:`daemon.live.service` (the input queue, metrics and broker connection). The command line is
``asicrc live`` (``daemon/cli/live_cmd.py``).
"""

from daemon.live.configured import live_from_config
from daemon.live.model import LiveModel, LiveParams, live_states, train_live_model
from daemon.live.service import (
    LATENCY_BUCKETS,
    LIVE_QUEUE,
    STEP_TIMEOUT_S,
    LiveMetrics,
    LiveService,
    live_connection,
    parse_input,
    run_live,
)
from daemon.live.sources import PLAN_TAIL_S, PlanSource, StateSource, SubstrateSource

__all__ = [
    "LATENCY_BUCKETS",
    "LIVE_QUEUE",
    "PLAN_TAIL_S",
    "STEP_TIMEOUT_S",
    "LiveMetrics",
    "LiveModel",
    "LiveParams",
    "LiveService",
    "PlanSource",
    "StateSource",
    "SubstrateSource",
    "live_connection",
    "live_from_config",
    "live_states",
    "parse_input",
    "run_live",
    "train_live_model",
]
