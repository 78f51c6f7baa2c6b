"""The typed result of one check: what every monitor said about a window, and the collection's one decision.

Produced by :mod:`embguard.checks.monitor`, published as metrics (:mod:`embguard.daemon.metrics`), turned into
alerts (:mod:`embguard.daemon.active_alerts`), written under the state directory (:mod:`embguard.config.statedir`)
and read back by ``embguard status``. Plain data, cheap to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embguard.config.statedir import StateDir, read_json, write_json
from embguard.errors import StateFileError

CALIBRATED = ("mmd", "neighbours", "classifier", "retrieval", "ood", "top1")
COMBINED = "combined"  # the monitor label of the collection's one decision (metrics, alerts, status)


@dataclass(frozen=True)
class MonitorOutcome:
    monitor: str
    statistic: float
    p_value: float | None
    drift: bool  # this window, at alpha (or Evidently's fixed threshold)
    consecutive: int
    sustained: bool  # drift in `consecutive` windows in a row
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckReport:
    collection: str
    served_by: str
    model_id: str
    reference_version: int
    n_reference: int
    n_current: int
    checked_at: float
    outcomes: tuple[MonitorOutcome, ...] = ()
    ood_rate: float | None = None
    ood_expected_rate: float | None = None
    top1_quantiles: Mapping[str, float] = field(default_factory=dict)
    clusters: tuple[Mapping[str, Any], ...] = ()
    skipped: str = ""
    carried_by: tuple[str, ...] = ()  # monitors the combined decision rejected (Holm), strongest first
    not_run: Mapping[str, str] = field(default_factory=dict)  # monitor -> why it could not run
    error: str = ""  # the check failed (a Milvus error, an unreadable reference): what went wrong

    @property
    def tested(self) -> bool:
        """Whether a window was tested: only then is the report evidence for or against drift. A skipped or
        failed check is no evidence, so it neither opens nor closes an incident."""
        return not self.skipped and not self.error

    @property
    def combined(self) -> MonitorOutcome | None:
        return next((o for o in self.outcomes if o.monitor == COMBINED), None)

    @property
    def drift(self) -> bool:
        c = self.combined
        return c.drift if c is not None else any(o.drift for o in self.outcomes)

    @property
    def sustained(self) -> bool:
        c = self.combined
        return c.sustained if c is not None else any(o.sustained for o in self.outcomes if o.monitor in CALIBRATED)

    @classmethod
    def failure(cls, collection: str, error: str, at: float) -> CheckReport:
        """The report of a check that could not run (``error`` names what failed and the fix)."""
        return cls(
            collection=collection,
            served_by="",
            model_id="",
            reference_version=0,
            n_reference=0,
            n_current=0,
            checked_at=at,
            error=error,
        )

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["drift"] = self.drift
        d["sustained"] = self.sustained
        return d

    def summary(self) -> str:
        if self.error:
            return f"{self.collection}: check failed: {self.error}"
        if self.skipped:
            return f"{self.collection}: check skipped: {self.skipped}"
        parts = []
        for o in self.outcomes:
            p = f"p={o.p_value:.2g}" if o.p_value is not None else f"stat={o.statistic:.3g}"
            mark = "SUSTAINED" if o.sustained else ("drift" if o.drift else "ok")
            carried = f" ({', '.join(self.carried_by)})" if o.monitor == COMBINED and self.carried_by else ""
            parts.append(f"{o.monitor} {p} {mark}{carried}")
        parts += [f"{name} not run" for name in self.not_run]
        head = f"{self.collection}: {self.n_current} queries vs reference v{self.reference_version:04d}: "
        return head + ", ".join(parts)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckReport:
        """The inverse of :meth:`to_json` (derived keys are recomputed, unknown keys ignored)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        known = {f.name for f in fields(MonitorOutcome)}
        kw["outcomes"] = tuple(
            MonitorOutcome(**{k: v for k, v in o.items() if k in known}) for o in data.get("outcomes", ())
        )
        kw["clusters"] = tuple(data.get("clusters", ()))
        kw["carried_by"] = tuple(data.get("carried_by", ()))
        return cls(**kw)


# --- persisted under the state directory: the latest check and the latest one that tested a window -----


def write_check_report(state: StateDir, report: CheckReport) -> Path:
    return write_json(state.check_report(report.collection), report.to_json())


def read_check_report(state: StateDir, alias: str) -> CheckReport | None:
    """The daemon's latest report for ``alias``; ``None`` before its first check."""
    path = state.check_report(alias)
    data = read_json(path)
    if data is None:
        return None
    try:
        if not isinstance(data, dict) or not isinstance(data.get("checked_at"), (int, float)):
            raise TypeError("not a check report")
        return CheckReport.from_json(data)
    except (TypeError, ValueError) as exc:
        raise StateFileError(
            f"last check report {path} is unreadable ({exc}); the daemon rewrites it after its next check, or remove it"
        ) from None


def write_evidence(state: StateDir, report: CheckReport) -> Path:
    return write_json(state.evidence(report.collection), report.to_json())


def read_evidence(state: StateDir, alias: str) -> CheckReport | None:
    """The latest check of ``alias`` that tested a window; ``None`` when there is none on record. A state
    directory written before this file existed falls back to the latest check report when it tested one."""
    path = state.evidence(alias)
    data = read_json(path)
    if data is None:
        last = read_check_report(state, alias)
        return last if last is not None and last.tested else None
    try:
        if not isinstance(data, dict) or not isinstance(data.get("checked_at"), (int, float)):
            raise TypeError("not a check report")
        return CheckReport.from_json(data)
    except (TypeError, ValueError) as exc:
        raise StateFileError(
            f"drift state {path} is unreadable ({exc}); remove it (the daemon rewrites it after its next "
            "check; an open drift incident is then re-evaluated from scratch)"
        ) from None
