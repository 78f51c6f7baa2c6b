"""Retrieval evaluation: rank a corpus by exact cosine and score each query with nDCG/Recall/MRR@10."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .bootstrap import Interval, bootstrap_mean, paired_difference
from .errors import DataError
from .metrics import METRICS
from .protocols import DocId
from .retrieval import top_k

Relevance = Mapping[DocId, float] | set[DocId] | frozenset[DocId]


@dataclass(frozen=True)
class PerQueryScores:
    """One array per metric name, aligned with the evaluated queries."""

    scores: Mapping[str, np.ndarray]

    def mean(self, metric: str = "ndcg@10") -> float:
        return float(np.mean(self.scores[metric]))

    def interval(self, metric: str = "ndcg@10", resamples: int = 2000, seed: int = 0) -> Interval:
        return bootstrap_mean(self.scores[metric], resamples=resamples, seed=seed)

    def diff(self, base: PerQueryScores, metric: str = "ndcg@10", resamples: int = 2000, seed: int = 0) -> Interval:
        return paired_difference(self.scores[metric], base.scores[metric], resamples=resamples, seed=seed)


def score_rankings(rankings: Sequence[Sequence[DocId]], relevance: Sequence[Relevance], k: int = 10) -> PerQueryScores:
    """Per-query metrics for already-ranked doc ids (any retriever)."""
    if len(rankings) != len(relevance):
        raise DataError(f"got {len(rankings)} rankings but {len(relevance)} relevance sets; one per query")
    out = {
        name: np.array([fn(r, rel, k) for r, rel in zip(rankings, relevance, strict=True)], dtype=np.float64)
        for name, fn in METRICS.items()
    }
    return PerQueryScores(out)


def rank_by_cosine(
    query_vecs: np.ndarray, doc_vecs: np.ndarray, doc_ids: Sequence[DocId], k: int = 10
) -> list[list[DocId]]:
    if len(doc_ids) != len(doc_vecs):
        raise DataError(f"{len(doc_ids)} doc ids for {len(doc_vecs)} document vectors; pass one id per row")
    idx, _ = top_k(query_vecs, doc_vecs, k)
    return [[doc_ids[i] for i in row] for row in idx]


def evaluate_embeddings(
    query_vecs: np.ndarray, doc_vecs: np.ndarray, doc_ids: Sequence[DocId], relevance: Sequence[Relevance], k: int = 10
) -> PerQueryScores:
    """Exact-cosine retrieval of each query over the whole corpus, then per-query metrics."""
    return score_rankings(rank_by_cosine(query_vecs, doc_vecs, doc_ids, k), relevance, k)
