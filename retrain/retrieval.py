"""Exact cosine retrieval over an in-memory corpus: the reference ranking used by evaluation and mining."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError
from .protocols import DocId


def normalize(vecs: np.ndarray) -> np.ndarray:
    vecs = np.asarray(vecs, dtype=np.float32)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    out: np.ndarray = vecs / np.maximum(norms, 1e-12)
    return out


def top_k(query_vecs: np.ndarray, doc_vecs: np.ndarray, k: int, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine scores of the ``k`` nearest docs per query, best first. Exact, chunked by query."""
    q, d = normalize(query_vecs), normalize(doc_vecs)
    if q.shape[1] != d.shape[1]:
        raise DataError(
            f"query vectors have dimension {q.shape[1]} but documents {d.shape[1]}; "
            "encode both with the same model (or apply the adapter to queries only)"
        )
    k = min(k, d.shape[0])
    idx_out = np.empty((q.shape[0], k), dtype=np.int64)
    sc_out = np.empty((q.shape[0], k), dtype=np.float32)
    for s in range(0, q.shape[0], chunk):
        sims = q[s : s + chunk] @ d.T
        part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        psc = np.take_along_axis(sims, part, axis=1)
        order = np.argsort(-psc, axis=1, kind="stable")
        idx_out[s : s + chunk] = np.take_along_axis(part, order, axis=1)
        sc_out[s : s + chunk] = np.take_along_axis(psc, order, axis=1)
    return idx_out, sc_out


class ExactRetriever:
    """A ``Retriever`` over a fixed matrix of document vectors (tests, benchmarks, small corpora)."""

    def __init__(self, doc_ids: Sequence[DocId], doc_vecs: np.ndarray) -> None:
        if len(doc_ids) != len(doc_vecs):
            raise DataError(
                f"ExactRetriever got {len(doc_ids)} doc ids but {len(doc_vecs)} vectors; pass one id per row"
            )
        self.doc_ids = list(doc_ids)
        self.doc_vecs = normalize(doc_vecs)

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[DocId, float]]]:
        idx, sc = top_k(query_vectors, self.doc_vecs, k)
        return [
            [(self.doc_ids[i], float(s)) for i, s in zip(row_i, row_s, strict=True)]
            for row_i, row_s in zip(idx, sc, strict=True)
        ]

    def rank(self, query_vectors: np.ndarray, k: int = 10) -> list[list[DocId]]:
        idx, _ = top_k(query_vectors, self.doc_vecs, k)
        return [[self.doc_ids[i] for i in row] for row in idx]
