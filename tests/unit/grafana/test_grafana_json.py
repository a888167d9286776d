"""Grafana dashboards and provisioning: well-formed JSON, stable unique uids and panel ids, every panel on the
datasource variable with a unit, every metric a dashboard queries exported by daemon/metrics.py, PromQL that
promtool parses, and dashboard files up to date with grafana/generate.py.

The helpers :func:`load_dashboards`, :func:`panel_queries`, :func:`variable_queries` and :func:`substitute`
are reused by tests/system/test_grafana_queries.py, which runs every query against a real Prometheus.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from daemon.metrics import make_registry, render
from daemon.state import DaemonState, PlanProgress
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "grafana"
DASHBOARD_DIR = GRAFANA / "dashboards"
#: Dashboards the project promises: fleet, board detail, timing, plan progress.
EXPECTED_UIDS = {"asicrc-fleet", "asicrc-board", "asicrc-timing", "asicrc-plan"}
#: What each panel's and target's datasource must be: the dashboard's datasource variable.
DS_REF = {"type": "prometheus", "uid": "${datasource}"}
#: Grafana unit ids the dashboards may use (grafana-data valueFormats categories); ``suffix:`` units too.
KNOWN_UNITS = {
    "none", "short", "percentunit", "hertz", "volt", "celsius", "watt", "s", "ms", "dtdurations", "Hs",
    "cps", "Bps", "bytes", "decbytes",
}  # fmt: skip
#: Grafana's built-in interval variables, with the values the tests substitute.
BUILTIN_VARS = {"__rate_interval": "5s", "__interval": "1s", "__range": "1m"}

_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_METRIC = re.compile(r"\basicrc_[a-z0-9_]+")
_LABEL_VALUES = re.compile(r"^label_values\((?:(.+),\s*)?(\w+)\)$")


def load_dashboards() -> dict[str, dict[str, Any]]:
    """{file name: parsed JSON} of every grafana/dashboards/*.json."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def panel_queries(dash: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every target of every panel (rows' nested panels included)."""
    for panel in dash["panels"]:
        for sub in [panel, *panel.get("panels", [])]:
            for target in sub.get("targets", []):
                yield sub, target


def variable_queries(dash: Mapping[str, Any]) -> dict[str, str]:
    """{variable name: query string} of the query-type template variables."""
    out = {}
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            out[v["name"]] = q["query"] if isinstance(q, dict) else q
    return out


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace ``$name`` / ``${name}`` / ``${name:fmt}`` with ``values`` (builtins defaulted); KeyError when a
    variable has no value (a typo in a dashboard fails the test instead of reaching Prometheus)."""
    merged = {**BUILTIN_VARS, **values}

    def one(mt: re.Match[str]) -> str:
        return merged[mt.group(1) or mt.group(2)]

    return _VAR.sub(one, expr)


def parse_label_values(query: str) -> tuple[str | None, str]:
    """(series selector or None, label) of Grafana's ``label_values([selector,] label)``."""
    mt = _LABEL_VALUES.match(query.strip())
    if mt is None:
        raise ValueError(f"not a label_values() query: {query}")
    return mt.group(1), mt.group(2)


@functools.cache
def load_generator() -> ModuleType:
    """grafana/generate.py as a module (grafana/ is not a package; registered so dataclasses resolve)."""
    name = "asicrc_grafana_generate"
    spec = importlib.util.spec_from_file_location(name, GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def exported_names() -> set[str]:
    """Every sample name /metrics can export, rendered from a state with every optional value set."""
    state = DaemonState(version="0.0.0+test")
    b = state.add_board("b0", "emulator", 2)
    b.set_setpoint(1.2, 485.0, 1.0)
    b.chip_temp_c, b.vr_temp_c, b.power_w, b.vin_v, b.fan_rpm, b.fan_duty = 50.0, 60.0, 12.0, 5.0, 3000.0, 0.5
    b.plan = PlanProgress("p", i=1, n=3, eta_s=10.0)
    body, _ = render(make_registry(state))
    return {s.name for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


DASHBOARDS = load_dashboards()
VALUES = {"datasource": "asicrc-prometheus", "instance": "127.0.0.1:9100", "board": "b0"}


def test_the_promised_dashboards_exist_with_unique_uids_and_titles() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert set(uids) == EXPECTED_UIDS
    assert len(uids) == len(set(uids)) and len(titles) == len(set(titles))
    for name, d in DASHBOARDS.items():
        assert name == f"{d['uid']}.json"  # a stable uid names the file
        assert re.fullmatch(r"[a-z0-9-]{1,40}", d["uid"]), d["uid"]
        assert isinstance(d["schemaVersion"], int) and d.get("id") is None  # ids are Grafana's, per instance


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panels_have_unique_ids_units_and_the_datasource_variable(name: str) -> None:
    dash = DASHBOARDS[name]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    assert dash["panels"], name
    for p in dash["panels"]:
        assert p["title"] and p["type"] in {"timeseries", "stat", "bargauge", "heatmap", "table"}, p["title"]
        assert p["datasource"] == DS_REF, p["title"]
        unit = p["fieldConfig"]["defaults"].get("unit", "")
        assert unit in KNOWN_UNITS or (unit.startswith("suffix:") and len(unit) > 7), (p["title"], unit)
        assert p["targets"], p["title"]
        assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
        for t in p["targets"]:
            assert t["datasource"] == DS_REF and t["expr"].strip(), (p["title"], t)
    for a in dash["panels"]:  # inside the 24-column grid, no two panels overlapping
        ga = a["gridPos"]
        assert ga["x"] >= 0 and ga["x"] + ga["w"] <= 24 and ga["h"] > 0
        for b in dash["panels"]:
            gb = b["gridPos"]
            if a is not b:
                apart_x = ga["x"] + ga["w"] <= gb["x"] or gb["x"] + gb["w"] <= ga["x"]
                apart_y = ga["y"] + ga["h"] <= gb["y"] or gb["y"] + gb["h"] <= ga["y"]
                assert apart_x or apart_y, (a["title"], b["title"])


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_template_variables(name: str) -> None:
    dash = DASHBOARDS[name]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    assert ds["current"]["value"] == load_generator().DATASOURCE_UID
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == DS_REF, v["name"]
            parse_label_values(variable_queries(dash)[v["name"]])
    used = {mt.group(1) or mt.group(2) for _, t in panel_queries(dash) for mt in _VAR.finditer(t["expr"])}
    for q in variable_queries(dash).values():
        used |= {mt.group(1) or mt.group(2) for mt in _VAR.finditer(q)}
    assert used - set(BUILTIN_VARS) <= set(variables), used
    if "board" in variables:  # a board selector filters every panel of the dashboard
        for p, t in panel_queries(dash):
            assert "$board" in t["expr"], (p["title"], t["expr"])


def test_every_metric_queried_is_exported_by_the_daemon() -> None:
    names = exported_names()
    referenced: set[str] = set()
    for dash in DASHBOARDS.values():
        exprs = [t["expr"] for _, t in panel_queries(dash)] + list(variable_queries(dash).values())
        for e in exprs:
            referenced |= set(_METRIC.findall(e))
    missing = referenced - names
    assert not missing, f"dashboards query metrics daemon/metrics.py does not export: {sorted(missing)}"
    assert len(referenced) >= 20  # the regex found the metrics (a broken regex would pass vacuously)


#: Metrics the dashboards must show (a panel must keep each of them on screen).
MUST_SHOW = {
    "asicrc_nonces_total", "asicrc_invalid_nonces_total", "asicrc_estimated_hashes_total",
    "asicrc_nonce_interval_seconds_bucket", "asicrc_frequency_hertz", "asicrc_core_voltage_volts",
    "asicrc_ticket_difficulty", "asicrc_chip_temperature_celsius", "asicrc_regulator_temperature_celsius",
    "asicrc_power_watts", "asicrc_crc_errors_total", "asicrc_dropped_bytes_total", "asicrc_reconnects_total",
    "asicrc_safety_refusals_total", "asicrc_plan_progress_ratio", "asicrc_plan_eta_seconds",
    "asicrc_recorder_rows_total", "asicrc_recorder_written_bytes_total", "asicrc_recorder_write_errors_total",
    "asicrc_recorder_queue_dropped_rows_total", "asicrc_build_info", "asicrc_board_up",
}  # fmt: skip


def test_the_dashboards_show_what_issue_7_asks_for() -> None:
    referenced = {
        name
        for dash in DASHBOARDS.values()
        for _, t in panel_queries(dash)
        for name in _METRIC.findall(t["expr"])
    }
    assert MUST_SHOW - referenced == set()


def test_promtool_parses_every_query(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    rules = []
    for dash in DASHBOARDS.values():
        for k, (_, t) in enumerate(panel_queries(dash)):
            expr = substitute(t["expr"], VALUES)
            rules.append({"record": f"test:{dash['uid'].replace('-', '_')}:{k}", "expr": expr})
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "grafana", "rules": rules}]}))  # JSON is YAML
    res = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(rules)} rules found" in res.stdout


def test_substitute_rejects_unknown_variables() -> None:
    assert substitute('x{board=~"$board"}[$__rate_interval]', {"board": "b"}) == 'x{board=~"b"}[5s]'
    assert substitute("${board:regex}-${board}", {"board": "b"}) == "b-b"
    with pytest.raises(KeyError):
        substitute("$boards", {"board": "b"})


def test_dashboard_files_are_generated_from_generate_py() -> None:
    gen = load_generator()
    rendered = gen.render_all()
    assert set(rendered) == set(DASHBOARDS)
    for name, text in rendered.items():
        assert (DASHBOARD_DIR / name).read_text() == text, f"{name} is stale: run grafana/generate.py"
    assert gen.main(["--check"]) == 0


@given(st.lists(st.tuples(st.integers(1, 24), st.integers(1, 12)), min_size=1, max_size=30))
def test_generated_layout_never_overlaps(sizes: list[tuple[int, int]]) -> None:
    gen = load_generator()
    panels = [
        gen.Panel(f"p{i}", "stat", "none", [gen.Target("up")], w=w, h=h) for i, (w, h) in enumerate(sizes)
    ]
    out = gen._layout(panels)
    assert [p["id"] for p in out] == list(range(1, len(sizes) + 1))
    cells: set[tuple[int, int]] = set()
    for p in out:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine
        cells |= mine


def test_provisioning_files() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML parses the provisioning files")
    gen = load_generator()
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/asicrc.yaml").read_text())
    assert ds["apiVersion"] == 1
    [source] = ds["datasources"]
    assert source["uid"] == gen.DATASOURCE_UID and source["name"] == gen.DATASOURCE_NAME
    assert source["type"] == "prometheus" and source["url"].startswith("http")
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/asicrc.yaml").read_text())
    [provider] = prov["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
