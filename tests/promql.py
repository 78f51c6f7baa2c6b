"""PromQL expressions of the shipped rules and Grafana dashboards, for the rules tests and the live Prometheus
test: ``dashboard_exprs(path)`` and ``rule_exprs(path)`` return ``[(name, expr), ...]`` (``annotation_exprs(path)``
the dashboard annotations'); ``substitute(expr)`` replaces the Grafana variables; ``panels(dashboard)`` lists a
dashboard's panels, collapsed rows' included."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

# What the live dashboard test substitutes for the only Grafana variables the dashboards' queries may use
# (`$datasource` is used by datasource references only, never inside a query).
GRAFANA_VARS = {"$collection": ".*", "$__rate_interval": "1m"}


def dashboard_exprs(path: str | Path) -> list[tuple[str, str]]:
    """``(name, expr)`` of every panel target of a dashboard JSON; name is ``"<panel title> [<refId>]"``.
    Grafana variables are left in (``$collection``, ``$__rate_interval``)."""
    data = json.loads(Path(path).read_text())
    out = []
    for panel in panels(data):
        for target in panel.get("targets", []):
            out.append((f"{panel.get('title', '')} [{target.get('refId', '')}]", target.get("expr", "")))
    return out


def annotation_exprs(path: str | Path) -> list[tuple[str, str]]:
    """``(name, expr)`` of every Prometheus annotation query of a dashboard JSON (built-in ones have none)."""
    data = json.loads(Path(path).read_text())
    return [
        (f"annotation {a['name']}", a["expr"])
        for a in data.get("annotations", {}).get("list", [])
        if a.get("datasource", {}).get("type") == "prometheus"
    ]


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


def panels(dashboard: dict) -> list[dict]:
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows nest their panels
    return out
