"""What the daemon remembers about one collection between ticks: the last query window, the fitted monitor
(refitted when the reference or the serving model changes), the document sample the retrieval monitor clusters,
the last report and the one drift decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embguard.checks.monitor import CollectionMonitor
from embguard.checks.reports import CheckReport
from embguard.checks.windows import Window
from embguard.config.settings import CollectionSettings


@dataclass
class Watched:
    spec: CollectionSettings
    window: Window | None = None
    monitor: CollectionMonitor | None = None
    corpus: Window | None = None
    corpus_at: float = 0.0
    # The latest check, whatever its outcome (status, /readyz, `serve --once`).
    report: CheckReport | None = None
    # The latest check that tested a window: the one drift decision. Pages, the drift gauges and the retrain
    # policy all read it, so they always agree; a skipped or failed check is no evidence and leaves it as it
    # was. It is persisted (state.dir/drift/<alias>.json) and restored at start, so a restart neither
    # resolves an open incident nor re-triggers it.
    evidence: CheckReport | None = None
    # Whether a check tested a window since start: until then a remembered drift alert is neither confirmed
    # nor cleared by a new check, so it must not be resolved (item: spurious resolve on every restart).
    evaluated: bool = False
    # (report, cluster descriptions) of the last alert built, so alerts re-evaluated every watch tick do not
    # query Milvus for example texts each time.
    clusters: tuple[Any, tuple[Any, ...]] | None = None

    @property
    def alias(self) -> str:
        return self.spec.name

    @property
    def sustained(self) -> bool:
        """Whether drift is sustained now, by the one decision (see ``evidence``)."""
        return self.evidence is not None and self.evidence.sustained

    def record(self, report: CheckReport) -> CheckReport:
        self.report = report
        if report.tested:
            self.evidence = report
            self.evaluated = True
        return report

    def restore(self, evidence: CheckReport | None) -> None:
        """The decision a previous daemon persisted (before the first check of this one)."""
        if evidence is not None and evidence.tested and evidence.collection == self.alias:
            self.evidence = evidence

    def resume(self, monitor: CollectionMonitor) -> CollectionMonitor:
        """A monitor fitted on the same reference and model as the evidence continues its streaks, so the
        first check after a restart counts on from where the previous daemon stopped."""
        ev = self.evidence
        if ev is not None and ev.reference_version == monitor.reference_version and ev.model_id == monitor.model_id:
            monitor.restore({o.monitor: o.consecutive for o in ev.outcomes})
        return monitor
