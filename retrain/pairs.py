"""Feedback records -> training pairs. Clicks and explicit positives become (query, passage) pairs.

Skipped (shown but not clicked) results are deliberately *not* turned into negatives: clicks are
position-biased and a skipped result is often relevant but unseen. Only an explicit ``negative`` signal
becomes a negative.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import DataError
from .protocols import DocId

Signal = Literal["click", "positive", "negative"]
SIGNALS: tuple[str, ...] = ("click", "positive", "negative")


@dataclass(frozen=True)
class FeedbackRecord:
    query: str
    doc_id: DocId
    signal: Signal
    weight: float = 1.0


@dataclass(frozen=True)
class Pair:
    """One training example: a query, a relevant passage and (optionally) a non-relevant one."""

    query: str
    positive: str
    negative: str | None = None
    positive_id: DocId | None = None
    negative_id: DocId | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class TrainingPairs:
    pairs: tuple[Pair, ...]
    # Explicit negatives per query (doc ids), for mining exclusion and triplet building.
    negatives: Mapping[str, frozenset[DocId]]
    positives: Mapping[str, frozenset[DocId]]
    missing_doc_ids: tuple[DocId, ...]


def normalize_query(q: str) -> str:
    """The form a query is paired, split and stratified under: whitespace runs collapsed."""
    return " ".join(q.split())


def build_pairs(
    records: Iterable[FeedbackRecord],
    doc_text: Mapping[DocId, str] | Callable[[DocId], str | None],
    min_weight: float = 0.0,
) -> TrainingPairs:
    """Deduplicated (query, positive) pairs from feedback; weights of repeated pairs are summed.

    ``doc_text`` maps a doc id to its passage (a dict or a lookup function returning None when unknown).
    Records whose doc id has no text are skipped and reported in ``missing_doc_ids``. A doc that got both a
    positive and an explicit negative signal for the same query is dropped from both sides (conflicting).
    """
    lookup: Callable[[DocId], str | None]
    lookup = doc_text.get if isinstance(doc_text, Mapping) else doc_text
    pos_w: dict[tuple[str, DocId], float] = {}
    neg: dict[str, set[DocId]] = {}
    for r in records:
        if r.signal not in SIGNALS:
            raise DataError(
                f"feedback record for query {r.query!r} has signal {r.signal!r}; use one of {', '.join(SIGNALS)}"
            )
        q = normalize_query(r.query)
        if not q:
            continue
        if r.signal == "negative":
            neg.setdefault(q, set()).add(r.doc_id)
        else:
            pos_w[(q, r.doc_id)] = pos_w.get((q, r.doc_id), 0.0) + float(r.weight)
    pairs: list[Pair] = []
    positives: dict[str, set[DocId]] = {}
    missing: list[DocId] = []
    for (q, doc_id), w in pos_w.items():
        if doc_id in neg.get(q, ()):
            neg[q].discard(doc_id)
            continue
        if w <= min_weight:
            continue
        text = lookup(doc_id)
        if text is None:
            missing.append(doc_id)
            continue
        positives.setdefault(q, set()).add(doc_id)
        pairs.append(Pair(query=q, positive=text, positive_id=doc_id, weight=w))
    return TrainingPairs(
        pairs=tuple(pairs),
        negatives={q: frozenset(v) for q, v in neg.items() if v},
        positives={q: frozenset(v) for q, v in positives.items()},
        missing_doc_ids=tuple(dict.fromkeys(missing)),
    )


def with_explicit_negatives(
    tp: TrainingPairs, doc_text: Mapping[DocId, str] | Callable[[DocId], str | None]
) -> tuple[Pair, ...]:
    """Attach each query's explicit negatives (``negative`` signals) to its pairs as triplets.

    A pair gets one triplet per explicit negative; pairs of queries without any stay plain pairs.
    """
    lookup: Callable[[DocId], str | None]
    lookup = doc_text.get if isinstance(doc_text, Mapping) else doc_text
    out: list[Pair] = []
    for p in tp.pairs:
        negs = [(d, lookup(d)) for d in sorted(tp.negatives.get(p.query, ()), key=str)]
        negs = [(d, t) for d, t in negs if t is not None and t != p.positive]
        if not negs:
            out.append(p)
        for d, t in negs:
            out.append(
                Pair(
                    query=p.query,
                    positive=p.positive,
                    negative=t,
                    positive_id=p.positive_id,
                    negative_id=d,
                    weight=p.weight,
                )
            )
    return tuple(out)
