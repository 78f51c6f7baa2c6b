"""What the daemon pages about, and the words it uses: alerts built from the latest check reports.

Plain functions over typed inputs (the watched collections, candidates awaiting approval, whether Milvus is
up), so the wording and the conditions are testable without Milvus or a scheduler. The notifier
(:mod:`embguard.alerts`) dedups, delivers and resolves what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from embguard.alerts.incidents import Alert
from embguard.checks.reports import CheckReport
from embguard.config.credentials import redact_uri
from embguard.daemon.clusters import CLUSTERS_SHOWN, described
from embguard.daemon.watched import Watched
from embguard.models.registry import ModelVersion

# Example texts shown per drifted cluster, and how much of each.


def milvus_down(uri: str) -> Alert:
    return Alert(
        key="milvus",
        name="MilvusDown",
        collection="",
        severity="critical",
        summary=f"embguard cannot reach Milvus at {redact_uri(uri)}",
        next_command="embguard status",
    )


def report_numbers(r: CheckReport) -> dict[str, Any]:
    """The numbers an alert carries: every monitor's p-value, statistic and streak, and the window sizes."""
    numbers: dict[str, Any] = {
        o.monitor: {"p_value": o.p_value, "statistic": o.statistic, "consecutive": o.consecutive} for o in r.outcomes
    }
    numbers.update(
        {
            "window_queries": r.n_current,
            "reference_queries": r.n_reference,
            "ood_rate": r.ood_rate,
            "ood_expected_rate": r.ood_expected_rate,
        }
    )
    return numbers


def drift_sustained(r: CheckReport, consecutive: int, clusters: tuple[Any, ...]) -> Alert:
    hits = ", ".join(f"{o.monitor} p={o.p_value:.2g}" for o in r.outcomes if o.sustained and o.p_value is not None)
    if r.carried_by:  # the combined page names the monitors that carried it
        hits += f"; carried by {', '.join(r.carried_by)}"
    alias = r.collection
    return Alert(
        key=f"drift:{alias}",
        name="EmbeddingDriftSustained",
        collection=alias,
        severity="warning",
        summary=f"{alias}: query drift sustained over {consecutive} checks ({hits})",
        details=report_numbers(r),
        clusters=clusters,
        next_command=f"embguard retrain --collection {alias}",
    )


def ood_high(r: CheckReport, clusters: tuple[Any, ...]) -> Alert | None:
    ood = next((o for o in r.outcomes if o.monitor == "ood"), None)
    if ood is None or not ood.sustained or not r.ood_rate or not r.ood_expected_rate:
        return None
    alias = r.collection
    return Alert(
        key=f"ood:{alias}",
        name="OODRateHigh",
        collection=alias,
        severity="warning",
        summary=f"{alias}: {100 * r.ood_rate:.0f}% of queries out of distribution "
        f"(expected {100 * r.ood_expected_rate:.0f}%)",
        details=report_numbers(r),
        clusters=clusters,
        next_command="embguard status",
    )


def candidate_awaiting(alias: str, v: ModelVersion) -> Alert:
    verdict = v.verdict
    gate = (
        f"passed the gate ({verdict.metric} {verdict.base_mean:.3f} -> {verdict.candidate_mean:.3f})"
        if verdict is not None
        else "is awaiting approval (no gate verdict recorded)"
    )
    return Alert(
        key=f"candidate:{alias}:{v.version}",
        name="CandidateAwaitingApproval",
        collection=alias,
        severity="info",
        summary=f"{alias}: candidate {v.version} {gate}",
        details={"reasons": list(verdict.reasons) if verdict is not None else []},
        next_command=f"embguard retrain --approve --candidate {v.version} --collection {alias}",
    )


def active_alerts(
    *,
    milvus_up: bool,
    milvus_uri: str,
    watched: Mapping[str, Watched],
    awaiting: Mapping[str, Sequence[ModelVersion]],
    consecutive: int,
    describe: Callable[[Watched, Mapping[str, Any]], dict[str, Any]],
) -> list[Alert]:
    """Every condition active now. ``describe`` turns a drifted cluster into what the page shows of it.

    Drift and OOD pages come from ``Watched.evidence``, the latest check that tested a window, which the drift
    gauges publish too: a skipped check (too few queries) is no evidence and neither opens nor resolves one."""
    out = [] if milvus_up else [milvus_down(milvus_uri)]
    for alias, w in watched.items():
        r = w.evidence
        if r is None:
            out += [candidate_awaiting(alias, v) for v in awaiting.get(alias, [])]
            continue
        if w.clusters is None or w.clusters[0] is not r:
            w.clusters = (r, tuple(described(w, c, describe) for c in r.clusters[:CLUSTERS_SHOWN]))
        clusters = w.clusters[1]
        if r.sustained:
            out.append(drift_sustained(r, consecutive, clusters))
        out += [candidate_awaiting(alias, v) for v in awaiting.get(alias, [])]
        ood = ood_high(r, clusters)
        if ood is not None:
            out.append(ood)
    return out


def settled(key: str, *, watched_milvus: bool, watched: Mapping[str, Watched], registry_ok: bool) -> bool:
    """Whether the condition behind alert ``key`` has been evaluated since the daemon started: a remembered
    alert is resolved only then, so a restart never sends a spurious resolve."""
    kind, _, rest = key.partition(":")
    if kind == "milvus":
        return watched_milvus
    if kind in ("drift", "ood"):
        w = watched.get(rest)
        return w is None or w.evaluated  # a collection no longer watched: resolve what it left open
    if kind == "candidate":
        return registry_ok
    return True
