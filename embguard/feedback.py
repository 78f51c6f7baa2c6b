"""Labelled feedback as training data: the feedback collection's rows read and validated, and one collection's
labels split by query into training pairs and held-out queries (with the corpus the gate searches).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import retrain

from . import model as models
from .config import CollectionSettings, Settings
from .errors import NotEnoughFeedback
from .evalcorpus import doc_texts, eval_corpus
from .milvus import MODEL_ID_PROPERTY, Milvus, literal
from .tap import FEEDBACK_COLLECTION, SIGNALS

log = logging.getLogger("embguard.training")


def feedback_records(milvus: Milvus, alias: str, since_ms: int = 0) -> tuple[list[retrain.FeedbackRecord], list[str]]:
    """Click/positive/negative feedback with query text for ``alias`` (and their feedback ids, for pinning)."""
    if not milvus.has_collection(FEEDBACK_COLLECTION):
        return [], []
    rows = [
        r
        for b in milvus.iterate(
            FEEDBACK_COLLECTION,
            ["feedback_id", "query_text", "doc_id", "signal", "weight"],
            filter=f'alias == {literal(alias)} and ts_ms >= {int(since_ms)} and query_text != ""',
        )
        for r in b
    ]
    records, ids, bad = [], [], 0
    for r in rows:
        record = _record(r)
        if record is None:
            bad += 1
            continue
        records.append(record)
        ids.append(r["feedback_id"])
    if bad:  # rows written before validation existed, or by hand: skipped, never fatal
        log.warning(
            "skipped %d malformed feedback row(s) for %s (doc_id not an id, unknown signal or a bad "
            "weight); they stay in %s until pruned",
            bad,
            alias,
            FEEDBACK_COLLECTION,
        )
    return records, ids


def _record(row: dict[str, Any]) -> retrain.FeedbackRecord | None:
    try:
        doc_id = json.loads(row["doc_id"])
        weight = float(row["weight"])
    except (TypeError, ValueError):
        return None
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)) or row["signal"] not in SIGNALS:
        return None
    if not math.isfinite(weight) or weight <= 0:
        return None
    return retrain.FeedbackRecord(query=row["query_text"], doc_id=doc_id, signal=row["signal"], weight=weight)


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
    records, feedback_ids = feedback_records(milvus, spec.name, since_ms)
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
    base_queries = base.encode(sorted(held_rel))
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
