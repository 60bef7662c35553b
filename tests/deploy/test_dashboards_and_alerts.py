"""Grafana dashboards and Prometheus alert rules (helm/boxoffice/dashboards, helm/boxoffice/rules).

- `promtool check rules` and `promtool test rules` (the real promtool of the local stack's
  Prometheus package) pass, and every alert has a unit test where it fires and one where it
  does not;
- every dashboard is Grafana 10+ JSON whose queries go through the `${datasource}` variable;
- every metric a dashboard panel, a dashboard variable, an alert or an alert test names is one the
  running processes really export, checked against a live `/metrics` scrape of every function
  (and the dispatcher, once the stack has one): a source that is not running fails the test;
- every dashboard query and alert expression is valid PromQL for the local Prometheus.

Needs the local stack (`stack/boxo up`) and its environment (`set -a; . .state/env; set +a`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "boxoffice"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
RULES_FILE = CHART / "rules" / "boxoffice-alerts.yaml"
RULE_TESTS = sorted((CHART / "rules" / "tests").glob("*.yaml"))
DATASOURCE = "${datasource}"


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(
            f"{name} is not set: start the stack (`stack/boxo up`) and export its environment "
            "(`set -a; . .state/env; set +a`)",
            pytrace=False,
        )
    return value.rstrip("/")


def _promtool() -> str:
    path = os.environ.get("BOXOFFICE_PROMTOOL_BIN") or shutil.which("promtool") or ""
    if not path and Path("/usr/bin/promtool").exists():
        path = "/usr/bin/promtool"
    if not path:
        pytest.fail("promtool not found: `make up` installs it (Debian package prometheus)")
    return path


# -- PromQL: which metric names does an expression use? ----------------------------------------

# Keywords and modifiers that look like identifiers (functions and aggregations are recognised
# by the parenthesis that follows them).
PROMQL_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"bool", "offset", "inf", "nan", "start", "end", "atan2"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_OFFSET = re.compile(r"\boffset\s+-?\w+", re.IGNORECASE)
_IDENTIFIER = re.compile(r"(?<![\w:.])([A-Za-z_:][\w:]*)\b(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (not functions, keywords, labels or durations)."""
    text = _STRING.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    text = _GRAFANA_VAR.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in PROMQL_KEYWORDS}


def test_metric_name_extraction() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le, function) (rate(x_seconds_bucket{function=~"$f",'
        ' route="/a"}[$__rate_interval] offset 5m))) / on (function) group_left sum(y_total)'
        " without (instance) > 1e3 and ignoring(z) up_gauge unless count(w) by (le) > bool 0"
    )
    assert metric_names(expr) == {"x_seconds_bucket", "y_total", "up_gauge", "w"}
    assert metric_names("label_values(boxoffice_http_requests_total, function)") == {
        "boxoffice_http_requests_total",
        "function",
    }  # see _variable_metrics: label_values' second argument is a label


def _series_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can contain, from its # TYPE lines (families whose
    labelled children have no sample yet still have one) and its samples."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            if kind == "counter":
                names |= {name, name if name.endswith("_total") else f"{name}_total"}
            elif kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            elif kind == "summary":
                names |= {name, f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _metric_sources() -> dict[str, str]:
    """name -> /metrics URL of every process the stack runs that exports Boxoffice metrics."""
    sources: dict[str, str] = {}
    for main in sorted((ROOT / "functions").glob("*/main.py")):
        # The same test as the stack's: a function with a `handler` is one the stack runs.
        if re.search(r"^def handler", main.read_text(), re.MULTILINE):
            name = main.parent.name
            sources[name] = f"{_env(f'BOXOFFICE_{name.upper()}_URL')}/metrics"
    # The KafkaSource-contract dispatcher runs once consume_order does (services/dispatcher.sh).
    if "consume_order" in sources and (ROOT / "stack" / "services" / "dispatcher.sh").exists():
        sources["dispatcher"] = f"{_env('BOXOFFICE_DISPATCHER_URL')}/metrics"
    # The admission controller runs once waiting_room does (services/admission.sh).
    if "waiting_room" in sources and (ROOT / "stack" / "services" / "admission.sh").exists():
        sources["admission"] = f"{_env('BOXOFFICE_ADMISSION_URL')}/metrics"
    return sources


@pytest.fixture(scope="module")
def exported() -> dict[str, set[str]]:
    """series name -> the processes that export it, from a live scrape of every source."""
    found: dict[str, set[str]] = {}
    down = []
    for source, url in _metric_sources().items():
        try:
            response = requests.get(url, timeout=5)
            response.raise_for_status()
        except requests.RequestException as exc:
            down.append(f"{source} ({url}): {exc}")
            continue
        for name in _series_names(response.text):
            found.setdefault(name, set()).add(source)
    if down:
        pytest.fail(
            "cannot scrape " + "; ".join(down) + " — start the stack with `stack/boxo up`",
            pytrace=False,
        )
    return found


# -- dashboards ----------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])  # collapsed rows hold their panels


def _dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target."""
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"{dashboard['uid']} / {panel['title']} / {target['refId']}", target["expr"]


def _variable_metrics(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, metric) of every query variable (label_values(metric, label), query_result(...))."""
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query)
        expr = match.group(1) if match else query
        for name in metric_names(expr):
            yield f"{dashboard['uid']} / variable {var['name']}", name


def test_there_are_dashboards() -> None:
    assert {p.name for p in DASHBOARDS} >= {"boxoffice-functions.json", "boxoffice-bookings.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_grafana_json_on_the_datasource_variable(path: Path) -> None:
    dashboard = _load(path)
    assert dashboard["schemaVersion"] >= 36, "Grafana 10+ schema"
    assert dashboard["uid"]
    assert len(dashboard["uid"]) <= 40
    assert dashboard["title"].startswith("Boxoffice / ")
    assert dashboard.get("id") is None, "provisioned dashboards carry no database id"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    graphs = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert graphs
    for panel in graphs:
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"]["uid"] == DATASOURCE


def test_dashboard_uids_are_unique() -> None:
    uids = [_load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_dashboards_cover_the_operational_signals() -> None:
    exprs = "\n".join(e for p in DASHBOARDS for _, e in _dashboard_queries(_load(p)))
    for needle in (
        "boxoffice_http_requests_total",
        "boxoffice_http_request_duration_seconds_bucket",
        'status=~"5.."',
        "histogram_quantile(0.99",
        "histogram_quantile(0.5",
        "boxoffice_tickets_reserved_total",
        'boxoffice_bookings_total{outcome="sold_out"}',
        "boxoffice_outbox_backlog",
        "boxoffice_outbox_oldest_age_seconds",
        "boxoffice_circuit_breaker_open",
    ):
        assert needle in exprs, f"no dashboard panel uses {needle}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_names_only_exported_metrics(path: Path, exported: dict[str, set[str]]) -> None:
    dashboard = _load(path)
    used = [(where, n) for where, expr in _dashboard_queries(dashboard) for n in metric_names(expr)]
    used += list(_variable_metrics(dashboard))
    assert used
    missing = sorted({f"{name} (in {where})" for where, name in used if name not in exported})
    assert not missing, "metrics no running process exports:\n" + "\n".join(missing)


@pytest.fixture(scope="module")
def prometheus_url() -> str:
    return _env("BOXOFFICE_PROMETHEUS_URL")


def _assert_valid_promql(prometheus_url: str, where: str, expr: str) -> None:
    # Grafana's variables, as Grafana would substitute them.
    concrete = expr.replace("$__rate_interval", "1m").replace("$function", ".*")
    response = requests.get(
        f"{prometheus_url}/api/v1/query", params={"query": concrete}, timeout=10
    )
    assert response.status_code == 200, f"{where}: {response.text}\n{concrete}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_queries_are_valid_promql(path: Path, prometheus_url: str) -> None:
    for where, expr in _dashboard_queries(_load(path)):
        assert "$" not in expr.replace("$__rate_interval", "").replace("$function", ""), where
        _assert_valid_promql(prometheus_url, where, expr)


# -- alert rules ---------------------------------------------------------------------------------


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def test_promtool_check_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    result = subprocess.run(
        [_promtool(), "test", "rules", *[str(p) for p in RULE_TESTS]],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout


def test_the_alerts_we_promise_exist() -> None:
    assert set(_alerts()) >= {
        "BoxofficeHighErrorRatio",
        "BoxofficeBookingLatencySLO",
        "BoxofficeOutboxStale",
        "BoxofficeDeadLetters",
        "BoxofficeConsumerLag",
        "BoxofficeCircuitBreakerOpen",
    }
    slo = _alerts()["BoxofficeBookingLatencySLO"]
    assert "histogram_quantile(0.99" in slo["expr"]
    assert slo["for"] == "5m"


@pytest.mark.parametrize("alert", sorted(_alerts()))
def test_alert_is_documented_and_unit_tested_both_ways(alert: str) -> None:
    rule = _alerts()[alert]
    assert rule["labels"]["severity"] in {"page", "ticket"}
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]
    firing, quiet = 0, 0
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["alertname"] == alert:
                    if check.get("exp_alerts"):
                        firing += 1
                    else:
                        quiet += 1
    assert firing, f"no promtool test where {alert} fires"
    assert quiet, f"no promtool test where {alert} stays quiet"


# The one metric from outside Boxoffice a rule may read: in the cluster, the Kafka exporter's
# consumer-group lag, recorded as boxoffice_dispatcher_lag by the `boxoffice.cluster` group
# (locally the dispatcher exports that name itself).
CLUSTER_GROUP = "boxoffice.cluster"
CLUSTER_METRICS = frozenset({"kafka_consumergroup_lag"})


def test_cluster_group_only_records_what_the_dispatcher_exports_locally() -> None:
    groups = {g["name"]: g for g in yaml.safe_load(RULES_FILE.read_text())["groups"]}
    records = list(groups[CLUSTER_GROUP]["rules"])
    assert [r.get("record") for r in records] == ["boxoffice_dispatcher_lag"]
    assert metric_names(records[0]["expr"]) <= CLUSTER_METRICS
    tested = {
        check["expr"]
        for path in RULE_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("promql_expr_test", [])
    }
    assert "boxoffice_dispatcher_lag" in tested, "the recording rule has a promtool test"


def test_alert_rules_name_only_exported_metrics(exported: dict[str, set[str]]) -> None:
    used: set[tuple[str, str]] = set()
    for group in yaml.safe_load(RULES_FILE.read_text())["groups"]:
        for rule in group["rules"]:
            names = metric_names(rule["expr"])
            if group["name"] == CLUSTER_GROUP:
                names -= CLUSTER_METRICS
            used |= {(rule.get("alert") or rule["record"], n) for n in names}
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for series in case.get("input_series", []):
                name = series["series"].split("{")[0].strip()
                if name not in CLUSTER_METRICS:
                    used.add((f"{path.name} input", name))
    assert used
    missing = sorted(f"{name} (in {where})" for where, name in used if name not in exported)
    assert not missing, "metrics no running process exports:\n" + "\n".join(missing)


def test_alert_expressions_are_valid_promql(prometheus_url: str) -> None:
    for rule in _rules():
        _assert_valid_promql(prometheus_url, rule.get("alert") or rule["record"], rule["expr"])
