"""Hard-negative mining over any ``Retriever``, with false-negative filtering.

A candidate is dropped when it is a known positive for the query, or when its score exceeds
``(1 - relative_margin) * positive_score``: something scored that close to the known answer is more often
an unlabelled relevant passage than a true negative (RocketQA / sentence-transformers ``relative_margin``).
The top ``skip_top`` ranks can also be skipped for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError
from .pairs import Pair
from .protocols import DocId, Encoder, Retriever


@dataclass(frozen=True)
class MiningConfig:
    k: int = 20
    relative_margin: float = 0.05
    num_negatives: int = 1
    skip_top: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.relative_margin < 1:
            raise ConfigError(f"MiningConfig.relative_margin={self.relative_margin} must be in [0, 1), e.g. 0.05")
        if self.k < 1 or self.num_negatives < 1:
            raise ConfigError(f"MiningConfig k={self.k}, num_negatives={self.num_negatives}: both must be >= 1")


def mine_hard_negatives(
    pairs: Sequence[Pair],
    encoder: Encoder,
    retriever: Retriever,
    doc_text: Mapping[DocId, str] | Callable[[DocId], str | None],
    positives: Mapping[str, frozenset[DocId]] | None = None,
    config: MiningConfig = MiningConfig(),
) -> list[Pair]:
    """One output ``Pair`` (with ``negative`` set) per mined negative; pairs without a usable one are kept
    without a negative so no positive data is lost.

    ``positives`` maps query -> every known positive doc id (defaults to the ids in ``pairs``). The
    positive's score is the query-positive cosine from ``encoder``.
    """
    lookup = doc_text.get if isinstance(doc_text, Mapping) else doc_text
    known: dict[str, set[DocId]] = {}
    for p in pairs:
        if p.positive_id is not None:
            known.setdefault(p.query, set()).add(p.positive_id)
    for q, ids in (positives or {}).items():
        known.setdefault(q, set()).update(ids)
    if not pairs:
        return []
    qv = np.asarray(encoder.encode([p.query for p in pairs]), dtype=np.float32)
    pv = np.asarray(encoder.encode([p.positive for p in pairs]), dtype=np.float32)
    qv /= np.maximum(np.linalg.norm(qv, axis=1, keepdims=True), 1e-12)
    pv /= np.maximum(np.linalg.norm(pv, axis=1, keepdims=True), 1e-12)
    pos_scores = np.einsum("ij,ij->i", qv, pv)
    hits = retriever.search(qv, config.k + config.skip_top)
    out: list[Pair] = []
    for pair, pos_score, row in zip(pairs, pos_scores, hits, strict=True):
        ceiling = (1.0 - config.relative_margin) * float(pos_score)
        found = 0
        for doc_id, score in row[config.skip_top :]:
            if doc_id in known.get(pair.query, ()) or doc_id == pair.positive_id or score > ceiling:
                continue
            text = lookup(doc_id)
            if text is None or text == pair.positive:
                continue
            out.append(
                Pair(
                    query=pair.query,
                    positive=pair.positive,
                    negative=text,
                    positive_id=pair.positive_id,
                    negative_id=doc_id,
                    weight=pair.weight,
                )
            )
            found += 1
            if found >= config.num_negatives:
                break
        if not found:
            out.append(pair)
    return out
