"""Active-learning selection: which tapped queries to send to annotators under a fixed label budget.

Every strategy has ``select(pool, budget, rng) -> np.ndarray`` of distinct pool indices, most wanted first.
Scores that need a model or a monitor (novelty/OOD, top-1/top-2 margin) are computed elsewhere and passed in
through ``Pool``; this module only ranks. Rankers are notorious for active-learning strategies that lose to
random selection, so ``RandomSelection`` is a first-class strategy and the benchmark compares against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .errors import ConfigError, DataError


@dataclass(frozen=True)
class Pool:
    """Candidate queries. ``embeddings`` (n, d) are required by diversity; the score arrays are optional."""

    embeddings: np.ndarray | None = None
    novelty: np.ndarray | None = None  # higher = more out-of-distribution
    margin: np.ndarray | None = None  # top-1 score - top-2 score; lower = more uncertain
    size: int | None = None
    click_rank: np.ndarray | None = None  # 1-based rank of the query's click; 0 = it ended without one
    top1: np.ndarray | None = None  # the top hit's similarity; lower = the model was less sure of anything

    def __len__(self) -> int:
        for a in (self.embeddings, self.novelty, self.margin, self.click_rank, self.top1):
            if a is not None:
                return len(a)
        if self.size is None:
            raise DataError("Pool has no embeddings, scores or size; pass at least one")
        return self.size


class SelectionStrategy(Protocol):
    name: str

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray: ...


def _budget(pool: Pool, budget: int) -> int:
    if budget < 0:
        raise ConfigError(f"selection budget={budget} is negative; pass the number of queries to label")
    return min(budget, len(pool))


def _need(arr: np.ndarray | None, field: str, strategy: str) -> np.ndarray:
    if arr is None:
        raise DataError(f"{strategy} selection needs Pool.{field}; compute it (or pick another strategy)")
    return np.asarray(arr)


def _top(scores: np.ndarray, budget: int, rng: np.random.Generator, descending: bool) -> np.ndarray:
    # Random tie-break so equal scores (e.g. many margins of 0) do not always favour low indices.
    jitter = rng.random(len(scores))
    primary = -scores if descending else scores
    return np.lexsort((jitter, primary))[:budget]


class RandomSelection:
    name = "random"

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        return rng.permutation(len(pool))[: _budget(pool, budget)]


class MissSelection:
    """The live model's misses first: queries that ended without a click (least similar top hit first), then
    clicks found far down the list (deepest first), then the rest at random. A miss is where an annotator's answer
    teaches the model what clicks cannot: the clicked queries are the ones it already answers."""

    name = "misses"
    DEEP = 4  # a click at this rank or below was found by scrolling past three wrong answers

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        rank = _need(pool.click_rank, "click_rank", self.name).astype(np.int64)
        top1 = np.asarray(pool.top1, dtype=float) if pool.top1 is not None else np.zeros(len(rank))
        group = np.where(rank == 0, 0, np.where(rank >= self.DEEP, 1, 2))
        within = np.where(group == 0, top1, np.where(group == 1, -rank.astype(float), 0.0))
        return np.lexsort((rng.random(len(rank)), within, group))[: _budget(pool, budget)]


class NoveltySelection:
    """Most out-of-distribution first (scores from the drift monitor)."""

    name = "novelty"

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        return _top(_need(pool.novelty, "novelty", self.name).astype(float), _budget(pool, budget), rng, True)


class MarginSelection:
    """Smallest top-1/top-2 retrieval margin first (the model cannot tell its best two answers apart)."""

    name = "margin"

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        return _top(_need(pool.margin, "margin", self.name).astype(float), _budget(pool, budget), rng, False)


def k_center_greedy(
    embeddings: np.ndarray, budget: int, rng: np.random.Generator, initial: Sequence[int] = ()
) -> np.ndarray:
    """Greedy k-center: each pick is the point farthest (Euclidean) from everything chosen so far.

    ``initial`` are already-labelled indices (never returned). Without them the first centre is random.
    O(n·budget) time, O(n) memory: one running min-distance vector.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    budget = min(budget, n - len(set(initial)))
    if budget <= 0:
        return np.zeros(0, dtype=np.int64)
    sq = np.einsum("ij,ij->i", x, x)
    min_d = np.full(n, np.inf, dtype=np.float64)

    def update(c: int) -> None:
        d = np.maximum(sq + sq[c] - 2.0 * (x @ x[c]), 0.0)
        np.minimum(min_d, d, out=min_d)

    chosen: list[int] = []
    for c in dict.fromkeys(int(i) for i in initial):
        update(c)
    if not initial:
        first = int(rng.integers(n))
        chosen.append(first)
        update(first)
    while len(chosen) < budget:
        c = int(np.argmax(min_d))
        chosen.append(c)
        update(c)
    return np.asarray(chosen, dtype=np.int64)


class DiversitySelection:
    name = "diversity"

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        emb = _need(pool.embeddings, "embeddings", self.name)
        return k_center_greedy(emb, _budget(pool, budget), rng)


class MixedSelection:
    """Weighted round-robin union of strategies; fills the budget with distinct indices.

    Each strategy contributes in proportion to its weight (smooth weighted round-robin), taking its next
    not-yet-chosen index; if every strategy is exhausted the remainder is filled at random.
    """

    def __init__(self, strategies: Sequence[tuple[SelectionStrategy, float]]) -> None:
        if not strategies or any(w <= 0 for _, w in strategies):
            raise ConfigError(
                "MixedSelection needs at least one (strategy, weight) with weight > 0, "
                f"got {[(s.name, w) for s, w in strategies]}"
            )
        self.strategies = list(strategies)
        self.name = "+".join(f"{s.name}:{w:g}" for s, w in strategies)

    def select(self, pool: Pool, budget: int, rng: np.random.Generator) -> np.ndarray:
        budget = _budget(pool, budget)
        orders = [list(s.select(pool, budget, rng)) for s, _ in self.strategies]
        weights = np.array([w for _, w in self.strategies], dtype=float)
        credit = np.zeros(len(orders))
        pos = [0] * len(orders)
        chosen: dict[int, None] = {}
        while len(chosen) < budget:
            live = [i for i in range(len(orders)) if pos[i] < len(orders[i])]
            if not live:
                rest = np.setdiff1d(np.arange(len(pool)), np.fromiter(chosen, dtype=np.int64))
                chosen.update(dict.fromkeys(int(i) for i in rng.permutation(rest)[: budget - len(chosen)]))
                break
            credit[live] += weights[live]
            i = max(live, key=lambda j: credit[j])
            credit[i] -= weights[live].sum()
            while pos[i] < len(orders[i]):
                cand = int(orders[i][pos[i]])
                pos[i] += 1
                if cand not in chosen:
                    chosen[cand] = None
                    break
        return np.fromiter(chosen, dtype=np.int64)


def default_strategy() -> SelectionStrategy:
    """Random selection: in benchmarks/results/retrain.md (stdlib corpus, budget 300 of 1,284 queries,
    5 seeds, adapter gain on 550 held-out queries) random gave +1.58 nDCG@10 and beat novelty (+0.14),
    margin (+1.10), k-center diversity (+0.34) and a diversity+margin mix (+0.58). Rerun the benchmark on
    your own traffic before switching."""
    return RandomSelection()


STRATEGIES: dict[str, type] = {
    "random": RandomSelection,
    "misses": MissSelection,
    "novelty": NoveltySelection,
    "margin": MarginSelection,
    "diversity": DiversitySelection,
}
