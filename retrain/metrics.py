"""Per-query ranking metrics: nDCG@k, Recall@k, MRR@k, for binary or graded relevance.

``relevant`` maps doc id -> gain (1 for binary). nDCG uses the linear gain ``rel / log2(rank + 1)``
(the convention of the sentence-transformers IR evaluator and of trec_eval), the ideal ranking being the
relevant docs sorted by gain. Recall@k and MRR@k treat any gain > 0 as relevant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

import numpy as np

from .protocols import DocId


def _as_gains(relevant: Mapping[DocId, float] | AbstractSet[DocId]) -> dict[DocId, float]:
    if isinstance(relevant, Mapping):
        return {d: float(g) for d, g in relevant.items() if g > 0}
    return {d: 1.0 for d in relevant}


def ndcg_at_k(ranked: Sequence[DocId], relevant: Mapping[DocId, float] | AbstractSet[DocId], k: int = 10) -> float:
    gains = _as_gains(relevant)
    if not gains:
        return 0.0
    dcg = sum(gains.get(d, 0.0) / np.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate(ideal))
    return float(dcg / idcg)


def recall_at_k(ranked: Sequence[DocId], relevant: Mapping[DocId, float] | AbstractSet[DocId], k: int = 10) -> float:
    gains = _as_gains(relevant)
    if not gains:
        return 0.0
    return len(set(ranked[:k]) & gains.keys()) / len(gains)


def mrr_at_k(ranked: Sequence[DocId], relevant: Mapping[DocId, float] | AbstractSet[DocId], k: int = 10) -> float:
    gains = _as_gains(relevant)
    for i, d in enumerate(ranked[:k]):
        if d in gains:
            return 1.0 / (i + 1)
    return 0.0


METRICS = {"ndcg@10": ndcg_at_k, "recall@10": recall_at_k, "mrr@10": mrr_at_k}
