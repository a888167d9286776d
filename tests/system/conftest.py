"""The system tier's shared fixtures, registered once here (test modules use them by name, never import them):
a real ``mosquitto`` (three configurations), a real ``prometheus`` and a metrics server, a real Dask
scheduler with two workers, and the fault campaign's daemon child."""

from __future__ import annotations

from tests.system.daemon_child import child_factory
from tests.system.dask_fixture import dask_cluster, dask_cluster_own
from tests.system.mqtt_fixture import mosquitto, mosquitto_auth, mosquitto_persistent
from tests.system.prom_fixture import metrics_server, prometheus_factory

__all__ = [
    "child_factory",
    "dask_cluster",
    "dask_cluster_own",
    "metrics_server",
    "mosquitto",
    "mosquitto_auth",
    "mosquitto_persistent",
    "prometheus_factory",
]
