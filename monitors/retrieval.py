"""Retrieval-aware drift: test *where queries land in the corpus*, not the query vectors themselves.

The corpus is partitioned into clusters once (given, or k-means on the document vectors). Each query is mapped
to the cluster of its top-1 retrieved document, and the reference and current windows' cluster histograms are
compared with Pearson's chi-square test (or the G-test, ``statistic="g"``) on the 2 x K contingency table. The
two windows are independent samples, which is what the contingency (homogeneity) test assumes; the reference
histogram is not treated as a known distribution. Sparse bins are merged until every expected count is at least
``min_expected`` (5 by default) so the chi-square approximation holds; the merge uses only the pooled column
totals, so it does not favour either window. Pearson is the default because with windows of a few hundred
queries the G-test still over-alarms (7.3% at alpha = 5% over 1,000 real no-drift windows of 200 queries, against
5.0% for Pearson). Document ids the corpus assignment does not know (documents added after clustering) get their
own "unknown" bin and are counted in ``details``.

On real query traffic this was markedly more powerful than MMD on the raw query vectors (research/drift.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

import numpy as np
from scipy.stats import chi2_contingency

from ._validate import as_ids, as_matrix, check_alpha, check_int, frozen, require_fitted
from .errors import MonitorInputError
from .result import DriftResult

UNKNOWN = -1  # cluster label of ids that are not in the corpus assignment


def cluster_corpus(vectors: Any, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    """K-means cluster labels (0..n_clusters-1) for corpus rows, on L2-normalised vectors (seeded, deterministic)."""
    from sklearn.cluster import KMeans

    from ._torch import normalise

    x = as_matrix(vectors, "corpus_vectors", min_rows=2)
    n_clusters = check_int(n_clusters, "n_clusters", 2)
    if n_clusters > len(x):
        raise MonitorInputError(f"n_clusters={n_clusters} exceeds the {len(x)} corpus rows; use fewer clusters")
    return KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(normalise(x)).astype(np.int64)


def _merge_sparse(table: np.ndarray, min_expected: float) -> tuple[np.ndarray, int]:
    """Merge the smallest columns of a 2 x K count table until every expected count >= min_expected."""
    totals = table.sum(axis=0)
    order = np.argsort(totals, kind="stable")
    row_share = table.sum(axis=1).min() / table.sum()
    # Expected count of the smaller row in a column is column_total * row_share.
    need = min_expected / row_share
    kept = [i for i in order if totals[i] >= need]
    small = [i for i in order if totals[i] < need]
    if not small:
        return table, 0
    merged = table[:, small].sum(axis=1, keepdims=True)
    # If the merged bin is still too small, fold in the smallest kept columns until it is large enough.
    while merged.sum() < need and kept:
        merged = merged + table[:, [kept[0]]]
        small.append(kept.pop(0))
    out = np.concatenate([table[:, kept], merged], axis=1) if kept else merged
    return out, len(small)


class RetrievalClusterDetector:
    """Chi-square (or G) test on the corpus-cluster histogram of queries' top-1 hits.

    Construct with ``doc_ids`` and their ``labels`` (cluster per document), or with
    :meth:`from_corpus` to k-means-cluster document vectors. Then ``fit(reference_top1_ids)`` and
    ``check(current_top1_ids)``: one top-1 document id per query (integers or strings).
    """

    name = "retrieval_clusters"

    def __init__(self, doc_ids: Any, labels: Any, *, alpha: float = 0.05, min_expected: float = 5.0,
                 statistic: Literal["pearson", "g"] = "pearson", min_rows: int = 10) -> None:
        ids = as_ids(doc_ids, "doc_ids", min_rows=1)
        lab = np.asarray(labels)
        if lab.shape != ids.shape or not np.issubdtype(lab.dtype, np.integer):
            raise MonitorInputError(f"labels: expected {ids.shape[0]} integer cluster labels (one per doc id), got "
                                    f"shape {lab.shape} dtype {lab.dtype}; pass e.g. cluster_corpus(vectors)")
        if (lab < 0).any():
            raise MonitorInputError(f"labels: negative labels are reserved for unknown documents ({UNKNOWN}); "
                                    "number clusters from 0")
        self._assignment: dict[Any, int] = dict(zip(ids.tolist(), lab.astype(np.int64).tolist()))
        if len(self._assignment) != len(ids):
            raise MonitorInputError("doc_ids: contains duplicates; pass each corpus document once")
        self.n_clusters = int(lab.max()) + 1
        self.alpha = check_alpha(alpha)
        if not float(min_expected) > 0:
            raise MonitorInputError(f"min_expected={min_expected!r} must be > 0; 5 is the textbook rule")
        self.min_expected = float(min_expected)
        if statistic not in ("pearson", "g"):
            raise MonitorInputError(f"statistic={statistic!r} must be 'pearson' (chi-square) or 'g' (G-test)")
        self.statistic = statistic
        self.min_rows = check_int(min_rows, "min_rows", 2)
        self._reference_counts: np.ndarray | None = None
        self._n_reference = 0

    @classmethod
    def from_corpus(cls, doc_ids: Any, vectors: Any, *, n_clusters: int = 20, seed: int = 0,
                    **kwargs: Any) -> RetrievalClusterDetector:
        """Cluster the corpus vectors with seeded k-means (k=20 was best on real traffic) and build the detector."""
        ids = as_ids(doc_ids, "doc_ids", min_rows=1)
        vec = as_matrix(vectors, "vectors", min_rows=2)
        if len(ids) != len(vec):
            raise MonitorInputError(f"vectors: {len(vec)} rows for {len(ids)} doc_ids; pass one vector per id")
        return cls(ids, cluster_corpus(vec, n_clusters=n_clusters, seed=seed), **kwargs)

    @property
    def assignment(self) -> Mapping[Any, int]:
        return frozen(self._assignment)

    def labels_of(self, top1_ids: Any) -> np.ndarray:
        """Cluster label per id; ``UNKNOWN`` (-1) for ids outside the corpus assignment."""
        ids = as_ids(top1_ids, "top1_ids", min_rows=0)
        get = self._assignment.get
        return np.fromiter((get(i, UNKNOWN) for i in ids.tolist()), dtype=np.int64, count=len(ids))

    def _counts(self, top1_ids: Any, name: str) -> np.ndarray:
        ids = as_ids(top1_ids, name, min_rows=self.min_rows)
        # Last bin holds unknown ids.
        labels = self.labels_of(ids)
        return np.bincount(np.where(labels == UNKNOWN, self.n_clusters, labels), minlength=self.n_clusters + 1)

    def fit(self, reference_top1_ids: Any) -> Self:
        self._reference_counts = self._counts(reference_top1_ids, "reference_top1_ids")
        self._n_reference = int(self._reference_counts.sum())
        return self

    def check(self, current_top1_ids: Any) -> DriftResult:
        require_fitted(self._reference_counts is not None, type(self).__name__)
        assert self._reference_counts is not None
        cur = self._counts(current_top1_ids, "current_top1_ids")
        table = np.stack([self._reference_counts, cur])
        table = table[:, table.sum(axis=0) > 0]
        merged, n_merged = _merge_sparse(table, self.min_expected)
        if merged.shape[1] < 2:
            stat, p, dof = 0.0, 1.0, 0
        else:
            lambda_ = "log-likelihood" if self.statistic == "g" else "pearson"
            value, p, dof, _ = chi2_contingency(merged, correction=False, lambda_=lambda_)
            stat, p, dof = float(value), float(p), int(dof)
        n_cur = int(cur.sum())
        share_cur = cur[:-1] / n_cur
        share_ref = self._reference_counts[:-1] / self._n_reference
        delta = share_cur - share_ref
        top = np.argsort(-np.abs(delta))[:5]
        return DriftResult(
            method=self.name, statistic=stat, p_value=p, threshold=None, drift=p <= self.alpha, alpha=self.alpha,
            n_reference=self._n_reference, n_current=n_cur,
            params=frozen({"n_clusters": self.n_clusters, "min_expected": self.min_expected,
                           "test": f"{'G-test' if self.statistic == 'g' else 'chi-square'} (2 x K contingency)",
                           "statistic": self.statistic, "min_rows": self.min_rows}),
            details=frozen({
                "dof": dof, "bins_tested": int(merged.shape[1]), "bins_merged": n_merged,
                "unknown_reference": int(self._reference_counts[-1]), "unknown_current": int(cur[-1]),
                "largest_share_changes": tuple((int(c), float(share_ref[c]), float(share_cur[c])) for c in top),
            }),
        )
