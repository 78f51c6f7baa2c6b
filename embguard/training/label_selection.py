"""Which tapped queries annotators see (``embguard label export``): random, or aimed at the drift.

``drift`` builds :class:`retrain.DriftSignals` from the monitors, the way the daemon sees the drift: the kNN OOD
detector fitted on the collection's latest query reference flags and scores the pool, k-means over the
flagged queries gives the drifted clusters, the top-1 similarity is compared with the reference's 5%
quantile, and queries without a click are failures worth an answer. ``misses`` ranks the live model's misses
first (no click, least similar top hit first; then clicks found at rank 4 or deeper), the rest at random.
``auto`` aims at the drift when the daemon's last check found it sustained (benchmarks/results/active.md:
drift-aimed picks gain more on the drifted topics) and otherwise at the misses: clicks already teach the model
the queries it answers, an annotator's answer is worth most where it failed (#28).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

import retrain
from embguard.checks.references import ReferenceStore
from embguard.checks.reports import read_check_report
from embguard.config.settings import CollectionSettings, Settings
from embguard.config.statedir import StateDir
from embguard.errors import ConfigError, ReferenceMissing

log = logging.getLogger(__name__)
Strategy = Literal["auto", "random", "drift", "misses"]
STRATEGIES: tuple[str, ...] = ("auto", "random", "drift", "misses")
MAX_CLUSTERS = 5


def drift_signals(
    settings: Settings,
    spec: CollectionSettings,
    vectors: np.ndarray,
    top1: np.ndarray,
    clicked: np.ndarray,
    seed: int = 0,
) -> retrain.DriftSignals:
    """The pool's drift evidence against the latest query reference of ``spec`` (raises ReferenceMissing)."""
    from sklearn.cluster import KMeans

    import monitors

    store = ReferenceStore(settings.state.dir)
    reference = store.load(store.latest(spec.name, "queries"))
    detector = monitors.KNNOODDetector(k=10, quantile=0.95, seed=seed).fit(reference.vectors)
    res = detector.evaluate(vectors)
    flags = np.asarray(res.flags, dtype=bool)
    cluster = np.full(len(vectors), retrain.NO_CLUSTER, dtype=np.int64)
    flagged = np.flatnonzero(flags)
    k = max(1, min(MAX_CLUSTERS, flagged.size // 5))
    if flagged.size:
        cluster[flagged] = (
            KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(vectors[flagged]) if k > 1 else 0
        )
    ref_top1 = reference.top1_scores
    floor = float(np.quantile(ref_top1, 0.05)) if ref_top1.size else None
    return retrain.DriftSignals(
        ood_score=np.asarray(res.scores),
        ood_flag=flags,
        cluster=cluster,
        top1=top1 if floor is not None else None,
        top1_floor=floor,
        clicked=clicked,
    )


def drift_found(settings: Settings, alias: str) -> bool:
    """Whether the daemon's last check of ``alias`` found drift sustained."""
    report = read_check_report(StateDir(settings.state.dir), alias)
    return report is not None and not report.skipped and report.sustained


def pick(
    settings: Settings,
    spec: CollectionSettings,
    strategy: str,
    vectors: np.ndarray,
    top_scores: Sequence[Sequence[float]],
    clicked: np.ndarray,
    budget: int,
    seed: int = 0,
    click_rank: np.ndarray | None = None,
) -> np.ndarray:
    """Indices into the pool, most wanted first. ``click_rank``: each query's click's 1-based rank (0: none)."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"label selection strategy {strategy!r} is unknown; use one of {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(seed)
    n = len(vectors)
    if strategy == "auto":
        strategy = "drift" if drift_found(settings, spec.name) else "misses"
    if strategy == "misses":
        ranks = click_rank if click_rank is not None else np.where(np.asarray(clicked, dtype=bool), 1, 0)
        top1 = np.array([s[0] if len(s) else 0.0 for s in top_scores], dtype=np.float32)
        return retrain.MissSelection().select(retrain.Pool(click_rank=ranks, top1=top1), budget, rng)
    if strategy == "drift":
        top1 = np.array([s[0] if len(s) else 0.0 for s in top_scores], dtype=np.float32)
        from monitors import MonitorError

        try:
            signals = drift_signals(settings, spec, vectors, top1, clicked, seed)
        except (ReferenceMissing, MonitorError) as exc:
            raise ConfigError(
                f"drift-aimed selection for {spec.name} compares the pool with its query reference, "
                f"and cannot: {exc}. Capture a larger reference (`embguard baseline capture "
                f"{spec.name}`) or use --strategy random"
            ) from None
        log.info("%s: %d of %d pool queries are drift-targeted", spec.name, int(signals.targeted().sum()), n)
        return retrain.select_drift(signals, budget, rng)
    return retrain.RandomSelection().select(retrain.Pool(size=n), budget, rng)
