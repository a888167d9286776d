"""Generate the asicrc Grafana dashboards (``grafana/dashboards/*.json``) from one Python description.

The JSON files are what Grafana loads; this script is their source, so layout, the datasource variable,
units and uids stay consistent. After editing, regenerate and commit both::

    .venv/bin/python grafana/generate.py           # rewrite grafana/dashboards/*.json
    .venv/bin/python grafana/generate.py --check   # exit 1 if a file differs from what would be written

Metric names are the ones ``daemon/metrics.py`` exports (docs/operations.md). Quantities the daemon does not
export are computed in PromQL from what it does:

- expected nonce rate (Hz) = clock (Hz) x 894 hashes per clock per chip (BM1366: 112 cores x 8 small cores,
  docs/protocol.md) x chips / (ticket difficulty x 2^32);
- nominal hash rate (H/s) = clock (Hz) x 894 x chips; measured hash rate = rate of
  ``asicrc_estimated_hashes_total`` (valid nonces x ticket difficulty x 2^32);
- efficiency (J/TH) = input power (W) / (hash rate (H/s) / 1e12).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Folder of the generated dashboards.
OUT_DIR = Path(__file__).resolve().parent / "dashboards"
#: Grafana dashboard JSON schema version written (Grafana 10.x/11.x).
SCHEMA_VERSION = 39
#: Uid of the provisioned datasource (grafana/provisioning/datasources/asicrc.yaml): the variable's default.
DATASOURCE_UID = "asicrc-prometheus"
DATASOURCE_NAME = "asicrc Prometheus"
#: Every panel and target reads from the dashboard's datasource variable.
DS: dict[str, str] = {"type": "prometheus", "uid": "${datasource}"}
#: Hashes per clock cycle of one BM1366 (112 cores x 8 small cores, rounded as in docs/protocol.md).
HASHES_PER_CLOCK = 894
#: Hashes per share at difficulty 1.
DIFF1_HASHES = 4294967296
#: Tag shared by every asicrc dashboard (dashboard links use it).
TAG = "asicrc"

#: Label selectors: every host (instance) selected; plus every board selected.
SEL_I = 'instance=~"$instance"'
SEL_B = 'instance=~"$instance", board=~"$board"'
RI = "$__rate_interval"
LE_1MS = ', le="0.001"'
BY = "instance, job, board"

#: Panel size on Grafana's 24-column grid (height in grid rows of 30 px).
PANEL_H = 8


def m(name: str, sel: str = SEL_B) -> str:
    """``name{sel}``."""
    return f"{name}{{{sel}}}"


def rate(name: str, sel: str = SEL_B, by: str | None = BY) -> str:
    """Per-second rate of a counter, summed ``by`` labels (None: no aggregation)."""
    inner = f"rate({m(name, sel)}[{RI}])"
    return inner if by is None else f"sum by ({by}) ({inner})"


def expected_rate(sel: str = SEL_B) -> str:
    """Expected nonce rate of a board (Hz) from its clock, chips and ticket difficulty."""
    return (
        f"{m('asicrc_frequency_hertz', sel)} * {HASHES_PER_CLOCK} * {m('asicrc_board_chips', sel)}"
        f" / ({DIFF1_HASHES} * {m('asicrc_ticket_difficulty', sel)})"
    )


def nominal_hashrate(sel: str = SEL_B) -> str:
    """Nominal hash rate of a board (H/s): clock x 894 x chips."""
    return f"{m('asicrc_frequency_hertz', sel)} * {HASHES_PER_CLOCK} * {m('asicrc_board_chips', sel)}"


def invalid_fraction(sel: str = SEL_B, by: str = BY) -> str:
    """Fraction of nonces failing the share check over the rate window."""
    return f"{rate('asicrc_invalid_nonces_total', sel, by)} / {rate('asicrc_nonces_total', sel, by)}"


@dataclass
class Target:
    """One PromQL query of a panel; ``legend`` is Grafana's legendFormat."""

    expr: str
    legend: str = ""
    instant: bool = False
    fmt: str = "time_series"


@dataclass
class Panel:
    """A panel: ``kind`` is the Grafana panel type; ``unit`` a Grafana unit id; ``w`` columns of 24."""

    title: str
    kind: str
    unit: str
    targets: list[Target]
    description: str = ""
    w: int = 12
    h: int = PANEL_H
    min: float | None = None
    max: float | None = None
    extra_options: dict[str, Any] = field(default_factory=dict)
    mappings: list[dict[str, Any]] = field(default_factory=list)
    thresholds: list[tuple[float | None, str]] | None = None


def ts(title: str, unit: str, *targets: Target, desc: str = "", w: int = 12, **kw: Any) -> Panel:
    return Panel(title, "timeseries", unit, list(targets), desc, w, **kw)


def stat(title: str, unit: str, *targets: Target, desc: str = "", w: int = 4, **kw: Any) -> Panel:
    return Panel(title, "stat", unit, list(targets), desc, w, h=4, **kw)


T = Target
UP_MAPPING = [{"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up"}}}]
TEMP_THRESHOLDS: list[tuple[float | None, str]] = [(None, "green"), (70.0, "orange"), (85.0, "red")]
LEG_B = "{{instance}} {{board}}"


def _thresholds(steps: list[tuple[float | None, str]] | None) -> dict[str, Any]:
    steps = steps or [(None, "green")]
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for v, c in steps]}


def _panel_json(p: Panel, pid: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "unit": p.unit,
        "thresholds": _thresholds(p.thresholds),
        "mappings": p.mappings,
    }
    defaults["color"] = {"mode": "palette-classic" if p.kind == "timeseries" else "thresholds"}
    if p.min is not None:
        defaults["min"] = p.min
    if p.max is not None:
        defaults["max"] = p.max
    if p.kind == "timeseries":
        defaults["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    options: dict[str, Any]
    if p.kind == "timeseries":
        options = {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "none"},
        }
    elif p.kind in ("stat", "bargauge"):
        options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
        if p.kind == "stat":
            options |= {"colorMode": "value", "graphMode": "area", "textMode": "auto", "justifyMode": "auto"}
        else:
            options |= {"orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
    elif p.kind == "heatmap":
        options = {
            "calculate": False,
            "yAxis": {"axisPlacement": "left", "unit": p.unit},
            "rowsFrame": {"layout": "auto"},
            "color": {"mode": "scheme", "scheme": "Oranges", "scale": "exponential", "exponent": 0.5},
            "cellGap": 1,
            "filterValues": {"le": 1e-9},
            "tooltip": {"show": True, "yHistogram": True},
            "legend": {"show": True},
        }
    elif p.kind == "table":
        options = {"showHeader": True}
    else:
        raise ValueError(f"unknown panel kind {p.kind}")
    options |= p.extra_options
    targets = []
    for i, t in enumerate(p.targets):
        tj: dict[str, Any] = {"datasource": DS, "refId": chr(ord("A") + i), "expr": t.expr}
        tj |= {"legendFormat": t.legend or "__auto", "range": not t.instant, "instant": t.instant}
        tj["format"] = t.fmt
        targets.append(tj)
    out: dict[str, Any] = {"id": pid, "type": p.kind, "title": p.title, "description": p.description}
    out |= {"datasource": DS, "gridPos": {"h": p.h, "w": p.w, "x": x, "y": y}}
    out |= {"fieldConfig": {"defaults": defaults, "overrides": []}, "options": options, "targets": targets}
    if p.kind == "table":
        out["transformations"] = [
            {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True}}}
        ]
    return out


def _layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Place panels left to right, wrapping at 24 columns; ids 1, 2, ... in order."""
    out, x, y, row_h = [], 0, 0, 0
    for pid, p in enumerate(panels, start=1):
        if x + p.w > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(_panel_json(p, pid, x, y))
        x, row_h = x + p.w, max(row_h, p.h)
    return out


def _var_datasource() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {"selected": False, "text": DATASOURCE_NAME, "value": DATASOURCE_UID},
        "hide": 0,
        "refresh": 1,
        "regex": "",
        "options": [],
    }


def _var_query(name: str, label: str, query: str, *, multi: bool) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": f"{name}-variable"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]} if multi else {},
        "hide": 0,
        "regex": "",
        "options": [],
    }


#: Template variable queries (Grafana's label_values(); run against Prometheus in the system test).
VAR_INSTANCE = "label_values(asicrc_build_info, instance)"
VAR_BOARD = 'label_values(asicrc_board_up{instance=~"$instance"}, board)'


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], *, board: str | None
) -> dict[str, Any]:
    """Dashboard JSON; ``board`` is None (no board variable), "single" or "multi"."""
    variables = [_var_datasource(), _var_query("instance", "Host", VAR_INSTANCE, multi=True)]
    if board is not None:
        variables.append(_var_query("board", "Board", VAR_BOARD, multi=board == "multi"))
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": []},
        "links": [
            {
                "type": "dashboards",
                "tags": [TAG],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "title": "asicrc",
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": variables},
        "panels": _layout(panels),
    }


def fleet() -> dict[str, Any]:
    """Every board of every selected host: totals, per-board rates, health, recorder."""
    i = SEL_I
    hashes = f"sum(rate({m('asicrc_estimated_hashes_total', i)}[{RI}]))"
    panels = [
        stat("Boards up", "none", T(f"sum({m('asicrc_board_up', i)})", "up"),
             T(f"count({m('asicrc_board_up', i)})", "configured"), desc="Connected boards / all boards."),
        stat("Hash rate", "Hs", T(hashes, "measured"),
             desc="Hashes estimated from valid nonces (ticket difficulty x 2^32), all boards."),
        stat("Power", "watt", T(f"sum({m('asicrc_power_watts', i)})", "input"), desc="Board input power."),
        stat("Efficiency", "suffix: J/TH", T(f"sum({m('asicrc_power_watts', i)}) / ({hashes} / 1e12)", "J"),
             desc="Input power over measured hash rate (joules per terahash)."),
        stat("Hottest chip", "celsius", T(f"max({m('asicrc_chip_temperature_celsius', i)})", "max"),
             thresholds=TEMP_THRESHOLDS),
        stat("Recorder", "none", T(f"min({m('asicrc_recorder_up', i)})", "recorder"), mappings=UP_MAPPING,
             desc="up while every host's recorder writes without errors."),
        ts("Nonce rate by board", "hertz", T(rate("asicrc_nonces_total", i), LEG_B), min=0),
        ts("Nonce rate / expected", "percentunit",
           T(f"{rate('asicrc_nonces_total', i)} / ({expected_rate(i)})", LEG_B),
           desc="Measured / expected (clock x 894 x chips / (ticket difficulty x 2^32)); 100 % is nominal."),
        ts("Invalid fraction by board", "percentunit", T(invalid_fraction(i), LEG_B), min=0),
        ts("Chip temperature by board", "celsius", T(m("asicrc_chip_temperature_celsius", i), LEG_B),
           thresholds=TEMP_THRESHOLDS),
        ts("Power by board", "watt", T(m("asicrc_power_watts", i), LEG_B), min=0),
        ts("Efficiency by board", "suffix: J/TH",
           T(f"{m('asicrc_power_watts', i)} / ({rate('asicrc_estimated_hashes_total', i)} / 1e12)", LEG_B),
           desc="Input power over measured hash rate."),
        ts("Link errors", "cps", T(rate("asicrc_crc_errors_total", i), "CRC {{board}}"),
           T(rate("asicrc_reconnects_total", i), "reconnects {{board}}"),
           T(rate("asicrc_bringup_failures_total", i), "bring-up failures {{board}}"), w=8,
           desc="Reply frames dropped for a bad CRC, link reconnections and failed bring-up attempts (a board"
                " that does not come up; reasons in asicrc_bringup_failures_total), per second."),
        ts("Dropped bytes", "Bps", T(rate("asicrc_dropped_bytes_total", i), LEG_B), w=8,
           desc="Bytes discarded by the frame decoder while resynchronising."),
        ts("Safety gate", "cps", T(rate("asicrc_safety_refusals_total", i), "refused {{board}}"),
           T(rate("asicrc_safety_clamps_total", i), "clamped {{board}}"), w=8,
           desc="Setpoints refused or clamped by the safety envelope (reasons in /status)."),
        ts("Recorder rows", "cps", T(rate("asicrc_recorder_rows_total", i, "instance"), "rows {{instance}}"),
           T(rate("asicrc_recorder_queue_dropped_rows_total", i, "instance"), "queue dropped {{instance}}"),
           T(rate("asicrc_pipeline_dropped_rows_total", i, "instance"), "pipeline dropped {{instance}}"),
           w=8, desc="Event rows written and rows dropped by full queues, per second."),
        ts("Recorder write rate", "Bps",
           T(rate("asicrc_recorder_written_bytes_total", i, "instance"), "{{instance}}"), w=8, min=0),
        ts("Recorder errors", "cps",
           T(rate("asicrc_recorder_write_errors_total", i, "instance"), "write errors {{instance}}"),
           T(rate("asicrc_recorder_error_dropped_rows_total", i, "instance"), "rows lost {{instance}}"),
           T(rate("asicrc_recorder_rejected_rows_total", i, "instance"), "rows rejected {{instance}}"),
           w=8, desc="Write failures (disk full, read-only), rows they lost, rows in neither schema."),
        stat("Uptime", "dtdurations", T(f"time() - {m('asicrc_start_time_seconds', i)}", "{{instance}}"),
             w=8, desc="Time since each daemon started."),
        Panel("Build", "table", "none", [T(m("asicrc_build_info", i), "build", instant=True, fmt="table")],
              w=16, h=4, description="asicrc and Python versions per host."),
    ]  # fmt: skip
    return dashboard(
        "asicrc-fleet", "asicrc / Fleet overview", "All boards of the selected hosts.", panels, board=None
    )


def board() -> dict[str, Any]:
    """One board in detail: setpoints, rates vs expected, invalid fraction, temperatures, power, J/TH."""
    hashes = rate("asicrc_estimated_hashes_total")
    power = m("asicrc_power_watts")
    panels = [
        stat("Link", "none", T(m("asicrc_board_up"), "{{board}}"), mappings=UP_MAPPING),
        stat("Chips", "none", T(m("asicrc_board_chips"), "chips")),
        stat("Nonce rate", "hertz", T(rate("asicrc_nonces_total"), "measured")),
        stat("Invalid fraction", "percentunit", T(invalid_fraction(), "invalid")),
        stat("Chip temperature", "celsius", T(m("asicrc_chip_temperature_celsius"), "chip"),
             thresholds=TEMP_THRESHOLDS),
        stat("Efficiency", "suffix: J/TH", T(f"{power} / ({hashes} / 1e12)", "measured")),
        ts("Clock setpoint", "hertz", T(m("asicrc_frequency_hertz"), "clock"), w=8),
        ts("Core voltage setpoint", "volt", T(m("asicrc_core_voltage_volts"), "core"), w=8),
        ts("Ticket difficulty", "none", T(m("asicrc_ticket_difficulty"), "difficulty"), w=8),
        ts("Nonce rate vs expected", "hertz", T(rate("asicrc_nonces_total"), "measured"),
           T(expected_rate(), "expected"),
           desc="Expected = clock x 894 hashes/clock x chips / (ticket difficulty x 2^32)."),
        ts("Nonce rate by chip", "hertz",
           T(rate("asicrc_nonces_total", by="instance, job, board, chip"), "chip {{chip}}"), min=0),
        ts("Invalid fraction", "percentunit", T(invalid_fraction(), "board"),
           T(invalid_fraction(by="instance, job, board, chip"), "chip {{chip}}"), min=0,
           desc="Nonces failing the share check over all nonces."),
        ts("Temperatures", "celsius", T(m("asicrc_chip_temperature_celsius"), "chip"),
           T(m("asicrc_regulator_temperature_celsius"), "regulator"), thresholds=TEMP_THRESHOLDS),
        ts("Input power", "watt", T(power, "power"), w=8, min=0),
        ts("Input voltage", "volt", T(m("asicrc_input_voltage_volts"), "input"), w=8),
        ts("Hash rate", "Hs", T(hashes, "measured"), T(nominal_hashrate(), "nominal"), w=8, min=0,
           desc="Measured from valid nonces; nominal = clock x 894 x chips."),
        ts("Efficiency", "suffix: J/TH", T(f"{power} / ({hashes} / 1e12)", "measured"),
           T(f"{power} / (({nominal_hashrate()}) / 1e12)", "nominal"),
           desc="Joules per terahash: input power over measured and nominal hash rate."),
        ts("Link and safety", "cps", T(rate("asicrc_crc_errors_total"), "CRC"),
           T(rate("asicrc_reconnects_total"), "reconnects"),
           T(rate("asicrc_safety_refusals_total"), "refused"),
           T(rate("asicrc_safety_clamps_total"), "clamped"), desc="Events per second."),
    ]  # fmt: skip
    return dashboard(
        "asicrc-board",
        "asicrc / Board detail",
        "One board: setpoints, rates, sensors.",
        panels,
        board="single",
    )


def timing() -> dict[str, Any]:
    """Inter-arrival times of nonces from the asicrc_nonce_interval_seconds Histogram."""
    bucket = "asicrc_nonce_interval_seconds_bucket"
    q = "sum by (le, instance, job, board) (rate(" + m(bucket) + f"[{RI}]))"
    mean = f"{rate('asicrc_nonce_interval_seconds_sum')} / {rate('asicrc_nonce_interval_seconds_count')}"
    panels = [
        Panel("Inter-arrival time", "heatmap", "s",
              [T(f"sum by (le) (increase({m(bucket)}[{RI}]))", "{{le}}", fmt="heatmap")], w=24, h=10,
              description="Intervals between consecutive nonces of the selected boards, per bucket."),
        ts("Inter-arrival quantiles", "s", *(T(f"histogram_quantile({p}, {q})", f"p{round(p * 100)} {LEG_B}")
                                             for p in (0.5, 0.9, 0.99)),
           desc="From the histogram buckets (1-2-5 from 100 us to 100 s): interpolated within a bucket."),
        ts("Mean interval vs expected", "s", T(mean, "measured " + LEG_B), T(f"1 / ({expected_rate()})",
           "expected " + LEG_B), desc="Measured mean interval and 1 / expected nonce rate."),
        ts("Median / mean", "none", T(f"histogram_quantile(0.5, {q}) / ({mean})", LEG_B),
           desc="A Poisson process gives ln 2 = 0.693; bursts push it down, regular arrivals up."),
        ts("Intervals under 1 ms", "percentunit",
           T(f"{rate(bucket, SEL_B + LE_1MS)} / {rate('asicrc_nonce_interval_seconds_count')}",
             LEG_B), min=0, desc="Fraction of intervals shorter than 1 ms (replies batched by the link)."),
    ]  # fmt: skip
    return dashboard(
        "asicrc-timing", "asicrc / Nonce timing", "Inter-arrival times of nonces.", panels, board="multi"
    )


def plan() -> dict[str, Any]:
    """Progress of the plans (sweeps, holds...) running on the boards, and the setpoints they drive."""
    panels = [
        Panel("Plan progress", "bargauge", "percentunit", [T(m("asicrc_plan_progress_ratio"), LEG_B)],
              w=12, h=8, min=0.0, max=1.0, description="Fraction of plan points done."),
        Panel("Time left", "stat", "dtdurations", [T(m("asicrc_plan_eta_seconds"), LEG_B)], w=12, h=8,
              description="Estimated time to the end of the plan."),
        ts("Plan point", "none", T(m("asicrc_plan_point"), "point " + LEG_B),
           T(m("asicrc_plan_points"), "points " + LEG_B), desc="Point in force (0-based) / points."),
        ts("Progress over time", "percentunit", T(m("asicrc_plan_progress_ratio"), LEG_B), min=0, max=1),
        ts("Clock setpoint", "hertz", T(m("asicrc_frequency_hertz"), LEG_B), w=8),
        ts("Core voltage setpoint", "volt", T(m("asicrc_core_voltage_volts"), LEG_B), w=8),
        ts("Ticket difficulty", "none", T(m("asicrc_ticket_difficulty"), LEG_B), w=8),
        ts("Nonce rate / expected at each point", "percentunit",
           T(f"{rate('asicrc_nonces_total')} / ({expected_rate()})", LEG_B), w=24,
           desc="Measured over expected nonce rate as the plan steps through its points."),
    ]  # fmt: skip
    return dashboard(
        "asicrc-plan", "asicrc / Plan progress", "Plans running on the boards.", panels, board="multi"
    )


def dashboards() -> list[dict[str, Any]]:
    """Every dashboard, in file order."""
    return [fleet(), board(), timing(), plan()]


def render_all() -> dict[str, str]:
    """{file name: JSON text} of every dashboard."""
    return {f"{d['uid']}.json": json.dumps(d, indent=2, sort_keys=False) + "\n" for d in dashboards()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--check", action="store_true", help="exit 1 when a dashboard file is out of date")
    args = ap.parse_args(argv)
    stale = []
    for name, text in render_all().items():
        path = OUT_DIR / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            OUT_DIR.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"out of date (run grafana/generate.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
