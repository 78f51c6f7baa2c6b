"""Prometheus rules, config and Grafana dashboards: promtool checks and unit tests, dashboard structure, and
every PromQL expression checked against the metric catalogue (names, labels, label values).

Helpers for other test modules (pytest puts tests/ on sys.path): ``dashboard_exprs(path)`` and
``rule_exprs(path)`` return ``[(name, expr), ...]``; ``selectors(expr)`` parses the metric selectors out of an
expression. Needs ``promtool`` (Debian package ``prometheus``): without it the promtool tests skip, or fail
when ``CI`` is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from embguard.metrics import REINDEX_STATES, RETRAIN_STATES, catalogue

REPO = Path(__file__).resolve().parents[1]
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
# Labels Prometheus attaches to every scraped series (the daemon is scraped with honor_labels, so its own
# `job` label - the scheduled job - wins on the embguard_job_* metrics).
TARGET_LABELS = {"job", "instance"}
# Metrics exported by the application process (scrape job embguard-app) and by Prometheus itself.
EXTERNAL = {
    "up": (),
    "embguard_tap_rows_total": ("outcome",),
    "embguard_client_searches_total": (),
    "embguard_client_feedback_total": ("signal",),
}
# Known values of enumerated labels, per metric (exact `=` matchers must use one of them).
JOBS = ("sample", "check", "prune", "retrain_policy", "milvus_watch")
LABEL_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("embguard_retrain_state", "state"): RETRAIN_STATES,
    ("embguard_reindex_state", "state"): REINDEX_STATES,
    ("embguard_checks_total", "outcome"): ("ok", "error", "skipped"),
    ("embguard_job_runs_total", "outcome"): ("success", "failure"),
    ("embguard_tap_rows_total", "outcome"): ("sampled", "written", "dropped_buffer_full", "dropped_write_error"),
    ("embguard_top1_similarity", "quantile"): ("0.05", "0.5", "0.95"),
    ("embguard_window_samples", "kind"): ("queries", "documents"),
    ("embguard_windows_sampled_total", "kind"): ("queries", "documents"),
    ("up", "job"): ("embguard", "embguard-app", "milvus"),
    **{
        (m, "job"): JOBS
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
# What the live dashboard test substitutes for the only Grafana variables the dashboards may use.
GRAFANA_VARS = {"$collection": ".*", "$__rate_interval": "1m"}


# --- expressions -------------------------------------------------------------------------------------------


def dashboard_exprs(path: str | Path) -> list[tuple[str, str]]:
    """``(name, expr)`` of every panel target of a dashboard JSON; name is ``"<panel title> [<refId>]"``.
    Grafana variables are left in (``$collection``, ``$__rate_interval``)."""
    data = json.loads(Path(path).read_text())
    out = []
    for panel in _panels(data):
        for target in panel.get("targets", []):
            out.append((f"{panel.get('title', '')} [{target.get('refId', '')}]", target.get("expr", "")))
    return out


def rule_exprs(path: str | Path) -> list[tuple[str, str]]:
    """``(name, expr)`` of every alerting (name = alert) and recording (name = record) rule of a rule file."""
    data = yaml.safe_load(Path(path).read_text())
    return [
        (r.get("alert") or r.get("record"), str(r["expr"]).strip()) for group in data["groups"] for r in group["rules"]
    ]


def substitute(expr: str) -> str:
    """The expression as the live test runs it: Grafana variables replaced."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    return expr


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows nest their panels
    return out


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
        else:
            out[doc.name] = set(doc.labels)
    for name, labels in EXTERNAL.items():
        out[name] = set(labels)
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
        out += [(f"{path.name}: {n}", e) for n, e in dashboard_exprs(path)]
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
    """promtool parses every dashboard expression (as recording rules, variables substituted)."""
    exprs = [e for path in DASHBOARDS for _, e in dashboard_exprs(path)]
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
    assert ann.get("runbook_url") == f"README.md#runbook-{name.lower()}"
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


def _ds_uids(obj: object) -> list[str]:
    """Every datasource uid anywhere in a dashboard."""
    out = []
    if isinstance(obj, dict):
        ds = obj.get("datasource")
        if isinstance(ds, dict):
            out.append(ds.get("uid"))
        elif isinstance(ds, str):
            out.append(ds)
        for v in obj.values():
            out += _ds_uids(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _ds_uids(v)
    return out


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path: Path) -> None:
    data = json.loads(path.read_text())
    assert data["uid"] == path.stem and data["title"]
    assert data["schemaVersion"] >= 39
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert set(variables) == {"collection"}
    assert "label_values(embguard_drift_p_value, collection)" in json.dumps(variables["collection"]["query"])
    assert variables["collection"]["datasource"] == {"type": "prometheus", "uid": "prometheus"}
    panels = _panels(data)
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids: {ids}"
    assert set(_ds_uids(data)) == {"prometheus"}
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        assert p.get("title"), p["id"]
        assert p["datasource"] == {"type": "prometheus", "uid": "prometheus"}, p["title"]
        assert p.get("targets"), f"{p['title']}: no targets"
        for t in p["targets"]:
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
def test_dashboard_filters_by_collection(path: Path) -> None:
    """Every selector of a metric with a ``collection`` label matches ``collection=~"$collection"``, and every
    legend only uses labels the target's metrics have."""
    metrics = known_metrics()
    data = json.loads(path.read_text())
    for panel in _panels(data):
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
    assert jobs["embguard"]["honor_labels"] is True  # keeps embguard_job_*{job="<scheduled job>"}
    assert jobs["embguard-app"]["static_configs"][0]["targets"] == ["app:9465"]
    assert jobs["milvus"]["static_configs"][0]["targets"] == ["milvus-standalone:9091"]


def test_alertmanager_config_shape() -> None:
    cfg = yaml.safe_load(AM_CONFIG.read_text())
    receivers = {r["name"]: r for r in cfg["receivers"]}
    assert cfg["route"]["receiver"] in receivers
    for route in cfg["route"].get("routes", []):
        assert route["receiver"] in receivers
    assert receivers[cfg["route"]["receiver"]]["webhook_configs"][0]["url"].startswith("http")


def test_docs_cover_metrics_and_alerts() -> None:
    text = " ".join(DOCS.read_text().split())  # wrapped lines read as one
    for doc in catalogue():
        assert f"`{doc.name}`" in text, doc.name
    for name in EXTERNAL:
        assert f"`{name}`" in text, name
    readme = (REPO / "README.md").read_text()
    for alert in _alerts():  # runbook_url points at README.md#runbook-<alert>
        assert f'id="runbook-{alert["alert"].lower()}"' in readme, alert["alert"]
    for path in DASHBOARDS:
        for p in _panels(json.loads(path.read_text())):
            assert p["title"] in text, f"{path.name}: panel {p['title']!r} not in docs"
