"""The gate at scale: evaluate base and candidate on a pooled sub-corpus instead of the whole corpus.

Re-encoding every document with the candidate only to *decide* whether to swap costs as much as the swap
itself (hours to days past a few million documents). Above a size threshold the gate therefore ranks both
models over a pool of documents (TREC-style pooling):

- every document relevant to a held-out query;
- for each held-out query, the top-``k`` of the live index (base-model document vectors) for the query
  embedded by the **base** model, and again for the query embedded by the **candidate** (a fine-tune or a
  query adapter stays close enough to the base space for this to find the candidate's likely competitors);
- ``distractors`` documents drawn uniformly from the corpus, so the pool is not only near neighbours.

Each model then ranks the pool by exact cosine with its *own* document vectors: the candidate encodes only
the pool (a few hundred thousand documents at most, not the corpus).

Bias, stated: removing documents can only move relevant ones up, so a score on the pool is never below the
full-corpus score. For the base model the bias is zero for metrics @k' <= k: its full-corpus top-k is in the
pool (exact search; with an ANN index up to the index's recall), and every other pooled document ranks below
it. For the candidate, documents it would rank in its top-k' that its pooled neighbourhood missed are absent,
so its score, and with it the measured *gain*, can only be biased upwards. The gate uses the lower CI bound
of the gain, so keep that bias small next to ``gate_margin``: raise ``k`` if the benchmark
(benchmarks/bench_gate.py, results in benchmarks/results/swap.md) shows otherwise on your corpus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .errors import DataError
from .protocols import DocId, Retriever


@dataclass(frozen=True)
class SubCorpus:
    """The pooled ids (relevant first, then base pool, candidate pool, distractors) and what each added."""

    ids: tuple[DocId, ...]
    relevant: int
    base_pool: int
    candidate_pool: int
    distractors: int


def neighbours(retriever: Retriever, query_vectors: np.ndarray, k: int, batch: int = 100) -> list[DocId]:
    """The union of each query's top-``k`` ids in ``retriever`` (the live index), in first-seen order."""
    if k < 1:
        raise DataError(f"pool depth k={k}; use k >= the metric cut-off (10 for nDCG@10), e.g. 100")
    out: dict[DocId, None] = {}
    for s in range(0, len(query_vectors), batch):
        for hits in retriever.search(np.asarray(query_vectors[s : s + batch]), k):
            out.update((doc, None) for doc, _ in hits)
    return list(out)


def pool(
    relevant: Iterable[DocId],
    base_neighbours: Iterable[DocId],
    candidate_neighbours: Iterable[DocId],
    distractors: Iterable[DocId],
) -> SubCorpus:
    """Merge the four sources without duplicates, counting what each one added."""
    ids: dict[DocId, None] = {}
    added = []
    for source in (relevant, base_neighbours, candidate_neighbours, distractors):
        before = len(ids)
        ids.update((i, None) for i in source)
        added.append(len(ids) - before)
    return SubCorpus(tuple(ids), *added)
