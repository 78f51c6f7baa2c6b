"""The typed result of one check: what every monitor said about a window, and the collection's one decision.

Produced by :mod:`embguard.checks`, published as metrics (:mod:`embguard.metrics`), turned into alerts
(:mod:`embguard.pages`), written under the state directory (:mod:`embguard.state`) and read back by
``embguard status``. Plain data, cheap to import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

CALIBRATED = ("mmd", "classifier", "retrieval", "ood", "top1")
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

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["drift"] = self.drift
        d["sustained"] = self.sustained
        return d

    def summary(self) -> str:
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
