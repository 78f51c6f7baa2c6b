"""Feedback records -> training pairs. Clicks and explicit positives become (query, passage) pairs.

Skipped (shown but not clicked) results are deliberately *not* turned into negatives: clicks are
position-biased and a skipped result, even one ranked above a click, is often relevant but unseen. That is
weak evidence, and only an explicit ``negative`` signal becomes a negative.

How the events of one (query, document) decide its label (``build_pairs``):

1. Sources rank: annotators' labels (``embguard label import``) outrank a user's explicit judgement
   (``positive``/``negative`` feedback), which outranks clicks. Only the highest-ranking source that said
   anything about the pair counts; the others are ignored, whatever they said.
2. Within that source the latest event (``ts_ms``) wins: a later negative overrides earlier positives and
   the other way round. A positive and a negative of the same source *at the same time* cannot be ordered,
   so they cancel: the document is neither a positive nor a negative for that query.
3. The pair's weight is the sum of the winning polarity's events after the last opposite event (repeated
   clicks on the same result add up), each click first weighted by its rank (``retrain.position``), and
   the total is capped at ``max_pair_weight`` so one heavy user cannot dominate the training set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from .errors import DataError
from .position import PositionBias
from .protocols import DocId

Signal = Literal["click", "positive", "negative"]
SIGNALS: tuple[str, ...] = ("click", "positive", "negative")
Source = Literal["label", "feedback", "click"]
# Highest priority first: annotators' labels, a user's explicit judgement, clicks.
SOURCES: tuple[str, ...] = ("label", "feedback", "click")
MAX_PAIR_WEIGHT = 10.0


@dataclass(frozen=True)
class FeedbackRecord:
    """One feedback event.

    ``source`` is who gave it (see ``SOURCES``); None derives it from the signal: a click is a click, a
    ``positive``/``negative`` a user's explicit judgement. ``ts_ms`` orders the events of one source.
    ``rank`` is the 1-based position a clicked document was shown at (None: unknown, the click weighs 1).
    """

    query: str
    doc_id: DocId
    signal: Signal
    weight: float = 1.0
    ts_ms: int = 0
    source: Source | None = None
    rank: int | None = None

    @property
    def origin(self) -> str:
        """The record's source, derived from its signal when not given."""
        if self.source is not None:
            return self.source
        return "click" if self.signal == "click" else "feedback"


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


@dataclass(frozen=True)
class _Event:
    priority: int  # index in SOURCES: lower outranks higher
    ts_ms: int
    positive: bool
    weight: float


def build_pairs(
    records: Iterable[FeedbackRecord],
    doc_text: Mapping[DocId, str] | Callable[[DocId], str | None],
    min_weight: float = 0.0,
    *,
    position_bias: PositionBias | None = None,
    max_pair_weight: float = MAX_PAIR_WEIGHT,
) -> TrainingPairs:
    """Deduplicated (query, positive) pairs and explicit negatives from feedback, under the rule in this
    module's docstring (source priority, then the latest event; repeated events summed and capped).

    ``doc_text`` maps a doc id to its passage (a dict or a lookup function returning None when unknown).
    Records whose doc id has no text are skipped and reported in ``missing_doc_ids``. A click's weight is
    multiplied by ``position_bias.weight(rank)`` (default ``PositionBias()``: 1/r examination, capped at 10).
    """
    if not (math.isfinite(max_pair_weight) and max_pair_weight > 0):
        raise DataError(f"max_pair_weight={max_pair_weight!r} must be a positive finite number")
    bias = position_bias if position_bias is not None else PositionBias()
    lookup: Callable[[DocId], str | None]
    lookup = doc_text.get if isinstance(doc_text, Mapping) else doc_text
    events: dict[tuple[str, DocId], list[_Event]] = {}
    for r in records:
        if r.signal not in SIGNALS:
            raise DataError(
                f"feedback record for query {r.query!r} has signal {r.signal!r}; use one of {', '.join(SIGNALS)}"
            )
        if r.origin not in SOURCES:
            raise DataError(
                f"feedback record for query {r.query!r} has source {r.origin!r}; use one of {', '.join(SOURCES)}"
            )
        q = normalize_query(r.query)
        if not q:
            continue
        w = float(r.weight) * (bias.weight(r.rank) if r.signal == "click" else 1.0)
        ev = _Event(SOURCES.index(r.origin), int(r.ts_ms), r.signal != "negative", w)
        events.setdefault((q, r.doc_id), []).append(ev)
    pairs: list[Pair] = []
    positives: dict[str, set[DocId]] = {}
    neg: dict[str, set[DocId]] = {}
    missing: list[DocId] = []
    # Sorted, so the same events in any order (a database returns them in its own) give the same pairs in the
    # same order, and training on them is reproducible.
    for (q, doc_id), evs in sorted(events.items(), key=lambda kv: (kv[0][0], repr(kv[0][1]))):
        verdict = _resolve(evs)
        if verdict is None:
            continue
        positive, w = verdict
        if not positive:
            neg.setdefault(q, set()).add(doc_id)
            continue
        w = min(w, max_pair_weight)
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


def _resolve(events: list[_Event]) -> tuple[bool, float] | None:
    """(positive?, summed weight) of one (query, document), or None when its latest events conflict."""
    top = min(e.priority for e in events)
    mine = [e for e in events if e.priority == top]
    last = max(e.ts_ms for e in mine)
    latest = {e.positive for e in mine if e.ts_ms == last}
    if len(latest) > 1:
        return None
    positive = latest.pop()
    # Events before the last opposite one were overruled by it; those after it agree and add up.
    overruled_until = max((e.ts_ms for e in mine if e.positive != positive), default=None)
    kept = [e for e in mine if e.positive == positive and (overruled_until is None or e.ts_ms > overruled_until)]
    w = math.fsum(e.weight for e in kept)
    return positive, w


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
