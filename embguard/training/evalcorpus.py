"""What the gate evaluates on: the collection's documents as a corpus, read once, and the general-domain
guard set. Above ``retrain.gate_max_docs`` documents the corpus is a pooled sub-corpus (relevant documents, both
models' live-index neighbours and random distractors; retrain.subcorpus documents the bias) instead of all of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embguard.config.settings import CollectionSettings, Settings
from embguard.milvus.milvus import Milvus

EVAL_MAX_DOCS = 20_000


class MilvusRetriever:
    """retrain.Retriever over the serving collection (hard-negative mining with the current model)."""

    def __init__(self, milvus: Milvus, collection: str, spec: CollectionSettings):
        self.milvus, self.collection, self.spec = milvus, collection, spec

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[Any, float]]]:
        out = []
        for i in range(0, len(query_vectors), 100):
            res = self.milvus.search(
                self.collection,
                query_vectors[i : i + 100],
                limit=k,
                anns_field=self.spec.vector_field,
                output_fields=[self.spec.id_field],
            )
            out += [[(h["id"], float(h["distance"])) for h in row] for row in res]
        return out


def doc_texts(milvus: Milvus, collection: str, spec: CollectionSettings, ids: Sequence[Any]) -> dict[Any, str]:
    out: dict[Any, str] = {}
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 1000):
        text = spec.require_text_field()
        for r in milvus.query(collection, ids=ids[i : i + 1000], output_fields=[spec.id_field, text]):
            out[r[spec.id_field]] = r[text]
    return out


def eval_corpus(
    milvus: Milvus,
    collection: str,
    spec: CollectionSettings,
    must: Sequence[Any],
    seed: int,
    settings: Settings | None = None,
    base_queries: np.ndarray | None = None,
) -> tuple[list[Any], list[str], np.ndarray]:
    """The evaluation corpus: the whole collection, or above ``retrain.gate_max_docs`` a pooled sub-corpus
    (retrain.subcorpus): every relevant doc, the base model's live-index neighbours of the held-out queries
    and uniform distractors; the candidate's neighbours join after training (``_pool_candidate``)."""
    fields = [spec.id_field, spec.require_text_field(), spec.vector_field]
    rs = settings.retrain if settings is not None else None
    if milvus.count(collection) <= (rs.gate_max_docs if rs else EVAL_MAX_DOCS):
        rows = [r for b in milvus.iterate(collection, fields) for r in b]
    else:
        from embguard.checks.windows import sample_documents
        from retrain import subcorpus

        sample = sample_documents(
            milvus, spec, rs.gate_distractors if rs else EVAL_MAX_DOCS, seed=seed, with_text=False
        )
        near = (
            subcorpus.neighbours(MilvusRetriever(milvus, collection, spec), base_queries, rs.gate_pool_k)
            if rs is not None and base_queries is not None
            else []
        )
        pooled = subcorpus.pool(must, near, [], sample.ids)
        rows = _rows(milvus, collection, fields, pooled.ids)
    return (
        [r[spec.id_field] for r in rows],
        [r[spec.require_text_field()] for r in rows],
        np.array([r[spec.vector_field] for r in rows], dtype=np.float32),
    )


def _rows(milvus: Milvus, collection: str, fields: list[str], ids: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        r
        for i in range(0, len(ids), 1000)
        for r in milvus.query(collection, ids=list(ids[i : i + 1000]), output_fields=fields)
    ]


def pool_candidate(
    milvus: Milvus,
    collection: str,
    spec: CollectionSettings,
    settings: Settings,
    cand_queries: np.ndarray,
    ids: list[Any],
    texts: list[str],
    base_vecs: np.ndarray,
) -> tuple[list[Any], list[str], np.ndarray]:
    """Add the candidate's live-index neighbours to a pooled gate corpus (no-op for a full corpus)."""
    from retrain import subcorpus

    if milvus.count(collection) <= settings.retrain.gate_max_docs:
        return ids, texts, base_vecs
    if cand_queries.shape[1] != base_vecs.shape[1]:
        # A candidate of another dimension (``models import``) cannot search the live index: the pool stays the
        # base model's neighbours plus the relevant documents, which favours the base model, never the candidate.
        return ids, texts, base_vecs
    have = set(ids)
    near = subcorpus.neighbours(MilvusRetriever(milvus, collection, spec), cand_queries, settings.retrain.gate_pool_k)
    rows = _rows(
        milvus,
        collection,
        [spec.id_field, spec.require_text_field(), spec.vector_field],
        [i for i in near if i not in have],
    )
    if not rows:
        return ids, texts, base_vecs
    return (
        [*ids, *(r[spec.id_field] for r in rows)],
        [*texts, *(r[spec.require_text_field()] for r in rows)],
        np.vstack([base_vecs, np.array([r[spec.vector_field] for r in rows], dtype=np.float32)]),
    )


def guard_set(n: int, seed: int) -> tuple[list[str], list[str], list[set[Any]]]:
    from embguard.training.stdlib_corpus import by_topic, stdlib_corpus

    ref = by_topic(stdlib_corpus())["language-reference"]
    rng = np.random.default_rng(seed)
    chosen = [ref[i] for i in sorted(rng.choice(len(ref), size=min(n, len(ref)), replace=False))]
    return [p.query for p in chosen], [p.text for p in ref], [{ref.index(p)} for p in chosen]
