"""The daemon's sample and check jobs as plain functions over a watched collection, Milvus and the metrics.

``Watched`` is everything the daemon remembers about one collection between ticks: the last query window,
the fitted monitor (refitted when the reference or the serving model changes), the document sample the
retrieval monitor clusters, and the last report. The functions never schedule, retry or swallow errors:
:class:`embguard.daemon.Daemon` does that around them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .checks import CollectionMonitor
from .config import CollectionSettings, Settings
from .errors import EmbguardError
from .metrics import Metrics
from .milvus import MODEL_ID_PROPERTY, Milvus, literal
from .references import ReferenceMissing, ReferenceStore
from .reports import CheckReport
from .sampling import Window, query_window, sample_documents
from .tap import FEEDBACK_COLLECTION, SIGNALS

log = logging.getLogger("embguard.daemon")

# The retrieval monitor's document sample is refreshed at least this often (and whenever the alias moves).
CORPUS_MAX_AGE_S = 6 * 3600


@dataclass
class Watched:
    spec: CollectionSettings
    window: Window | None = None
    monitor: CollectionMonitor | None = None
    corpus: Window | None = None
    corpus_at: float = 0.0
    report: CheckReport | None = None
    # Whether a check with a sampled window ran since start: until then a remembered drift alert is neither
    # confirmed nor cleared, so it must not be resolved (item: spurious resolve on every restart).
    evaluated: bool = False
    # (report, cluster descriptions) of the last alert built, so alerts re-evaluated every watch tick do not
    # query Milvus for example texts each time.
    clusters: tuple[Any, tuple[Any, ...]] | None = None

    @property
    def alias(self) -> str:
        return self.spec.name

    def record(self, report: CheckReport) -> CheckReport:
        self.report = report
        self.evaluated = self.evaluated or self.window is not None
        return report


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
    from .swapstate import SwapStore

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
    model_id = m.properties(served_by).get(MODEL_ID_PROPERTY, "")
    metrics.set_active_model(alias, model_id or "unknown", served_by)
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
        watched.monitor = CollectionMonitor(
            alias,
            settings.drift,
            references.load(ref),
            ref.version,
            corpus=watched.corpus,
            lookup=lookup,
            window_s=settings.sampling.window_s,
        )
        mon = watched.monitor
    if watched.window is None:
        return skipped("no query window sampled yet")
    return mon.check(watched.window, served_by)
