"""Active learning aimed at drift: once the monitors have found drift, label the queries the drift is made of.

The monitors' per-query outputs come in as plain arrays (:class:`DriftSignals`; this package never imports
``monitors``): the kNN OOD detector's flags (or scores plus a threshold), the id of the drifted OOD cluster each
query fell in, the base model's top-1 similarity (with the floor below which it counts as "fell") and whether the
query got a click. A query is *targeted* when any drift signal marks it: OOD-flagged, in a drifted cluster, or
top-1 similarity under the floor. Clicks never target a query on their own (plenty of in-distribution queries go
unclicked); they only order queries inside a cluster.

:class:`DriftSelection` spends ``drift_share`` of the budget on targeted queries, spread evenly over the drifted
clusters (round-robin, largest cluster first; targeted queries without a cluster id form one extra group), inside
each cluster the model's visible failures first (unclicked, then lowest top-1; ``prefer_failures``), and the rest
at random over the untargeted queries, so the labelled set still covers the traffic the model already serves.
With nothing targeted it is plain random selection. ``benchmarks/results/active.md`` measures it: with a drift
the OOD detector sees, it beat random at budgets of 50-100 labels and tied at 300 (see that file).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, DataError
from .selection import Pool

NO_CLUSTER = -1
"""Cluster id for a query that is not in any drifted cluster."""

_FIELDS = ("ood_score", "ood_flag", "cluster", "top1", "clicked")


def _as_float(arr: np.ndarray, field: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1 or not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise DataError(
            f"DriftSignals.{field} must be a 1-D numeric array (one value per pool query), "
            f"got shape {a.shape} dtype {a.dtype}"
        )
    out = a.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise DataError(
            f"DriftSignals.{field} has {int((~np.isfinite(out)).sum())} NaN/inf values; "
            "drop those queries from the pool or fill them before selecting"
        )
    return out


def _as_bool(arr: np.ndarray, field: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1:
        raise DataError(f"DriftSignals.{field} must be 1-D (one flag per pool query), got shape {a.shape}")
    if a.dtype == np.bool_:
        return a.copy()
    if np.issubdtype(a.dtype, np.number) and np.all(np.isin(a, (0, 1))):
        return a.astype(bool)
    raise DataError(
        f"DriftSignals.{field} must hold booleans (or 0/1), got dtype {a.dtype}; pass e.g. "
        "OODResult.flags for ood_flag, or clicks > 0 for clicked"
    )


def _as_cluster(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise DataError(
            f"DriftSignals.cluster must be a 1-D integer array (drifted-cluster id per query, "
            f"{NO_CLUSTER} = none), got shape {a.shape} dtype {a.dtype}"
        )
    return a.astype(np.int64)


@dataclass(frozen=True)
class DriftSignals:
    """Per-query drift evidence for a pool, every array aligned with the pool's rows (all optional).

    ``ood_score``: kNN OOD score (higher = farther from the reference); with ``ood_threshold`` it flags queries
    whose score exceeds it (the detector's own ``threshold``). ``ood_flag``: the detector's per-query flags
    (``OODResult.flags``); either form works, both are OR-ed. ``cluster``: drifted OOD cluster id per query,
    ``NO_CLUSTER`` (-1) for queries in none. ``top1`` / ``top1_floor``: the base model's top-1 similarity and the
    value under which it counts as fallen (e.g. the reference traffic's 5% quantile). ``clicked``: whether the
    query got a click. ``size`` is needed only when no array is given.
    """

    ood_score: np.ndarray | None = None
    ood_flag: np.ndarray | None = None
    cluster: np.ndarray | None = None
    top1: np.ndarray | None = None
    clicked: np.ndarray | None = None
    ood_threshold: float | None = None
    top1_floor: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        lengths = {f: len(np.asarray(getattr(self, f)).reshape(-1)) for f in _FIELDS if getattr(self, f) is not None}
        if self.size is not None:
            if self.size < 0:
                raise DataError(f"DriftSignals.size={self.size} is negative; pass the number of pool queries")
            lengths["size"] = self.size
        if len(set(lengths.values())) > 1:
            raise DataError(
                "DriftSignals arrays differ in length: "
                + ", ".join(f"{f}={n}" for f, n in lengths.items())
                + "; pass one value per pool query, all in the pool's order"
            )
        if not lengths:
            raise DataError("DriftSignals has no arrays and no size; pass at least one signal (or size=n)")
        if self.ood_threshold is not None and self.ood_score is None:
            raise DataError(
                "DriftSignals.ood_threshold is set but ood_score is missing; pass the OOD scores "
                "(or drop the threshold and pass ood_flag)"
            )
        if self.top1_floor is not None and self.top1 is None:
            raise DataError("DriftSignals.top1_floor is set but top1 is missing; pass the top-1 similarities")
        # Validate every array now so a bad one is reported where it was built, not deep inside select().
        for f in ("ood_score", "top1"):
            if getattr(self, f) is not None:
                _as_float(getattr(self, f), f)
        for f in ("ood_flag", "clicked"):
            if getattr(self, f) is not None:
                _as_bool(getattr(self, f), f)
        if self.cluster is not None:
            _as_cluster(self.cluster)

    def __len__(self) -> int:
        for f in _FIELDS:
            a = getattr(self, f)
            if a is not None:
                return len(np.asarray(a))
        assert self.size is not None  # __post_init__ guarantees an array or a size
        return self.size

    def targeted(self) -> np.ndarray:
        """Boolean mask: queries some drift signal marks (OOD flag/score, drifted cluster, fallen top-1)."""
        mask = np.zeros(len(self), dtype=bool)
        if self.ood_flag is not None:
            mask |= _as_bool(self.ood_flag, "ood_flag")
        if self.ood_score is not None and self.ood_threshold is not None:
            mask |= _as_float(self.ood_score, "ood_score") > self.ood_threshold
        if self.cluster is not None:
            mask |= _as_cluster(self.cluster) != NO_CLUSTER
        if self.top1 is not None and self.top1_floor is not None:
            mask |= _as_float(self.top1, "top1") < self.top1_floor
        return mask


def _failure_order(idx: np.ndarray, signals: DriftSignals, rng: np.random.Generator) -> np.ndarray:
    """``idx`` reordered: unclicked before clicked, then lowest top-1 first, random among ties."""
    keys: list[np.ndarray] = [rng.random(len(idx))]
    if signals.top1 is not None:
        keys.append(_as_float(signals.top1, "top1")[idx])
    if signals.clicked is not None:
        keys.append(_as_bool(signals.clicked, "clicked")[idx].astype(np.int8))
    return idx[np.lexsort(tuple(keys))]


def select_drift(
    signals: DriftSignals,
    budget: int,
    rng: np.random.Generator,
    *,
    drift_share: float = 0.8,
    prefer_failures: bool = True,
) -> np.ndarray:
    """Distinct pool indices to label, most wanted first (see the module docstring for the policy).

    ``drift_share`` of ``budget`` goes to targeted queries (fewer if fewer are targeted), round-robin over the
    drifted clusters, inside each cluster unclicked then lowest top-1 first (``prefer_failures``; random order
    if False); the rest is random over untargeted queries, topped up from leftover targeted ones if those run out.
    With nothing targeted this is random selection.
    """
    if budget < 0:
        raise ConfigError(f"selection budget={budget} is negative; pass the number of queries to label")
    if not 0.0 <= drift_share <= 1.0:
        raise ConfigError(
            f"drift_share={drift_share} must lie in [0, 1]; it is the share of the budget spent "
            "on drifted queries (0.8 = default)"
        )
    n = len(signals)
    budget = min(budget, n)
    mask = signals.targeted()
    targeted = np.flatnonzero(mask)
    n_drift = min(len(targeted), int(round(drift_share * budget)))

    chosen: list[int] = []
    if n_drift:
        clusters = (
            _as_cluster(signals.cluster)[targeted]
            if signals.cluster is not None
            else np.full(len(targeted), NO_CLUSTER, dtype=np.int64)
        )
        ids, sizes = np.unique(clusters, return_counts=True)
        # Largest drifted cluster first; the unclustered group (flag/top-1 only) after the real clusters.
        order = np.lexsort((rng.random(len(ids)), -sizes, ids == NO_CLUSTER))
        queues: list[list[int]] = []
        for g in ids[order]:
            members = targeted[clusters == g]
            members = (
                _failure_order(members, signals, rng) if prefer_failures else members[rng.permutation(len(members))]
            )
            queues.append(members.tolist())
        pos = 0
        while len(chosen) < n_drift:
            live = [q for q in queues if pos < len(q)]
            for q in live:
                if len(chosen) == n_drift:
                    break
                chosen.append(int(q[pos]))
            pos += 1

    rest = np.flatnonzero(~mask)
    fill = rest[rng.permutation(len(rest))].tolist()
    if len(chosen) + len(fill) < budget:
        taken = set(chosen)
        leftover = np.array([i for i in targeted.tolist() if i not in taken], dtype=np.int64)
        fill += leftover[rng.permutation(len(leftover))].tolist()
    chosen += fill[: budget - len(chosen)]
    return np.asarray(chosen, dtype=np.int64)


class DriftSelection:
    """:func:`select_drift` as a ``SelectionStrategy``: the signals are bound at construction.

    ``select(pool, budget, rng)`` checks that the pool and the signals describe the same number of queries.
    """

    def __init__(self, signals: DriftSignals, *, drift_share: float = 0.8, prefer_failures: bool = True) -> None:
        if not 0.0 <= drift_share <= 1.0:
            raise ConfigError(
                f"drift_share={drift_share} must lie in [0, 1]; it is the share of the budget "
                "spent on drifted queries (0.8 = default)"
            )
        self.signals = signals
        self.drift_share = drift_share
        self.prefer_failures = prefer_failures
        self.name = (
            "drift"
            + ("" if drift_share == 0.8 else f":share={drift_share:g}")
            + ("" if prefer_failures else ":random-within")
        )

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        if len(pool) != len(self.signals):
            raise DataError(
                f"pool has {len(pool)} queries but DriftSignals has {len(self.signals)}; build the "
                "signals from the same queries, in the same order, as the pool"
            )
        return select_drift(
            self.signals, budget, rng, drift_share=self.drift_share, prefer_failures=self.prefer_failures
        )
