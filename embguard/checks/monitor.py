"""One watched collection's monitors: fitted on a reference window, run on each new window.

This is where ``monitors`` meets the world: windows come from Milvus (``sampling``), results go to
metrics, alerts and ``embguard status``. Each monitor gives a per-window decision at ``drift.alpha``.
The page is one decision per collection: the ``drift.page`` monitors checked on one shared permutation null
(``monitors.Page``: false pages ``<= drift.alpha`` per window, exactly, for any dependence between them), sustained
over ``drift.consecutive`` windows in a row by ``monitors.SequentialDetector``; it names the monitors that carried
it (see docs/monitors.md for the guarantee). The other monitors are reported and explain, each with its own
window decision and streak. Inputs come from one table keyed by each detector's ``input_kind``, so adding a
monitor needs no branching here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

import monitors
from embguard.checks.reports import CALIBRATED, COMBINED, CheckReport, MonitorOutcome
from embguard.checks.retrieval import RetrievalCheck
from embguard.checks.windows import Window, distinct_queries
from embguard.config.settings import DriftSettings

PAGE_METHOD = "shared permutation minP"
EXAMPLE_ROWS = 3  # a cluster's most typical queries that reports keep (pages and status show their texts)

# What each kind of detector input is, read from a window.
INPUTS: Mapping[str, Callable[[Window], Any]] = {
    "vectors": lambda w: w.vectors,
    "top_ids": lambda w: w.top_ids,
    "similarities": lambda w: w.top1_scores,
}


def permutations_for(alpha: float) -> int:
    """Permutations a monitor checked on its own needs so that its p-value can reach ``alpha`` with room to spare
    (its smallest p-value is 1/(B+1)); the page's members share the page's own (``monitors.page.permutations_for``)."""
    return max(500, int(np.ceil(5 / alpha)))


def _details(res: monitors.DriftResult) -> dict[str, Any]:
    """The scalar details of a window result (arrays and nested results stay out of JSON and alerts)."""
    return {k: v for k, v in res.details.items() if isinstance(v, (int, float, str))}


class CollectionMonitor:
    """The fitted monitors of one alias against one reference, each behind a sequential alarm, and the page."""

    def __init__(
        self,
        collection: str,
        drift: DriftSettings,
        reference: Window,
        reference_version: int,
        corpus: Window | None = None,
        lookup: Callable[[Sequence[Any]], dict[Any, np.ndarray]] | None = None,
        seed: int = 0,
        window_s: float | None = None,
    ):
        self.collection = collection
        self.settings = drift
        self.reference = reference
        self._dedup = bool(getattr(drift, "dedup_queries", False))
        if self._dedup:
            # Window-long pieces: a head query counts once per piece, as it does once per checked window.
            reference = distinct_queries(reference, window_s)
        self._reference_vectors = reference.vectors
        self.reference_version = reference_version
        self.model_id = reference.model_id
        a = drift.alpha
        perms = permutations_for(a)
        makers: dict[str, Callable[[], Any]] = {
            "mmd": lambda: monitors.MMDDetector(alpha=a, seed=seed, n_permutations=perms),
            "neighbours": lambda: monitors.NeighbourDetector(alpha=a, seed=seed, n_permutations=perms),
            "classifier": lambda: monitors.ClassifierDetector(alpha=a, seed=seed),
            "top1": lambda: monitors.Top1SimilarityDetector(alpha=a),
            "ood": lambda: monitors.KNNOODDetector(k=drift.ood_k, quantile=drift.ood_quantile, alpha=a, seed=seed),
        }
        self._detectors: dict[str, monitors.SequentialDetector] = {}
        self.not_run: dict[str, str] = {}
        for name in drift.monitors:
            if name == "retrieval":
                if corpus is None or lookup is None or corpus.size < 50:
                    continue  # needs a document sample; reported as not run
                det: Any = RetrievalCheck(
                    corpus.ids, corpus.vectors, lookup, a, reference.size, seed, n_permutations=max(999, perms)
                )
            elif name.startswith("evidently_"):
                method: Any = name.removeprefix("evidently_")  # one of Evidently's methods: the config validates it
                det = monitors.EvidentlyDetector(method)
            else:
                det = makers[name]()
            seq = monitors.SequentialDetector(
                det, consecutive=drift.consecutive, window_alpha=a, fixed_threshold=name not in CALIBRATED
            )
            try:
                self._detectors[name] = seq.fit(INPUTS[det.input_kind](reference))
            except monitors.MonitorInputError as exc:
                # A reference too small for one monitor (the OOD threshold needs ~100 distinct queries) must
                # not stop the others: that monitor is reported as not run, with the reason.
                self.not_run[name] = str(exc)
        self._shared = {n: d for n, d in self._detectors.items() if n in drift.page}
        self._page: monitors.SequentialDetector | None = None
        if self._shared:
            # Members are fitted already (their sequential wrappers did it); the page draws the shared splits.
            page = monitors.Page(
                {n: d.inner for n, d in self._shared.items()}, alpha=a, seed=seed, name=COMBINED, members_fitted=True
            )
            self._page = monitors.SequentialDetector(page, consecutive=drift.consecutive, window_alpha=a)
        elif calibrated := {n: d for n, d in self._detectors.items() if n in CALIBRATED}:
            # Only monitors that cannot share a null (ood, classifier): Holm over their own p-values.
            holm = monitors.CombinedDetector(calibrated, alpha=a, method="holm", name=COMBINED, members_fitted=True)
            self._page = monitors.SequentialDetector(holm, consecutive=drift.consecutive, window_alpha=a)

    @property
    def monitors(self) -> tuple[str, ...]:
        return tuple(self._detectors)

    def reset(self) -> None:
        """Forget every consecutive count (a new run of windows against the same reference)."""
        for d in [*self._detectors.values(), self._page]:
            if d is not None:
                d.reset()

    def restore(self, consecutive: Mapping[str, int]) -> None:
        """Continue the streaks a previous process counted against this same reference (a daemon restart):
        ``consecutive`` maps a monitor name (or ``combined``) to its drifted windows in a row."""
        for name, d in self._detectors.items():
            d.consecutive = max(int(consecutive.get(name, 0)), 0)
        if self._page is not None:
            self._page.consecutive = max(int(consecutive.get(COMBINED, 0)), 0)

    @property
    def consecutive(self) -> dict[str, int]:
        out = {n: d.consecutive for n, d in self._detectors.items()}
        if self._page is not None:
            out[COMBINED] = self._page.consecutive
        return out

    def check(self, window: Window, served_by: str) -> CheckReport:
        now = time.time()
        base: dict[str, Any] = dict(
            collection=self.collection,
            served_by=served_by,
            model_id=window.model_id,
            reference_version=self.reference_version,
            n_reference=self.reference.size,
            n_current=window.size,
            checked_at=now,
        )
        if window.model_id != self.model_id:
            return CheckReport(
                **base,
                skipped=f"window model {window.model_id} differs from the reference's "
                f"{self.model_id}; capture a new baseline",
            )
        if window.size < self.settings.min_window:
            return CheckReport(
                **base,
                skipped=f"window has {window.size} queries, fewer than drift.min_window={self.settings.min_window}",
            )
        if self._dedup:
            window = distinct_queries(window)
        k = self.settings.consecutive
        results: dict[str, monitors.DriftResult] = {}
        page = None
        if self._page is not None:
            inner: Any = self._page.inner
            members = self._shared or inner.members
            page = self._page.check({n: INPUTS[d.input_kind](window) for n, d in members.items()})
            for name, res in page.details["window"].details["results"].items():
                # Page members: their own decision and streak from their p-value on the shared null (Holm's
                # members are sequential detectors already and return theirs).
                results[name] = self._shared[name].record(res) if self._shared else res
        for name, det in self._detectors.items():
            if name not in results:
                results[name] = det.check(INPUTS[det.input_kind](window))
        outcomes: list[MonitorOutcome] = []
        for name, seq in self._detectors.items():
            res = results[name]
            win = res.details["window"]
            outcomes.append(
                MonitorOutcome(
                    name,
                    float(win.statistic),
                    None if win.p_value is None else float(win.p_value),
                    bool(res.details["window_drift"]),
                    seq.consecutive,
                    seq.consecutive >= k,
                    _details(win),
                )
            )
        carried: tuple[str, ...] = ()
        if page is not None:
            comb = page.details["window"]
            carried = tuple(comb.details["carried_by"])
            outcomes.append(
                MonitorOutcome(
                    COMBINED,
                    float(comb.statistic),
                    float(comb.p_value),
                    bool(comb.drift),
                    page.details["consecutive"],
                    bool(page.drift),
                    {
                        "method": PAGE_METHOD if self._shared else "holm",
                        "carried_by": ", ".join(carried),
                        "guarantee": str(comb.params["guarantee"]),
                    },
                )
            )
        ood = results["ood"].details["window"] if "ood" in results else None
        clusters: tuple[Mapping[str, Any], ...] = ()
        if any(o.drift for o in outcomes):
            # What is new: window queries whose neighbourhoods the reference does not share, named by their terms.
            texts = window.texts if len(window.texts) == window.size else None
            found = monitors.new_clusters(
                self._reference_vectors, window.vectors, texts=texts, alpha=self.settings.alpha
            )
            top1 = window.top1_ids
            clusters = tuple(
                {
                    "size": c.size,
                    "share": c.share,
                    "distance": c.distance,
                    "purity": c.purity,
                    "terms": list(c.terms),
                    "rows": list(c.rows[:EXAMPLE_ROWS]),
                    # The documents the cluster's queries hit first most often: its examples where queries have
                    # no stored text (the nearest-centroid queries' own hits can be one off-topic document).
                    "hits": [
                        i
                        for i, _ in Counter(top1[r] for r in c.rows if r < len(top1)).most_common(EXAMPLE_ROWS + 1)
                        if i is not None
                    ][:EXAMPLE_ROWS],
                }
                for c in found
            )
        q = {}
        if window.top1_scores.size:
            levels = {"0.05": 0.05, "0.5": 0.5, "0.95": 0.95}
            q = {k: float(np.quantile(window.top1_scores, v)) for k, v in levels.items()}
        return CheckReport(
            **base,
            outcomes=tuple(outcomes),
            not_run=dict(self.not_run),
            ood_rate=None if ood is None else float(ood.details["rate"]),
            ood_expected_rate=None if ood is None else float(ood.details["expected_rate"]),
            top1_quantiles=q,
            clusters=clusters,
            carried_by=carried,
        )
