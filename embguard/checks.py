"""One watched collection's monitors: fitted on a reference window, run on each new window.

This is where ``monitors`` meets the world: windows come from Milvus (``sampling``), results go to
metrics, alerts and ``embguard status``. Each monitor gives a per-window decision at ``drift.alpha``;
the *sustained* alarm fires only after ``drift.consecutive`` drifted windows in a row, which bounds the
false-alarm rate of a daemon that checks every few minutes (see docs/monitors.md for the guarantee).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

import monitors

from .config import DriftSettings
from .sampling import Window

CALIBRATED = ("mmd", "classifier", "retrieval", "ood", "top1")


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

    @property
    def drift(self) -> bool:
        return any(o.drift for o in self.outcomes)

    @property
    def sustained(self) -> bool:
        return any(o.sustained for o in self.outcomes if o.monitor in CALIBRATED)

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
            parts.append(f"{o.monitor} {p} {mark}")
        return f"{self.collection}: {self.n_current} queries vs reference v{self.reference_version:04d}: " + ", ".join(parts)


class _Retrieval:
    """Where queries land in the corpus: clusters of a document sample, top-1 hits mapped to them.

    Top-1 documents outside the document sample are assigned to their nearest cluster centroid, using
    vectors looked up by id, so the histogram covers every query rather than an "unknown" bin.
    """

    name = "retrieval"

    def __init__(self, corpus_ids: Sequence[Any], corpus_vectors: np.ndarray,
                 lookup: Callable[[Sequence[Any]], dict[Any, np.ndarray]], alpha: float, seed: int = 0):
        n_clusters = int(max(2, min(20, len(corpus_ids) // 25)))
        labels = monitors.cluster_corpus(corpus_vectors, n_clusters=n_clusters, seed=seed)
        cent = np.stack([corpus_vectors[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
        self._centroids = cent / np.linalg.norm(cent, axis=1, keepdims=True)
        self._known: dict[Any, int] = dict(zip(corpus_ids, labels.tolist()))
        self._lookup = lookup
        self.alpha = alpha
        self._reference: list[Any] = []

    def _assign(self, ids: Sequence[Any]) -> None:
        missing = [i for i in set(ids) if i is not None and i not in self._known]
        if missing:
            vecs = self._lookup(missing)
            for i, v in vecs.items():
                self._known[i] = int(np.argmax(self._centroids @ (v / np.linalg.norm(v))))

    def fit(self, reference_top1: Sequence[Any]) -> _Retrieval:
        self._reference = [i for i in reference_top1 if i is not None]
        self._assign(self._reference)
        return self

    def check(self, current_top1: Sequence[Any]) -> monitors.DriftResult:
        cur = [i for i in current_top1 if i is not None]
        self._assign(cur)
        ids = list(self._known)
        det = monitors.RetrievalClusterDetector(ids, np.array([self._known[i] for i in ids]), alpha=self.alpha)
        return det.fit(self._reference).check(cur)


class CollectionMonitor:
    """The fitted monitors of one alias against one reference, plus their consecutive-drift counters."""

    def __init__(self, collection: str, drift: DriftSettings, reference: Window, reference_version: int,
                 corpus: Window | None = None, lookup: Callable[[Sequence[Any]], dict[Any, np.ndarray]] | None = None,
                 seed: int = 0):
        self.collection = collection
        self.settings = drift
        self.reference = reference
        self.reference_version = reference_version
        self.model_id = reference.model_id
        a = drift.alpha
        self._detectors: dict[str, Any] = {}
        names = list(drift.monitors)
        for name in names:
            if name == "mmd":
                self._detectors[name] = monitors.MMDDetector(alpha=a, seed=seed).fit(reference.vectors)
            elif name == "classifier":
                self._detectors[name] = monitors.ClassifierDetector(alpha=a, seed=seed).fit(reference.vectors)
            elif name == "top1":
                self._detectors[name] = monitors.Top1SimilarityDetector(alpha=a).fit(reference.top1_scores)
            elif name == "ood":
                self._detectors[name] = monitors.KNNOODDetector(k=drift.ood_k, quantile=drift.ood_quantile,
                                                                alpha=a, seed=seed).fit(reference.vectors)
            elif name == "retrieval":
                if corpus is None or lookup is None or corpus.size < 50:
                    continue  # needs a document sample; reported as not run
                self._detectors[name] = _Retrieval(corpus.ids, corpus.vectors, lookup, a, seed).fit(
                    reference.top1_ids)
            elif name.startswith("evidently_"):
                self._detectors[name] = monitors.EvidentlyDetector(name.removeprefix("evidently_")).fit(
                    reference.vectors)
        self.consecutive: dict[str, int] = {n: 0 for n in self._detectors}

    @property
    def monitors(self) -> tuple[str, ...]:
        return tuple(self._detectors)

    def check(self, window: Window, served_by: str) -> CheckReport:
        now = time.time()
        base = dict(collection=self.collection, served_by=served_by, model_id=window.model_id,
                    reference_version=self.reference_version, n_reference=self.reference.size,
                    n_current=window.size, checked_at=now)
        if window.model_id != self.model_id:
            return CheckReport(**base, skipped=f"window model {window.model_id} differs from the reference's "
                                               f"{self.model_id}; capture a new baseline")
        if window.size < self.settings.min_window:
            return CheckReport(**base, skipped=f"window has {window.size} queries, fewer than drift.min_window="
                                               f"{self.settings.min_window}")
        outcomes: list[MonitorOutcome] = []
        ood_res = None
        for name, det in self._detectors.items():
            if name == "ood":
                ood_res = det.check(window.vectors)
                stat, p, drift = ood_res.rate, ood_res.p_value, ood_res.drift
                details = {"rate": ood_res.rate, "expected_rate": ood_res.expected_rate,
                           "threshold": ood_res.threshold}
            else:
                data = (window.top1_scores if name == "top1" else window.top1_ids if name == "retrieval"
                        else window.vectors)
                res = det.check(data)
                stat, p, drift = res.statistic, res.p_value, res.drift
                details = {k: v for k, v in res.details.items() if isinstance(v, (int, float, str))}
                if name == "top1":
                    details.update({k: res.details[k] for k in ("p5", "p50", "p95")})
            self.consecutive[name] = self.consecutive[name] + 1 if drift else 0
            outcomes.append(MonitorOutcome(name, float(stat), None if p is None else float(p), bool(drift),
                                           self.consecutive[name],
                                           self.consecutive[name] >= self.settings.consecutive, details))
        clusters: tuple[Mapping[str, Any], ...] = ()
        if ood_res is not None and any(o.drift for o in outcomes) and ood_res.n_flagged:
            expl = monitors.explain_ood(self._detectors["ood"], window.vectors, list(range(window.size)),
                                        result=ood_res)
            clusters = tuple({"size": e.size, "share": e.share, "distance": e.centroid_distance,
                              "rows": list(e.representative_ids)} for e in expl)
        q = {}
        if window.top1_scores.size:
            q = dict(zip(("0.05", "0.5", "0.95"), map(float, np.quantile(window.top1_scores, [0.05, 0.5, 0.95]))))
        return CheckReport(**base, outcomes=tuple(outcomes),
                           ood_rate=None if ood_res is None else float(ood_res.rate),
                           ood_expected_rate=None if ood_res is None else float(ood_res.expected_rate),
                           top1_quantiles=q, clusters=clusters)
