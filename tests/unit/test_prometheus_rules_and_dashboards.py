"""Prometheus rules, config and Grafana dashboards: promtool checks and unit tests, dashboard structure, and
every PromQL expression checked against the metric catalogue (names, labels, label values) and against what
embguard really registers and docs/metrics.md documents.

The expressions come from tests/promql.py (shared with the live Prometheus test); ``selectors(expr)`` parses
the metric selectors out of an expression. Needs ``promtool`` (Debian package ``prometheus``): without it the
promtool tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import promql
import pytest
import yaml
from promql import GRAFANA_VARS, annotation_exprs, dashboard_exprs, rule_exprs, substitute

from embguard.daemon.metrics import REINDEX_STATES, RETRAIN_STATES, Metrics, catalogue
from embguard.proxy.metrics import CATALOGUE as PROXY_CATALOGUE
from embguard.proxy.metrics import DROP_REASONS, ProxyMetrics

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "prometheus"
RULES = PROM / "rules" / "embguard.rules.yml"
RULE_TESTS = PROM / "tests" / "embguard.rules.test.yml"
PROM_CONFIG = PROM / "prometheus.yml"
AM_CONFIG = PROM / "alertmanager.yml"
DASHBOARDS = [
    REPO / "grafana" / "dashboards" / "embguard-overview.json",
    REPO / "grafana" / "dashboards" / "embguard-daemon.json",
]
DOCS = REPO / "docs" / "metrics.md"
# The proxy's metrics are documented by a table generated from its catalogue (docs/hooks.py) on its own page.
PROXY_DOCS = REPO / "docs" / "proxy.md"
PROXY_TABLE = "<!-- generated: proxy-metrics -->"
RUNBOOK = REPO / "docs" / "runbook.md"
# Every alert's runbook_url is RUNBOOK_BASE + "#" + the alert name in lower case (GitHub's anchor for the
# alert's heading in docs/runbook.md). One base for all; docs/runbook.md says how to point it elsewhere.
RUNBOOK_BASE = "https://github.com/embguard/embguard/blob/main/docs/runbook.md"
# The dashboards' datasource: a template variable (type datasource, query prometheus), imported as DS_PROMETHEUS.
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

REQUIRED_ALERTS = {
    "EmbguardDriftSustained",
    "EmbguardOODRateHigh",
    "EmbguardDaemonDown",
    "EmbguardChecksStale",
    "EmbguardMilvusDown",
    "EmbguardCandidateAwaitingApproval",
    "EmbguardReindexStuck",
}
SEVERITIES = {"critical", "warning", "info"}
# Labels Prometheus attaches to every scraped series. No embguard metric may have a label of these names
# (test_no_metric_label_clashes_with_target_labels): the daemon's scheduled job is the `task` label.
TARGET_LABELS = {"job", "instance"}
# Metrics exported by the application process (scrape job embguard-app) and by Prometheus itself.
EXTERNAL = {
    "up": (),
    "embguard_tap_rows_total": ("outcome",),
    "embguard_client_searches_total": (),
    "embguard_client_feedback_total": ("signal",),
}
# Series Prometheus itself writes; every other metric an expression uses must be registered by embguard.
PROMETHEUS_OWN = {"up"}
# Known values of enumerated labels, per metric (exact `=` matchers must use one of them).
TASKS = ("sample", "check", "prune", "retrain_policy", "milvus_watch")
SWAP_EVENTS = ("switch", "rollback", "abort", "approve")
LABEL_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("embguard_retrain_state", "state"): RETRAIN_STATES,
    ("embguard_reindex_state", "state"): REINDEX_STATES,
    ("embguard_checks_total", "outcome"): ("ok", "error", "skipped"),
    ("embguard_checks_created", "outcome"): ("ok", "error", "skipped"),
    ("embguard_job_runs_total", "outcome"): ("success", "failure", "skipped"),
    ("embguard_swap_events_total", "event"): SWAP_EVENTS,
    ("embguard_tap_rows_total", "outcome"): ("sampled", "written", "dropped_buffer_full", "dropped_write_error"),
    ("embguard_proxy_tap_dropped_total", "reason"): DROP_REASONS,
    ("embguard_top1_similarity", "quantile"): ("0.05", "0.5", "0.95"),
    ("embguard_window_samples", "kind"): ("queries", "documents"),
    ("embguard_windows_sampled_total", "kind"): ("queries", "documents"),
    ("up", "job"): ("embguard", "embguard-app", "embguard-proxy", "milvus"),
    **{
        (m, "task"): TASKS
        for m in (
            "embguard_job_runs_total",
            "embguard_job_duration_seconds_bucket",
            "embguard_job_duration_seconds_sum",
            "embguard_job_duration_seconds_count",
            "embguard_job_last_success_timestamp_seconds",
        )
    },
    **{
        (m, "monitor"): ("mmd", "classifier", "retrieval", "ood", "top1", "combined")
        for m in (
            "embguard_drift_statistic",
            "embguard_drift_p_value",
            "embguard_drift_detected",
            "embguard_drift_sustained",
            "embguard_drift_consecutive_windows",
        )
    },
}


def _alerts() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


# --- a small PromQL scanner: enough to find selectors, grouping labels and functions --------------------------

AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
}
FUNCTIONS = {
    "abs",
    "absent",
    "absent_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "day_of_month",
    "day_of_week",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "ln",
    "log2",
    "log10",
    "minute",
    "month",
    "predict_linear",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "time",
    "timestamp",
    "vector",
    "year",
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "count_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "last_over_time",
    "present_over_time",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "inf", "nan"}
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){},])
""",
    re.VERBOSE,
)


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)


@dataclass
class Parsed:
    selectors: list[Selector]
    grouping: set[str]
    functions: set[str]


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot scan {expr[pos : pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def _unquote(s: str) -> str:
    return s[1:-1].encode().decode("unicode_escape") if s[0] in "\"'" else s[1:-1]


def parse(expr: str) -> Parsed:
    """Selectors (metric + label matchers), grouping labels (by/without/on/ignoring/group_*) and function names
    of a PromQL expression. Raises ValueError on what it does not understand (offset, {}-only selectors)."""
    toks = _tokens(expr)
    sels: list[Selector] = []
    grouping: set[str] = set()
    funcs: set[str] = set()
    i = 0

    def nxt(j: int) -> str | None:
        return toks[j][1] if j < len(toks) else None

    while i < len(toks):
        kind, text = toks[i]
        if kind == "ident":
            low = text.lower()
            if low in GROUPING:
                i += 1
                if nxt(i) == "(":
                    i += 1
                    while nxt(i) != ")":
                        if nxt(i) is None:
                            raise ValueError(f"unclosed label list in {expr!r}")
                        if toks[i][0] == "ident":
                            grouping.add(toks[i][1])
                        i += 1
                    i += 1
                continue
            if low in KEYWORDS:
                i += 1
                continue
            if low == "offset" or low == "atan2":
                raise ValueError(f"unsupported keyword {text!r} in {expr!r}")
            if nxt(i + 1) == "(" or (text in AGGREGATIONS and nxt(i + 1) in ("by", "without")):
                funcs.add(text)
                i += 1
                continue
            sel = Selector(text)
            i += 1
            if nxt(i) == "{":
                i += 1
                while nxt(i) != "}":
                    if nxt(i) == ",":
                        i += 1
                        continue
                    if (
                        i + 2 >= len(toks)
                        or toks[i][0] != "ident"
                        or toks[i + 1][1] not in ("=", "!=", "=~", "!~")
                        or toks[i + 2][0] != "str"
                    ):
                        raise ValueError(f"bad label matcher near {nxt(i)!r} in {expr!r}")
                    sel.matchers.append((toks[i][1], toks[i + 1][1], _unquote(toks[i + 2][1])))
                    i += 3
                i += 1
            sels.append(sel)
            continue
        if text == "{":
            raise ValueError(f"selector without a metric name in {expr!r}")
        i += 1
    return Parsed(sels, grouping, funcs)


def selectors(expr: str) -> list[Selector]:
    return parse(substitute(expr)).selectors


def known_metrics() -> dict[str, set[str]]:
    """Every series name an expression may select, with its labels (target labels not included)."""
    out: dict[str, set[str]] = {}
    for doc in catalogue():
        if doc.kind == "histogram":
            out[f"{doc.name}_bucket"] = {*doc.labels, "le"}
            out[f"{doc.name}_sum"] = set(doc.labels)
            out[f"{doc.name}_count"] = set(doc.labels)
            out[f"{doc.name}_created"] = set(doc.labels)
        else:
            out[doc.name] = set(doc.labels)
        if doc.kind == "counter":  # prometheus_client's creation time of each child: <name>_created
            out[doc.name.removesuffix("_total") + "_created"] = set(doc.labels)
    for name, labels in EXTERNAL.items():
        out[name] = set(labels)
    for name, kind, labels, _ in PROXY_CATALOGUE:
        if kind == "histogram":
            for suffix, extra in (("_bucket", {"le"}), ("_sum", set()), ("_count", set()), ("_created", set())):
                out[name + suffix] = {*labels, *extra}
        else:
            out[name] = set(labels)
        if kind == "counter":
            out[name.removesuffix("_total") + "_created"] = set(labels)
    return out


def expr_problems(expr: str, metrics: dict[str, set[str]] | None = None) -> list[str]:
    """What is wrong with an expression against the catalogue (empty list: nothing)."""
    metrics = known_metrics() if metrics is None else metrics
    try:
        parsed = parse(substitute(expr))
    except ValueError as e:
        return [str(e)]
    problems = []
    unknown_funcs = parsed.functions - FUNCTIONS - AGGREGATIONS
    if unknown_funcs:
        problems.append(f"unknown functions {sorted(unknown_funcs)}")
    if not parsed.selectors:
        problems.append("selects no metric")
    labels_in_expr = set(TARGET_LABELS)
    for sel in parsed.selectors:
        if sel.metric not in metrics:
            problems.append(f"unknown metric {sel.metric}")
            continue
        allowed = metrics[sel.metric] | TARGET_LABELS
        labels_in_expr |= allowed
        for label, op, value in sel.matchers:
            if label not in allowed:
                problems.append(f"{sel.metric} has no label {label!r} (has {sorted(metrics[sel.metric])})")
            elif op == "=" and (sel.metric, label) in LABEL_VALUES and value not in LABEL_VALUES[sel.metric, label]:
                problems.append(f"{sel.metric}{{{label}={value!r}}}: not one of {LABEL_VALUES[sel.metric, label]}")
    bad_grouping = parsed.grouping - labels_in_expr
    if bad_grouping:
        problems.append(f"grouping by labels no selected metric has: {sorted(bad_grouping)}")
    return problems


def all_exprs() -> list[tuple[str, str]]:
    out = [(f"{RULES.name}: {n}", e) for n, e in rule_exprs(RULES)]
    for path in DASHBOARDS:
        out += [(f"{path.name}: {n}", e) for n, e in dashboard_exprs(path) + annotation_exprs(path)]
    return out


def registered_series() -> dict[str, set[str]]:
    """Every series name embguard really exposes, with its labels: the daemon's ``Metrics`` after the start-up
    initialisation (a counter child's ``_created`` only exists once the child does), and the application's
    ``ClientMetrics``. Read from the registries' samples, not from the catalogue."""
    from prometheus_client import CollectorRegistry

    from embguard.client.inputs import ClientMetrics

    daemon, app, proxy = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    Metrics(daemon).init_series(["docs"], TASKS, 0.01, 3600.0)
    ClientMetrics(app)
    ProxyMetrics(proxy)
    out: dict[str, set[str]] = {}
    for registry in (daemon, app, proxy):
        for family in registry.collect():
            # A family without samples yet is still registered, with the series names its type gives it.
            suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
            for suffix in suffixes.get(family.type, ("",)):
                out.setdefault(family.name + suffix, set())
            for sample in family.samples:
                out.setdefault(sample.name, set()).update(sample.labels)
    return out


# --- promtool -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool not found (apt-get install prometheus); required when CI is set")
        pytest.skip("promtool not found (apt-get install prometheus)")
    return path


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, f"{' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
    return res


def test_promtool_check_rules(promtool: str) -> None:
    _run(promtool, "check", "rules", str(RULES))


def test_promtool_test_rules(promtool: str) -> None:
    res = _run(promtool, "test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in res.stdout + res.stderr


def test_promtool_check_config(promtool: str) -> None:
    _run(promtool, "check", "config", str(PROM_CONFIG))


def test_dashboard_exprs_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    """promtool parses every dashboard expression, annotations included (as recording rules, variables
    substituted)."""
    exprs = [e for path in DASHBOARDS for _, e in dashboard_exprs(path) + annotation_exprs(path)]
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [{"record": f"dashboard:expr_{i}", "expr": substitute(e)} for i, e in enumerate(exprs)],
            }
        ]
    }
    f = tmp_path / "dashboard-exprs.yml"
    f.write_text(yaml.safe_dump(rules, sort_keys=False))
    _run(promtool, "check", "rules", str(f))


def test_alertmanager_config_with_amtool(tmp_path: Path) -> None:
    amtool = shutil.which("amtool")
    if amtool is None:
        if os.environ.get("CI"):
            pytest.fail("amtool not found (apt-get install prometheus-alertmanager); required when CI is set")
        pytest.skip("amtool not installed (package prometheus-alertmanager)")
    res = _run(amtool, "check-config", str(AM_CONFIG))
    assert "SUCCESS" in res.stdout + res.stderr


# --- rules --------------------------------------------------------------------------------------------------


def test_required_alerts_present_and_unique() -> None:
    names = [a["alert"] for a in _alerts()]
    assert len(names) == len(set(names)), names
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)


@pytest.mark.parametrize("alert", _alerts(), ids=lambda a: a["alert"])
def test_alert_metadata(alert: dict) -> None:
    name = alert["alert"]
    assert re.fullmatch(r"Embguard[A-Z][A-Za-z]+", name)
    assert alert.get("labels", {}).get("severity") in SEVERITIES
    ann = alert.get("annotations", {})
    assert ann.get("summary") and ann.get("description")
    assert ann.get("runbook_url") == f"{RUNBOOK_BASE}#{name.lower()}", "one absolute runbook base for every alert"
    assert "`embguard " in ann["description"], "the description names the command to run next"
    assert re.fullmatch(r"\d+[smh]", alert.get("for", "")), "every alert waits a `for:` duration"


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    cases = [c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t.get("alert_rule_test", [])]
    for alert in _alerts():
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c.get("exp_alerts") for c in mine), f"{alert['alert']}: no firing case"
        assert any(not c.get("exp_alerts") for c in mine), f"{alert['alert']}: no quiet case"
        for c in mine:
            for exp in c.get("exp_alerts") or []:
                assert exp["exp_labels"]["severity"] == alert["labels"]["severity"]
                assert exp.get("exp_annotations"), f"{alert['alert']}: annotations not checked"


# --- every expression against the catalogue -----------------------------------------------------------------


@pytest.mark.parametrize(("name", "expr"), all_exprs(), ids=[n for n, _ in all_exprs()])
def test_expr_uses_catalogue(name: str, expr: str) -> None:
    assert expr.strip(), f"{name}: empty expr"
    assert expr_problems(expr) == []


def test_expr_checker_catches_mistakes() -> None:
    assert expr_problems('embguard_drift_p_value{collection=~".*"}') == []
    assert expr_problems("embguard_drift_pvalue") == ["unknown metric embguard_drift_pvalue"]
    assert "has no label 'monitor'" in expr_problems('embguard_drift_alpha{monitor="mmd"}')[0]
    assert "not one of" in expr_problems('embguard_reindex_state{state="backfill"} == 1')[0]
    assert "grouping" in expr_problems("sum by (model_id) (embguard_drift_alpha)")[0]
    assert expr_problems("embguard_job_duration_seconds") == ["unknown metric embguard_job_duration_seconds"]
    assert (
        expr_problems("histogram_quantile(0.9, sum by (le, job) (rate(embguard_job_duration_seconds_bucket[5m])))")
        == []
    )
    assert "unknown functions" in expr_problems("rates(embguard_checks_total[5m])")[0]
    sels = selectors('sum by (job) (increase(embguard_job_runs_total{outcome="failure", job=~"a|b"}[1h]))')
    assert [(s.metric, s.matchers) for s in sels] == [
        ("embguard_job_runs_total", [("outcome", "=", "failure"), ("job", "=~", "a|b")])
    ]


# --- dashboards ---------------------------------------------------------------------------------------------


def _ds_refs(obj: object) -> list[object]:
    """Every datasource reference anywhere in a dashboard."""
    out: list[object] = []
    if isinstance(obj, dict):
        if "datasource" in obj:
            out.append(obj["datasource"])
        for v in obj.values():
            out += _ds_refs(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _ds_refs(v)
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["uid"] == path.stem and data["title"]
    assert data["schemaVersion"] >= 39
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert set(variables) == {"datasource", "collection"}
    panels = promql.panels(data)
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        assert p.get("title"), p["id"]
        assert p["datasource"] == DS_REF, p["title"]
        assert p.get("targets"), f"{p['title']}: no targets"
        for t in p["targets"]:
            assert t["datasource"] == DS_REF, f"{p['title']} [{t.get('refId')}]"
            assert t.get("expr", "").strip(), f"{p['title']} [{t.get('refId')}]: empty expr"
            for var in re.findall(r"\$\{?\w+", t["expr"]):
                assert var.replace("{", "") in GRAFANA_VARS, f"{p['title']}: Grafana variable {var}"
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps panel {cells[x, y]}"
                cells[x, y] = p["id"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_datasource_is_an_input_and_a_variable(path: Path) -> None:
    """Importable into any Grafana (``__inputs`` DS_PROMETHEUS, a ``datasource`` variable every query uses) while
    the provisioned copy keeps working: no reference names a datasource uid of one particular Grafana."""
    data = json.loads(path.read_text())
    assert list(data)[:2] == ["__inputs", "__requires"]
    (inp,) = data["__inputs"]
    assert inp == {**inp, "name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}
    assert {"type": "datasource", "id": "prometheus"}.items() <= next(
        r for r in data["__requires"] if r["type"] == "datasource"
    ).items()
    ds_var = next(v for v in data["templating"]["list"] if v["name"] == "datasource")
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
    assert ds_var["current"]["value"] == "${DS_PROMETHEUS}"  # import fills it in; provisioning falls back
    assert data["templating"]["list"][0] is ds_var, "the datasource variable comes before the ones that use it"
    refs = _ds_refs(data)
    assert refs and all(isinstance(r, dict) for r in refs), "string datasource references name one Grafana's datasource"
    prometheus = [r for r in refs if r.get("type") == "prometheus"]
    others = [r for r in refs if r.get("type") != "prometheus"]
    assert all(r == DS_REF for r in prometheus), {json.dumps(r) for r in prometheus if r != DS_REF}
    assert others == [{"type": "grafana", "uid": "-- Grafana --"}], others  # only the built-in annotations
    assert "prometheus" not in json.dumps(refs).replace('"type": "prometheus"', "")  # no hard-coded uid left


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_collection_variable_is_populated_from_daemon_start(path: Path) -> None:
    """``$collection`` lists every configured collection as soon as the daemon has started (before any check,
    after any restart): its query reads a per-collection series that ``Metrics.init_series`` creates."""
    from prometheus_client import CollectorRegistry

    data = json.loads(path.read_text())
    var = next(v for v in data["templating"]["list"] if v["name"] == "collection")
    assert var["datasource"] == DS_REF and var["type"] == "query"
    query = var["query"] if isinstance(var["query"], str) else var["query"]["query"]
    m = re.fullmatch(r"label_values\((\w+), collection\)", query)
    assert m, query
    registry = CollectorRegistry()
    Metrics(registry).init_series(["docs", "kb"], TASKS, 0.01, 3600.0)
    seen = {s.labels.get("collection") for f in registry.collect() for s in f.samples if s.name == m.group(1)}
    assert seen == {"docs", "kb"}, f"{m.group(1)} is not created at start for every collection: {seen}"
    assert var["includeAll"] and var["multi"] and var["allValue"] == ".*" and var["refresh"] == 2


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_swaps_are_annotations(path: Path) -> None:
    """Approve, switch, rollback and abort of a model swap mark the time axis of every panel."""
    data = json.loads(path.read_text())
    (swaps,) = [a for a in data["annotations"]["list"] if a.get("datasource", {}).get("type") == "prometheus"]
    assert swaps["datasource"] == DS_REF and swaps["enable"] and not swaps["hide"]
    sels = parse(swaps["expr"]).selectors
    assert [s.metric for s in sels] == ["embguard_swap_events_total"]
    assert ("collection", "=~", "$collection") in sels[0].matchers
    assert re.search(r"\b(increase|changes)\(", swaps["expr"]) and swaps["expr"].rstrip().endswith("> 0")
    assert "{{event}}" in swaps["titleFormat"] and set(swaps["tagKeys"].split(",")) == {"collection", "event"}
    assert expr_problems(swaps["expr"]) == []


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_filters_by_collection(path: Path) -> None:
    """Every selector of a metric with a ``collection`` label matches ``collection=~"$collection"``, and every
    legend only uses labels the target's metrics have."""
    metrics = known_metrics()
    data = json.loads(path.read_text())
    for panel in promql.panels(data):
        for t in panel["targets"]:
            sels = parse(t["expr"].replace("$__rate_interval", "1m")).selectors
            for sel in sels:
                if "collection" in metrics.get(sel.metric, set()):
                    assert ("collection", "=~", "$collection") in sel.matchers, f"{panel['title']}: {sel.metric}"
            legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", t.get("legendFormat", "")))
            have = set(TARGET_LABELS).union(*(metrics.get(s.metric, set()) for s in sels))
            assert legend_labels <= have, f"{panel['title']}: legend uses {legend_labels - have}"


def test_overview_covers_the_brief() -> None:
    exprs = " ".join(e for _, e in dashboard_exprs(DASHBOARDS[0]))
    for metric in (
        "embguard_drift_p_value",
        "embguard_drift_alpha",
        "embguard_drift_sustained",
        "embguard_drift_detected",
        "embguard_ood_rate_ratio",
        "embguard_ood_expected_rate_ratio",
        "embguard_top1_similarity",
        "embguard_window_samples",
        "embguard_windows_sampled_total",
        "embguard_tap_rows_total",
        "embguard_reference_age_seconds",
        "embguard_active_model_info",
        "embguard_retrain_state",
        "embguard_candidate_awaiting_approval",
        "embguard_reindex_state",
        "embguard_reindex_progress_ratio",
        "embguard_reindex_documents_per_second",
    ):
        assert metric in exprs, metric
    daemon = " ".join(e for _, e in dashboard_exprs(DASHBOARDS[1]))
    for metric in (
        'up{job="embguard"}',
        "embguard_milvus_up",
        "embguard_job_runs_total",
        "embguard_job_duration_seconds_bucket",
        "embguard_job_last_success_timestamp_seconds",
        "embguard_checks_total",
        "embguard_build_info",
    ):
        assert metric in daemon, metric


# --- configs and docs ---------------------------------------------------------------------------------------


def test_prometheus_config() -> None:
    cfg = yaml.safe_load(PROM_CONFIG.read_text())
    assert cfg["global"]["scrape_interval"] == cfg["global"]["evaluation_interval"] == "15s"
    assert cfg["rule_files"] == ["rules/*.yml"]
    assert cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["embguard"]["static_configs"][0]["targets"] == ["embguard:9464"]
    # No embguard label clashes with the target's `job`/`instance`, so the target's labels stay authoritative.
    assert not jobs["embguard"].get("honor_labels", False)
    assert jobs["embguard-app"]["static_configs"][0]["targets"] == ["app:9465"]
    assert jobs["milvus"]["static_configs"][0]["targets"] == ["milvus-standalone:9091"]


def test_no_metric_label_clashes_with_target_labels() -> None:
    """A metric label named `job` or `instance` collides with the labels Prometheus gives every target: it is
    renamed `exported_job` (or, with honor_labels, overwrites the scrape job, and `up{job="embguard"}` no longer
    matches the daemon's own series). The daemon's scheduled job is the `task` label."""
    clashes = {name: labels & TARGET_LABELS for name, labels in registered_series().items() if labels & TARGET_LABELS}
    assert clashes == {}
    # and no expression, legend or alert text reads the daemon's task from `job` (now always "embguard")
    for name, expr in all_exprs():
        parsed = parse(substitute(expr))
        if any(sel.metric.startswith("embguard_job_") for sel in parsed.selectors):
            if parsed.grouping:  # by (job) would add up every task of the daemon into one series
                assert "task" in parsed.grouping, f"{name}: groups by {parsed.grouping}, not by the task"
            for sel in parsed.selectors:
                assert not any(label == "job" for label, _, _ in sel.matchers), name
    for path in DASHBOARDS:
        for panel in promql.panels(json.loads(path.read_text())):
            for t in panel["targets"]:
                if "embguard_job_" in t["expr"]:
                    assert "{{job}}" not in t.get("legendFormat", "").replace(" ", ""), panel["title"]
    for alert in _alerts():
        if "embguard_job_" in str(alert["expr"]):
            assert "$labels.job" not in json.dumps(alert["annotations"]), alert["alert"]


def test_alertmanager_config_shape() -> None:
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert cfg["route"]["receiver"] in receivers
    for route in cfg["route"].get("routes", []):
        assert route["receiver"] in receivers
    assert receivers[cfg["route"]["receiver"]]["webhook_configs"][0]["url"].startswith("http")


def _doc_text() -> str:
    return " ".join(DOCS.read_text().split())  # wrapped lines read as one


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_docs_cover_metrics_and_alerts() -> None:
    text = _doc_text()
    for doc in catalogue():
        assert f"`{doc.name}`" in text, doc.name
    for name in EXTERNAL:
        assert f"`{name}`" in text, name
    for path in DASHBOARDS:
        for p in promql.panels(json.loads(path.read_text())):
            assert p["title"] in text, f"{path.name}: panel {p['title']!r} not in docs"


def test_every_alert_has_a_runbook_section() -> None:
    """runbook_url = RUNBOOK_BASE#<alert lower case> lands on the alert's own section of docs/runbook.md, which
    says what it means, what to check first and which commands to run."""
    runbook = RUNBOOK.read_text()
    sections = dict(re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", runbook, re.S | re.M))
    for alert in _alerts():
        name = alert["alert"]
        assert name in sections, f"docs/runbook.md has no '## {name}' section"
        assert alert["annotations"]["runbook_url"].split("#", 1)[1] == _github_anchor(name)
        body = sections[name]
        for part in ("**Means:**", "**First checks:**", "**Commands:**"):
            assert part in body, f"{name}: no {part}"
        commands = "\n".join(re.findall(r"```sh\n(.*?)```", body, re.S))
        assert re.search(r"^embguard ", commands, re.M), f"{name}: the runbook's commands run no embguard command"
    assert RUNBOOK_BASE in runbook, "docs/runbook.md states the base the rules link to"
    assert set(sections) == {a["alert"] for a in _alerts()}, "a runbook section for an alert that does not exist"


@pytest.mark.parametrize(("name", "expr"), all_exprs(), ids=[n for n, _ in all_exprs()])
def test_expr_metrics_are_registered_and_documented(name: str, expr: str) -> None:
    """Every metric an alert rule or a dashboard (panels and annotations) reads is one that embguard really
    registers (the daemon's registry after start-up, the application's client counters; ``up`` is
    Prometheus' own) and is documented in docs/metrics.md."""
    registered = registered_series()
    text = _doc_text()
    for sel in selectors(expr):
        if sel.metric not in PROMETHEUS_OWN:
            assert sel.metric in registered, f"{name}: {sel.metric} is not registered by embguard"
        if sel.metric.startswith("embguard_proxy_"):
            assert PROXY_TABLE in PROXY_DOCS.read_text(), f"{name}: docs/proxy.md lost its generated metric table"
            assert any(sel.metric.startswith(n.removesuffix("_total")) for n, *_ in PROXY_CATALOGUE), sel.metric
        else:
            assert f"`{sel.metric}`" in text, f"{name}: {sel.metric} is not documented in docs/metrics.md"


def test_registered_series_reads_the_registries() -> None:
    """The helper above sees what a registry exposes, so the test above can fail."""
    series = registered_series()
    assert "embguard_checks_total" in series and "embguard_checks_created" in series
    assert "embguard_tap_rows_total" in series and series["embguard_last_check_timestamp_seconds"] <= {"collection"}
    assert "embguard_made_up_total" not in series
