"""The daemon's sample and check jobs as plain functions over a watched collection (:class:`Watched`), Milvus
and the metrics, and ``embguard check``'s one check now. The functions never schedule, retry or swallow errors:
:class:`embguard.daemon.service.Daemon` does that around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embguard.checks.monitor import CollectionMonitor
from embguard.checks.references import ReferenceStore
from embguard.checks.reports import CheckReport, read_evidence
from embguard.checks.windows import Window, query_window, sample_documents
from embguard.client.tap import SIGNALS
from embguard.config.settings import CollectionSettings, Settings
from embguard.daemon.metrics import Metrics
from embguard.daemon.watched import Watched
from embguard.errors import EmbguardError, ReferenceMissing
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus, recorded_model_id
from embguard.milvus.names import FEEDBACK_COLLECTION

log = logging.getLogger("embguard.daemon")

# The retrieval monitor's document sample is refreshed at least this often (and whenever the alias moves).
CORPUS_MAX_AGE_S = 6 * 3600


def sample_queries(milvus: Milvus, watched: Watched, start_ms: int, end_ms: int, metrics: Metrics) -> Window:
    """Read the tapped queries of ``[start_ms, end_ms)`` into ``watched.window``."""
    watched.window = query_window(milvus, watched.alias, start_ms, end_ms)
    metrics.window_size.labels(watched.alias, "queries").set(watched.window.size)
    metrics.windows_total.labels(watched.alias, "queries").inc()
    return watched.window


def publish_stored(milvus: Milvus, alias: str, tap_collection: str, metrics: Metrics) -> None:
    """How many tapped queries and feedback events Milvus holds for ``alias`` (retention dashboards)."""
    if milvus.has_collection(tap_collection):
        metrics.tap_stored.labels(alias).set(milvus.count(tap_collection, filter=f"alias == {literal(alias)}"))
    if milvus.has_collection(FEEDBACK_COLLECTION):
        for sig in SIGNALS:
            where = f"alias == {literal(alias)} and signal == {literal(sig)}"
            metrics.feedback_stored.labels(alias, sig).set(milvus.count(FEEDBACK_COLLECTION, filter=where))


def publish_swaps(settings: Settings, watched: dict[str, Watched], metrics: Metrics) -> None:
    """Every alias's swap phase and progress (the reindex dashboards and alerts)."""
    from embguard.swap.state import SwapStore

    try:
        states = SwapStore(settings.state.dir).all()
    except EmbguardError as exc:  # a corrupt swap state must not stop sampling; say which file, once a tick
        log.error("%s", exc)
        return
    metrics.publish_swaps(states, watched)


def vector_lookup(
    milvus: Callable[[], Milvus], collection: str, spec: CollectionSettings
) -> Callable[[Sequence[Any]], dict[Any, np.ndarray]]:
    """Vectors by id from ``collection``, for hits outside the retrieval monitor's document sample.

    ``milvus`` is a getter: the monitor outlives a reconnect, and must use the connection of the moment."""

    def lookup(ids: Sequence[Any]) -> dict[Any, np.ndarray]:
        rows = milvus().query(collection, ids=list(ids), output_fields=[spec.id_field, spec.vector_field])
        return {r[spec.id_field]: np.asarray(r[spec.vector_field], dtype=np.float32) for r in rows}

    return lookup


def check_collection(
    settings: Settings,
    milvus: Callable[[], Milvus],
    watched: Watched,
    references: ReferenceStore,
    metrics: Metrics,
    now: float | None = None,
) -> CheckReport:
    """Check the latest window of one collection against its reference; a report says why when it cannot."""
    m = milvus()
    alias = watched.alias
    served_by = m.resolve(alias)
    model_id = recorded_model_id(m.properties(served_by), served_by)
    metrics.set_active_model(alias, model_id, served_by)
    now = time.time() if now is None else now

    def skipped(reason: str) -> CheckReport:
        return CheckReport(
            collection=alias,
            served_by=served_by,
            model_id=model_id,
            reference_version=0,
            n_reference=0,
            n_current=watched.window.size if watched.window else 0,
            checked_at=now,
            skipped=reason,
        )

    try:
        ref = references.latest(alias, "queries")
    except ReferenceMissing as exc:
        return skipped(str(exc))
    metrics.reference_age.labels(alias).set(ref.age_s)
    metrics.reference_size.labels(alias).set(ref.size)
    if ref.model_id != model_id:
        return skipped(
            f"reference v{ref.version:04d} was made by {ref.model_id}, but {alias} is served by "
            f"{model_id}; capture a new baseline with `embguard baseline capture {alias}`"
        )
    mon = watched.monitor
    if mon is None or mon.reference_version != ref.version or mon.model_id != model_id:
        if "retrieval" in settings.drift.monitors and (
            watched.corpus is None
            or watched.corpus.collection != served_by
            or now - watched.corpus_at > CORPUS_MAX_AGE_S
        ):
            watched.corpus = sample_documents(m, watched.spec, settings.sampling.doc_sample_size, with_text=False)
            watched.corpus_at = now
            metrics.window_size.labels(alias, "documents").set(watched.corpus.size)
            metrics.windows_total.labels(alias, "documents").inc()
        lookup = vector_lookup(milvus, served_by, watched.spec)
        watched.monitor = watched.resume(
            CollectionMonitor(
                alias,
                settings.drift,
                references.load(ref),
                ref.version,
                corpus=watched.corpus,
                lookup=lookup,
                window_s=settings.sampling.window_s,
            )
        )
        mon = watched.monitor
    if watched.window is None:
        return skipped("no query window sampled yet")
    return mon.check(watched.window, served_by)


@dataclass(frozen=True)
class CheckRun:
    """One check of the watched collections now (``embguard check``): the daemon's check job, once, on the
    latest ``sampling.window_s`` of tapped queries, continuing the streaks the daemon persisted. It writes
    nothing (no state, no pages, no pruning, no retraining).

    ``exit_code``: 0 no drift; 1 drift (a collection's decision rejected this window, or drift is sustained);
    2 no verdict (Milvus unreachable, an unknown collection, no reference, too few queries, a failed check)."""

    reports: dict[str, CheckReport]
    error: str = ""  # a problem before any collection could be checked

    @property
    def exit_code(self) -> int:
        if self.error or not self.reports or any(not r.tested for r in self.reports.values()):
            return 2
        return 1 if any(r.drift or r.sustained for r in self.reports.values()) else 0

    @property
    def verdict(self) -> str:
        return {0: "no drift", 1: "drift", 2: "error"}[self.exit_code]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verdict": self.verdict, "exit_code": self.exit_code}
        if self.error:
            out["error"] = self.error
        out["collections"] = {alias: r.to_json() for alias, r in self.reports.items()}
        return out

    def lines(self) -> list[str]:
        out = [f"error: {self.error}"] if self.error else []
        for r in self.reports.values():
            out.append(r.summary())
            for c in r.clusters:
                examples = " | ".join(repr(e) for e in c.get("examples", [])) or "(no example texts)"
                about = f" about {', '.join(c['terms'])}" if c.get("terms") else ""
                out.append(
                    f"  new cluster{about}: {100 * float(c.get('share', 0)):.0f}% of queries ({c.get('size', 0)}), "
                    f"distance {float(c.get('distance', 0)):.2f}: {examples}"
                )
        out.append(f"verdict: {self.verdict} (exit {self.exit_code})")
        return out


def check_now(settings: Settings, collection: str | None = None, now: float | None = None) -> CheckRun:
    """Check ``collection`` (default: every watched one) once, now. Never raises a known error: what went
    wrong is in the result (see :class:`CheckRun`)."""
    from prometheus_client import CollectorRegistry

    from embguard.config.credentials import redact_uri
    from embguard.config.statedir import StateDir
    from embguard.daemon.clusters import describe_cluster, describe_report

    try:
        specs = [settings.collection(collection)] if collection else list(settings.collections)
    except EmbguardError as exc:
        return CheckRun({}, redact_uri(str(exc)))
    if not specs:
        return CheckRun({}, "no watched collections: add a [[collections]] entry to the config")
    try:
        milvus = Milvus.connect(settings)
    except EmbguardError as exc:
        return CheckRun({}, redact_uri(str(exc)))
    now = time.time() if now is None else now
    state = StateDir(settings.state.dir)
    references = ReferenceStore(settings.state.dir)
    metrics = Metrics(CollectorRegistry())  # the daemon's code path, with metrics nobody scrapes
    reports: dict[str, CheckReport] = {}

    def texts_of(coll: str, ids: list[Any], field: str) -> list[str]:
        try:
            return [str(r[field]) for r in milvus.query(coll, ids=ids, output_fields=[field])]
        except EmbguardError:
            return []

    try:
        for spec in specs:
            w = Watched(spec)
            try:
                w.restore(read_evidence(state, spec.name))
            except EmbguardError as exc:  # an unreadable decision: this check starts its streaks afresh
                log.info("%s", exc)
            end_ms = int(now * 1000)
            try:
                sample_queries(milvus, w, end_ms - int(settings.sampling.window_s * 1000), end_ms, metrics)
                report = check_collection(settings, lambda: milvus, w, references, metrics, now=now)
            except EmbguardError as exc:
                report = CheckReport.failure(spec.name, redact_uri(str(exc)), now)
            reports[spec.name] = describe_report(w, report, lambda w_, c: describe_cluster(w_, c, texts_of))
    finally:
        milvus.close()
    return CheckRun(reports)
