"""The shrunk daemon timing every system test starts from, as TOML text, with per-test overrides."""

from __future__ import annotations

import json

#: Ramps at 4 GHz/s, 50 ms control ticks, reconnects in 0.1-0.4 s, 0.2 s flushes, no fsync: the shipped
#: defaults' behaviour in a fraction of their time (each promise scales with the configured value).
FAST: dict[str, dict[str, object]] = {
    "safety": {"freq_step_rate_mhz_s": 4000.0, "cool_down_s": 0.5, "brownout_recover_s": 0.3},
    "timing": {
        "control_tick_s": 0.05,
        "job_interval_s": 0.5,
        "telemetry_interval_s": 0.1,
        "status_interval_s": 0.25,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
    },
    "recorder": {"flush_interval_s": 0.2, "fsync_interval_s": 0.0},
}


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for the plain values used here
    raise TypeError(f"no TOML rendering for {v!r}")


def fast_config(**overrides: dict[str, object]) -> str:
    """TOML of :data:`FAST` with ``overrides`` merged per section, e.g. ``timing={"silence_timeout_s": 3.0},
    http={"enabled": False}``; append ``[[plans]]`` text after it."""
    sections = {name: dict(keys) for name, keys in FAST.items()}
    for name, keys in overrides.items():
        sections.setdefault(name, {}).update(keys)
    lines: list[str] = []
    for name, keys in sections.items():
        lines += ["", f"[{name}]", *(f"{k} = {_value(v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"
