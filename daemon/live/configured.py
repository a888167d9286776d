"""The daemon's live service from its configuration: ``[live]`` on one supervised board (docs/mqtt.md, "Live
reservoir service"), with its own broker connection built alongside (:func:`~daemon.live.live_connection`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from daemon.config import Config, ConfigError, check_live_board
from daemon.events import Pipeline
from daemon.live.model import LiveModel
from daemon.live.service import LiveService, live_connection
from daemon.live.sources import PlanSource
from daemon.mqtt_link import MqttLink, MqttSettings

if TYPE_CHECKING:
    from daemon.supervisor import BoardSupervisor


def live_from_config(
    cfg: Config,
    sup: BoardSupervisor,
    pipeline: Pipeline,
    registry: CollectorRegistry,
    clock: Callable[[], int],
) -> tuple[LiveService, MqttLink]:
    """The service on ``sup`` (the ``[live] board``) and its broker link; :class:`ConfigError` naming the
    ``live.*`` key when the board runs a plan, the readout file is not a live model, or the readout does not
    match the board's reservoir (chips, features)."""
    lv = cfg.live
    check_live_board(cfg, lv.board, sup.board.safety)
    try:
        model = LiveModel.load(Path(lv.readout))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError("live.readout", f"value {lv.readout!r}: not a LiveModel file ({exc})") from exc
    src = PlanSource(
        model.params, sup, pipeline, voltage_v=lv.voltage_v, ticket_diff=lv.ticket_diff, clock=clock
    )
    try:
        return live_connection(
            MqttSettings.from_config(cfg.mqtt),
            lambda publish: LiveService(
                model, src, publish, registry=registry, clock=clock, queue_size=lv.queue_size
            ),
        )
    except ValueError as exc:
        raise ConfigError(
            "live.readout", f"value {lv.readout!r} does not fit board {lv.board!r}: {exc}"
        ) from exc
