"""The retrieval monitor as the daemon runs it: the corpus clustered once, live hits mapped to clusters.

:class:`monitors.RetrievalClusterDetector` compares where queries land (cluster profiles of their top-k hits);
this adapter owns what it needs from Milvus: the document sample's clusters, and vectors of hits outside the
sample looked up by id and assigned to their nearest centroid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import monitors

RETRIEVAL_TOP_K = 10


class RetrievalCheck:
    """Where queries land in the corpus: clusters of a document sample, each query's top-k hits mapped to them.

    Hits outside the document sample are assigned to their nearest cluster centroid, using vectors looked up by
    id, so the profiles cover every hit rather than an "unknown" bin. The cluster count fits the reference
    window's size (``monitors.clusters_for_window``).
    """

    name = "retrieval"
    input_kind = "top_ids"

    def __init__(
        self,
        corpus_ids: Sequence[Any],
        corpus_vectors: np.ndarray,
        lookup: Callable[[Sequence[Any]], dict[Any, np.ndarray]],
        alpha: float,
        n_queries: int,
        seed: int = 0,
        n_permutations: int = 999,
    ):
        self.n_permutations = n_permutations
        n_clusters = monitors.clusters_for_window(max(n_queries, 1), RETRIEVAL_TOP_K, len(corpus_ids))
        labels = monitors.cluster_corpus(corpus_vectors, n_clusters=n_clusters, seed=seed)
        cent = np.stack([corpus_vectors[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
        self._centroids = cent / np.linalg.norm(cent, axis=1, keepdims=True)
        self._known: dict[Any, int] = dict(zip(corpus_ids, labels.tolist(), strict=True))
        self._lookup = lookup
        self.alpha = alpha
        self.seed = seed
        self._reference: list[tuple[Any, ...]] = []
        self._det: monitors.RetrievalClusterDetector | None = None

    @staticmethod
    def _hits(top_ids: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        return [tuple(i for i in t[:RETRIEVAL_TOP_K] if i is not None) for t in top_ids]

    def _assign(self, rows: Sequence[tuple[Any, ...]]) -> None:
        missing = list({i for r in rows for i in r if i not in self._known})
        if missing:
            for i, v in self._lookup(missing).items():
                self._known[i] = int(np.argmax(self._centroids @ (v / np.linalg.norm(v))))
            self._det = None
        if self._det is None:
            ids = list(self._known)
            self._det = monitors.RetrievalClusterDetector(
                np.array(ids),
                np.array([self._known[i] for i in ids]),
                alpha=self.alpha,
                top_k=RETRIEVAL_TOP_K,
                n_permutations=self.n_permutations,
                seed=self.seed,
            ).fit(self._reference)

    def fit(self, reference_top_ids: Sequence[Sequence[Any]]) -> RetrievalCheck:
        self._reference = self._hits(reference_top_ids)
        self._det = None
        self._assign(self._reference)
        return self

    def check(self, current_top_ids: Sequence[Sequence[Any]]) -> monitors.DriftResult:
        cur = self._hits(current_top_ids)
        self._assign(cur)
        assert self._det is not None
        return self._det.check(cur)

    def reference_size(self) -> int:
        return len(self._reference)

    def split_statistics(self, current_top_ids: Sequence[Sequence[Any]], assigned: Any) -> np.ndarray:
        """The detector's statistic on every split of the page's shared null (``monitors.Page``)."""
        cur = self._hits(current_top_ids)
        self._assign(cur)
        assert self._det is not None
        return self._det.split_statistics(cur, assigned)
