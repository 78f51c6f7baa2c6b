"""Labelled feedback as training data: the feedback collection's rows read and validated, and one collection's
labels split by query into training pairs and held-out queries (with the corpus the gate searches).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

import retrain
from embguard.client.tap import LABEL_QUERY_PREFIX, SIGNALS, read_tap
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import NotEnoughFeedback
from embguard.milvus.filters import literal
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION
from embguard.models import loading as models
from embguard.training.evalcorpus import doc_texts, eval_corpus

log = logging.getLogger("embguard.training")


_IDS_PER_FILTER = 500


def feedback_records(
    milvus: Milvus, alias: str, since_ms: int = 0, *, ranks: bool = False
) -> tuple[list[retrain.FeedbackRecord], list[str]]:
    """Click/positive/negative feedback with query text for ``alias`` (and their feedback ids, for pinning).

    Each record carries its time and source (an annotator's label, a user's explicit judgement, or a click),
    which decide conflicts in ``retrain.build_pairs``. With ``ranks``, each click also carries the rank the
    document was shown at, read from the tapped query it refers to (None when that row is gone)."""
    if not milvus.has_collection(FEEDBACK_COLLECTION):
        return [], []
    rows = [
        r
        for b in milvus.iterate(
            FEEDBACK_COLLECTION,
            ["feedback_id", "query_id", "query_text", "doc_id", "signal", "weight", "ts_ms"],
            filter=f'alias == {literal(alias)} and ts_ms >= {int(since_ms)} and query_text != ""',
        )
        for r in b
    ]
    records, ids, query_ids, bad = [], [], [], 0
    for r in rows:
        record = _record(r)
        if record is None:
            bad += 1
            continue
        records.append(record)
        ids.append(r["feedback_id"])
        query_ids.append(str(r.get("query_id") or ""))
    if bad:  # rows written before validation existed, or by hand: skipped, never fatal
        log.warning(
            "skipped %d malformed feedback row(s) for %s (doc_id not an id, unknown signal or a bad "
            "weight); they stay in %s until pruned",
            bad,
            alias,
            FEEDBACK_COLLECTION,
        )
    if ranks:
        records = _with_ranks(milvus, alias, records, query_ids)
    return records, ids


def _record(row: dict[str, Any]) -> retrain.FeedbackRecord | None:
    try:
        doc_id = json.loads(row["doc_id"])
        weight = float(row["weight"])
        ts_ms = int(row.get("ts_ms") or 0)
    except (TypeError, ValueError):
        return None
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)) or row["signal"] not in SIGNALS:
        return None
    if not math.isfinite(weight) or weight <= 0:
        return None
    label = str(row.get("query_id") or "").startswith(LABEL_QUERY_PREFIX)
    return retrain.FeedbackRecord(
        query=row["query_text"],
        doc_id=doc_id,
        signal=row["signal"],
        weight=weight,
        ts_ms=ts_ms,
        source="label" if label else None,  # None: a user's, by its signal (click or explicit judgement)
    )


def _with_ranks(
    milvus: Milvus, alias: str, records: list[retrain.FeedbackRecord], query_ids: list[str]
) -> list[retrain.FeedbackRecord]:
    """``records`` with each click's 1-based rank among the hits its tapped query showed (the Milvus schema
    stays as it is: the feedback row names the query, the tap row holds what was shown)."""
    wanted = sorted(
        {q for r, q in zip(records, query_ids, strict=True) if r.signal == "click" and r.origin == "click" and q}
    )
    shown = shown_hits(milvus, alias, wanted)
    out, known, clicks = [], 0, 0
    for r, q in zip(records, query_ids, strict=True):
        if r.signal == "click" and r.origin == "click":
            clicks += 1
            hits = shown.get(q, [])
            if r.doc_id in hits:
                known += 1
                r = replace(r, rank=hits.index(r.doc_id) + 1)
        out.append(r)
    if clicks:
        # Pruned tap rows (retention) or a click on a document the tap did not keep: those clicks weigh 1.
        log.info("%s: %d of %d click(s) joined to the rank they were shown at", alias, known, clicks)
    return out


def shown_hits(milvus: Milvus, alias: str, query_ids: Sequence[str]) -> dict[str, list[Any]]:
    """The hit ids each tapped query showed, best first, for the ``query_ids`` still in a tap collection
    (every model dimension's: a click may predate a swap to a model of another dimension)."""
    taps = sorted(c for c in milvus.list_collections() if c == TAP_COLLECTION or c.startswith(TAP_COLLECTION + "_d"))
    shown: dict[str, list[Any]] = {}
    for tap in taps:
        todo = [q for q in query_ids if q not in shown]
        for i in range(0, len(todo), _IDS_PER_FILTER):
            chunk = ", ".join(literal(q) for q in todo[i : i + _IDS_PER_FILTER])
            rows = read_tap(
                milvus, tap, f"alias == {literal(alias)} and query_id in [{chunk}]", ["query_id", "top_ids"]
            )
            for row in rows:
                shown[str(row["query_id"])] = list(row["top_ids"] or [])
    return shown


@dataclass(frozen=True)
class FeedbackSplit:
    """A collection's labelled feedback split for one candidate: training pairs, and held-out queries with their
    relevant documents and the evaluation corpus the gate searches (read once, with the base model's vectors)."""

    served: str
    base_id: str
    base: models.EmbeddingModel
    records: list[retrain.FeedbackRecord]
    feedback_ids: list[str]
    train_pairs: tuple[retrain.Pair, ...]
    positives: Any
    held_rel: dict[str, set[Any]]
    corpus: tuple[list[Any], list[str], np.ndarray]  # ids, texts, base vectors
    base_queries: np.ndarray  # the base model's vectors of held_queries, in that order
    strata: dict[str, str]  # held-out query -> "clicked" | "labelled"

    @property
    def held_queries(self) -> list[str]:
        return sorted(self.held_rel)


def split_feedback(settings: Settings, milvus: Milvus, spec: CollectionSettings, *, since_ms: int = 0) -> FeedbackSplit:
    """Read ``spec.name``'s feedback and split it by query (seeded): the held-out queries are never trained on."""
    rs = settings.retrain
    served = milvus.resolve(spec.name)
    base_id = milvus.properties(served).get(MODEL_ID_PROPERTY, "")
    base = models.load_by_id(base_id, settings.model.store_dir, settings.model.device)
    records, feedback_ids = feedback_records(milvus, spec.name, since_ms, ranks=True)
    labelled_text = doc_texts(milvus, served, spec, [r.doc_id for r in records])
    tp = retrain.build_pairs(records, labelled_text)
    queries = sorted({p.query for p in tp.pairs})
    need = rs.min_held_out / rs.held_out_fraction
    if len(queries) < need or len(tp.pairs) < rs.min_feedback_pairs:
        raise NotEnoughFeedback(
            f"{spec.name}: {len(tp.pairs)} feedback pairs over {len(queries)} distinct queries; a candidate needs "
            f"at least {rs.min_feedback_pairs} pairs (retrain.min_feedback_pairs) and {need:.0f} queries so that "
            f"{rs.min_held_out} can be held out. Collect more clicks, or import labels with `embguard label import`"
        )
    # Clicked queries are ones the live model already answered in its top results; annotators' labels (label
    # import) include its misses. Each source is held out in proportion, and the gate reports them apart.
    labelled = {retrain.normalize_query(r.query) for r in records if r.signal != "click"}
    strata = {"clicked": [q for q in queries if q not in labelled], "labelled": [q for q in queries if q in labelled]}
    split = retrain.split_queries_stratified(strata, held_out_fraction=rs.held_out_fraction, seed=0)
    train_pairs, held_pairs = retrain.split_pairs(tp.pairs, split)
    retrain.assert_disjoint([p.query for p in train_pairs], split.held_out)
    held_rel: dict[str, set[Any]] = {}
    for p in held_pairs:
        held_rel.setdefault(p.query, set()).add(p.positive_id)
    # The evaluation corpus is read once, before training: the gate needs it, and it also answers the
    # hard-negative miner's text look-ups (one Milvus query per mined id otherwise).
    base_queries = base.encode_queries(sorted(held_rel))
    corpus = eval_corpus(milvus, served, spec, [i for s in held_rel.values() for i in s], 0, settings, base_queries)
    return FeedbackSplit(
        served,
        base_id,
        base,
        records,
        feedback_ids,
        tuple(train_pairs),
        tp.positives,
        held_rel,
        corpus,
        base_queries,
        {q: "labelled" if q in labelled else "clicked" for q in held_rel},
    )
