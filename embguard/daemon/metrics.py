"""The metric catalogue: every metric the daemon exports, in one place, on a registry passed in.

Names follow ``embguard_<thing>_<unit>``; counters end in ``_total``; labels stay low-cardinality:
``collection`` (a watched alias), ``monitor`` (a configured monitor name), ``task`` (the daemon's scheduled job:
never ``job``, which Prometheus sets to the scrape job), ``kind``, ``quantile``, ``event``,
``state``, ``model_id`` (only on the info metric; a handful of model versions over a deployment's life).
The application-side client exports its own few (``embguard_client_*``, ``embguard_tap_rows_total``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from embguard.checks.reports import CALIBRATED, COMBINED, CheckReport

if TYPE_CHECKING:
    from embguard.swap.state import SwapState

RETRAIN_STATES = ("idle", "training", "awaiting_approval", "rejected", "failed")
REINDEX_STATES = ("idle", "backfilling", "verifying", "switching", "done", "failed")
# A swap's phases as the reindex_state metric shows them.
SWAP_PHASE_STATES = {
    "planned": "backfilling",
    "created": "backfilling",
    "dual_write": "backfilling",
    "backfilled": "verifying",
    "reconciled": "verifying",
    "verified": "switching",
    "switched": "switching",
    "done": "done",
}

# The swap events embguard_swap_events_total counts, derived from each alias's persisted swap history:
# approve (a swap started), switch (the alias moved to the new collection), rollback, abort.
SWAP_EVENTS = ("approve", "switch", "rollback", "abort")
CHECK_OUTCOMES = ("ok", "error", "skipped")


def swap_event_counts(state: SwapState) -> dict[str, int]:
    """How many of each swap event ``state``'s history holds. Every approval ends in a switch or an abort, or
    is the swap still under way, so approvals are counted from those: monotonic as the history grows."""
    counts = dict.fromkeys(SWAP_EVENTS, 0)
    for h in state.history:
        if h.action in counts:
            counts[h.action] += 1
    counts["approve"] = counts["switch"] + counts["abort"] + (0 if state.phase == "done" else 1)
    return counts


@dataclass(frozen=True)
class MetricDoc:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


class Metrics:
    """All daemon metrics, registered on ``registry`` (tests pass a fresh ``CollectorRegistry``)."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        c = ("collection",)
        cm = ("collection", "monitor")
        self.drift_statistic = Gauge(
            "embguard_drift_statistic", "Test statistic of the last check", cm, registry=registry
        )
        self.drift_p_value = Gauge(
            "embguard_drift_p_value", "p-value of the last check (calibrated monitors)", cm, registry=registry
        )
        self.drift_detected = Gauge(
            "embguard_drift_detected", "1 if the last window drifted at alpha", cm, registry=registry
        )
        self.drift_sustained = Gauge(
            "embguard_drift_sustained",
            "1 if drift persisted over the configured consecutive windows (the sequential alarm)",
            cm,
            registry=registry,
        )
        self.drift_consecutive = Gauge(
            "embguard_drift_consecutive_windows", "Drifted windows in a row", cm, registry=registry
        )
        self.drift_alpha = Gauge("embguard_drift_alpha", "Significance level of each test", c, registry=registry)
        self.check_interval = Gauge(
            "embguard_check_interval_seconds", "Configured seconds between drift checks", c, registry=registry
        )
        self.ood_rate = Gauge(
            "embguard_ood_rate_ratio", "Share of window queries flagged out-of-distribution", c, registry=registry
        )
        self.ood_expected = Gauge(
            "embguard_ood_expected_rate_ratio", "OOD share expected with no drift", c, registry=registry
        )
        self.top1 = Gauge(
            "embguard_top1_similarity",
            "Top-1 query-to-corpus similarity of window queries",
            ("collection", "quantile"),
            registry=registry,
        )
        self.window_size = Gauge(
            "embguard_window_samples", "Rows in the last sampled window", ("collection", "kind"), registry=registry
        )
        self.windows_total = Counter(
            "embguard_windows_sampled_total", "Windows sampled", ("collection", "kind"), registry=registry
        )
        self.reference_age = Gauge(
            "embguard_reference_age_seconds", "Age of the reference in use", c, registry=registry
        )
        self.reference_size = Gauge("embguard_reference_samples", "Rows in the reference in use", c, registry=registry)
        self.tap_stored = Gauge(
            "embguard_tap_stored_queries", "Tapped queries stored for the collection", c, registry=registry
        )
        self.feedback_stored = Gauge(
            "embguard_feedback_stored_events",
            "Feedback events stored, by signal",
            ("collection", "signal"),
            registry=registry,
        )
        self.last_check = Gauge(
            "embguard_last_check_timestamp_seconds", "Unix time of the last completed check", c, registry=registry
        )
        self.checks_total = Counter(
            "embguard_checks_total", "Checks run, by outcome", ("collection", "outcome"), registry=registry
        )
        self.job_runs = Counter(
            "embguard_job_runs_total", "Scheduled job runs, by outcome", ("task", "outcome"), registry=registry
        )
        self.job_duration = Histogram(
            "embguard_job_duration_seconds",
            "Scheduled job run time",
            ("task",),
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.job_last_success = Gauge(
            "embguard_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run",
            ("task",),
            registry=registry,
        )
        self.milvus_up = Gauge("embguard_milvus_up", "1 if Milvus answers", registry=registry)
        self.active_model = Gauge(
            "embguard_active_model_info",
            "The model serving the collection (value 1)",
            ("collection", "model_id", "served_by"),
            registry=registry,
        )
        self.retrain_state = Gauge(
            "embguard_retrain_state",
            "1 for the collection's current retrain state",
            ("collection", "state"),
            registry=registry,
        )
        self.candidate_awaiting = Gauge(
            "embguard_candidate_awaiting_approval",
            "1 while a gated candidate model waits for `embguard retrain --approve`",
            c,
            registry=registry,
        )
        self.reindex_state = Gauge(
            "embguard_reindex_state",
            "1 for the collection's current reindex state",
            ("collection", "state"),
            registry=registry,
        )
        self.reindex_progress = Gauge(
            "embguard_reindex_progress_ratio", "Backfilled share of the documents", c, registry=registry
        )
        self.reindex_rate = Gauge("embguard_reindex_documents_per_second", "Backfill rate", c, registry=registry)
        self.reindex_last_progress = Gauge(
            "embguard_reindex_last_progress_timestamp_seconds",
            "Unix time the backfill last made progress",
            c,
            registry=registry,
        )
        self.build_info = Gauge("embguard_build_info", "embguard version (value 1)", ("version",), registry=registry)
        self.swap_events = Counter(
            "embguard_swap_events",
            "Model swap events (approve, switch, rollback, abort), from the persisted swap history",
            ("collection", "event"),
            registry=registry,
        )
        self.state_writable = Gauge(
            "embguard_state_writable",
            "1 if the last write under state.dir succeeded, 0 while writes fail (full, read-only)",
            registry=registry,
        )
        self.state_write_errors = Counter(
            "embguard_state_write_errors", "Failed writes under state.dir", registry=registry
        )
        self.state_writable.set(1)

    def set_state(self, gauge: Gauge, collection: str, state: str, states: tuple[str, ...]) -> None:
        for s in states:
            gauge.labels(collection, s).set(1.0 if s == state else 0.0)

    def set_active_model(self, collection: str, model_id: str, served_by: str) -> None:
        # Keep one series per collection: drop older model ids so the info metric shows the live one.
        for labels in list(self.active_model._metrics):  # prometheus_client has no public way to list series
            if labels[0] == collection and labels[1:] != (model_id, served_by):
                self.active_model.remove(*labels)
        self.active_model.labels(collection, model_id, served_by).set(1.0)

    def init_series(
        self,
        collections: Iterable[str],
        jobs: Iterable[str],
        alpha: float,
        check_interval_s: float,
        monitors: Iterable[str] = (),
    ) -> None:
        """Create every per-collection and per-job series at start, so dashboards and alert rules never see
        "no data" where the truthful answer is "nothing happening": the last-check time is 0 (never checked)
        and the collection's one drift decision (monitor ``combined``) is 0 until a check or a restored decision
        (:meth:`publish_decision`) says otherwise; swap events count 0 until the swap history says otherwise."""
        paged = any(m in CALIBRATED for m in monitors)
        for c in collections:
            self.last_check.labels(c).set(0)
            if paged:
                self.drift_sustained.labels(c, COMBINED).set(0)
                self.drift_consecutive.labels(c, COMBINED).set(0)
            for event in SWAP_EVENTS:
                self.swap_events.labels(c, event)
            self.drift_alpha.labels(c).set(alpha)
            self.check_interval.labels(c).set(check_interval_s)
            self.set_state(self.retrain_state, c, "idle", RETRAIN_STATES)
            self.candidate_awaiting.labels(c).set(0)
            self.set_state(self.reindex_state, c, "idle", REINDEX_STATES)
            self.reindex_progress.labels(c).set(0)
            self.reindex_rate.labels(c).set(0)
            self.reindex_last_progress.labels(c).set(0)
            for outcome in CHECK_OUTCOMES:
                self.checks_total.labels(c, outcome)
        for job in jobs:
            for outcome in ("success", "failure", "skipped"):
                self.job_runs.labels(job, outcome)

    def publish_report(self, report: CheckReport) -> None:
        """One check's outcome as metrics: counted, and published as the decision only when it tested a window
        (a skipped or failed check is no evidence and leaves the drift series as they were)."""
        self.count_check(report)
        if report.tested:
            self.publish_decision(report)

    def count_check(self, report: CheckReport) -> None:
        outcome = "error" if report.error else "skipped" if report.skipped else "ok"
        self.checks_total.labels(report.collection, outcome).inc()

    def publish_decision(self, report: CheckReport) -> None:
        """The collection's drift decision (the latest check that tested a window) as gauges; the pages are
        built from the same report (``Watched.evidence``), so the two always agree."""
        alias = report.collection
        for o in report.outcomes:
            self.drift_statistic.labels(alias, o.monitor).set(o.statistic)
            if o.p_value is not None:
                self.drift_p_value.labels(alias, o.monitor).set(max(o.p_value, 1e-300))
            self.drift_detected.labels(alias, o.monitor).set(int(o.drift))
            self.drift_sustained.labels(alias, o.monitor).set(int(o.sustained))
            self.drift_consecutive.labels(alias, o.monitor).set(o.consecutive)
        if report.ood_rate is not None:
            self.ood_rate.labels(alias).set(report.ood_rate)
            self.ood_expected.labels(alias).set(report.ood_expected_rate or 0.0)
        for q, v in report.top1_quantiles.items():
            self.top1.labels(alias, q).set(v)
        self.last_check.labels(alias).set(report.checked_at)

    def publish_swaps(self, states: Iterable[SwapState], watched: Iterable[str]) -> None:
        """The reindex gauges of every watched alias with a swap on record."""
        names = set(watched)
        for st in states:
            if st.alias not in names:
                continue
            state = "failed" if st.error else SWAP_PHASE_STATES.get(st.phase, "idle")
            self.set_state(self.reindex_state, st.alias, state, REINDEX_STATES)
            self.reindex_progress.labels(st.alias).set(st.done / st.total if st.total else 0.0)
            self.reindex_rate.labels(st.alias).set(st.rate if state == "backfilling" else 0.0)
            self.reindex_last_progress.labels(st.alias).set(st.updated_at)
            for event, n in swap_event_counts(st).items():
                child = self.swap_events.labels(st.alias, event)
                seen = child._value.get()  # prometheus_client has no public read of a counter
                if n > seen:  # the history only grows; a counter never goes down (a removed file keeps it)
                    child.inc(n - seen)


def catalogue() -> list[MetricDoc]:
    """Every daemon metric with its type, labels and help (for docs and tests)."""
    m = Metrics(CollectorRegistry())
    docs: list[MetricDoc] = []
    # prometheus_client keeps a metric's name, type, labels and help in private attributes only.
    for collector in m.registry._collector_to_names:
        c: Any = collector
        full = f"{c._name}_total" if c._type == "counter" else c._name
        docs.append(MetricDoc(full, c._type, tuple(c._labelnames), c._documentation))
    return sorted(docs, key=lambda d: d.name)
