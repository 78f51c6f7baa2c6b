"""Retrieval-aware drift: test *where queries land in the corpus*, not the query vectors themselves.

The corpus is partitioned into clusters once (given, or k-means on the document vectors).

Top-k input (the default when each query carries several hits, as the tap records them): each query becomes a
*profile*, the share of its top-k hits in each cluster. The statistic is Pearson's chi-square distance between
the two windows' mean profiles, ``sum_c (mean_ref_c - mean_cur_c)^2 / pooled_c``, and the p-value is a
permutation p-value over *queries* (``(1 + #{b: T_b >= T_obs}) / (1 + B)``), exact for exchangeable queries: the
hits of one query are dependent, so counting them as independent draws in a contingency table would over-alarm,
while permuting whole queries keeps that dependence intact. Using k hits per query rather than one lowers the
noise of each query's position, so small windows gain power (docs/monitors.md: 78% against 51% at n = 200).
:func:`clusters_for_window` picks a cluster count that fits the window size.

Top-1 input (one id per query): each query is mapped to the cluster of its top-1 retrieved document, and the
reference and current windows' cluster histograms are compared with Pearson's chi-square test (or the G-test,
``statistic="g"``) on the 2 x K contingency table. The
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
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
from scipy.stats import chi2_contingency

from ._validate import as_ids, as_matrix, check_alpha, check_int, frozen, require_fitted
from .errors import MonitorInputError
from .result import DriftResult

if TYPE_CHECKING:  # torch loads on the first permutation test, so `import monitors` stays cheap
    import torch

UNKNOWN = -1  # cluster label of ids that are not in the corpus assignment


def cluster_corpus(vectors: Any, n_clusters: int = 20, seed: int = 0) -> np.ndarray:
    """K-means cluster labels (0..n_clusters-1) for corpus rows, on L2-normalised vectors (seeded, deterministic)."""
    from sklearn.cluster import KMeans

    from ._torch import normalise

    x = as_matrix(vectors, "corpus_vectors", min_rows=2)
    n_clusters = check_int(n_clusters, "n_clusters", 2)
    if n_clusters > len(x):
        raise MonitorInputError(f"n_clusters={n_clusters} exceeds the {len(x)} corpus rows; use fewer clusters")
    labels: np.ndarray = KMeans(n_clusters=n_clusters, n_init=3, random_state=seed).fit_predict(normalise(x))
    return labels.astype(np.int64)


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


def clusters_for_window(n_queries: int, top_k: int = 10, corpus_size: int | None = None) -> int:
    """A cluster count for windows of ``n_queries`` queries with ``top_k`` hits each.

    Top-1 histograms need about 10 queries per cluster for the chi-square test (k = 20 was best at n = 200 on
    real traffic, research/drift.md). Top-k profiles spread each query over several clusters, so finer
    partitions keep power: at n = 200 with top-10 hits, 80 clusters found a 20% new topic family in 78% of
    windows against 51% for top-1 with 20 (docs/monitors.md). Bounded by 2, by 100, and by a
    25th of the corpus sample (clusters need members).
    """
    n_queries = check_int(n_queries, "n_queries", 1)
    k = n_queries / 10 if top_k <= 1 else n_queries * min(top_k, 10) / 25
    out = int(np.clip(round(k), 2, 100))
    if corpus_size is not None:
        out = int(min(out, max(2, corpus_size // 25)))
    return out


def as_top_ids(x: Any, name: str, *, min_rows: int) -> list[tuple[Any, ...]]:
    """Per query, its hit ids in rank order: a 1-D array of top-1 ids, a 2-D (queries, k) array, or ragged lists."""
    arr: Any
    if isinstance(x, np.ndarray) and x.ndim == 2:
        if not (np.issubdtype(x.dtype, np.integer) or x.dtype.kind in "US" or x.dtype == object):
            raise MonitorInputError(f"{name}: dtype {x.dtype} is not an id type; pass integer or string document ids")
        rows = [tuple(r) for r in x.tolist()]
    elif isinstance(x, (list, tuple)) and x and all(isinstance(r, (list, tuple)) for r in x):
        rows = [tuple(v for v in r if v is not None) for r in x]
        bad = [v for r in rows for v in r if isinstance(v, bool) or not isinstance(v, (int, str, np.integer))]
        if bad:
            raise MonitorInputError(f"{name}: hit id {bad[0]!r} is not an id type; pass integer or string ids")
    else:
        arr = as_ids(x, name, min_rows=min_rows)
        return [(v,) for v in arr.tolist()]
    # A query without hits stays (an all-zero profile) so the rows line up with the window's other inputs.
    with_hits = sum(1 for r in rows if r)
    if with_hits < min_rows:
        raise MonitorInputError(
            f"{name}: {with_hits} queries with hits, need at least {min_rows} (min_rows="
            f"{min_rows}); collect a larger window or lower min_rows"
        )
    return rows


class RetrievalClusterDetector:
    """Where queries land in the corpus: top-k hit-cluster profiles (permutation test) or top-1 histograms.

    Construct with ``doc_ids`` and their ``labels`` (cluster per document), or with
    :meth:`from_corpus` to k-means-cluster document vectors. Then ``fit(reference_top_ids)`` and
    ``check(current_top_ids)``: per query, its top-k hit ids in rank order (a 1-D array of top-1 ids works too,
    and then the chi-square test on the top-1 histogram is used, as before). ``top_k`` caps the hits used.
    """

    name = "retrieval_clusters"
    input_kind = "top_ids"

    def __init__(
        self,
        doc_ids: Any,
        labels: Any,
        *,
        alpha: float = 0.05,
        min_expected: float = 5.0,
        statistic: Literal["pearson", "g"] = "pearson",
        min_rows: int = 10,
        top_k: int = 10,
        n_permutations: int = 999,
        seed: int = 0,
    ) -> None:
        ids = as_ids(doc_ids, "doc_ids", min_rows=1)
        lab = np.asarray(labels)
        if lab.shape != ids.shape or not np.issubdtype(lab.dtype, np.integer):
            raise MonitorInputError(
                f"labels: expected {ids.shape[0]} integer cluster labels (one per doc id), got "
                f"shape {lab.shape} dtype {lab.dtype}; pass e.g. cluster_corpus(vectors)"
            )
        if (lab < 0).any():
            raise MonitorInputError(
                f"labels: negative labels are reserved for unknown documents ({UNKNOWN}); number clusters from 0"
            )
        self._assignment: dict[Any, int] = dict(zip(ids.tolist(), lab.astype(np.int64).tolist(), strict=True))
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
        self.top_k = check_int(top_k, "top_k", 1)
        self.n_permutations = check_int(n_permutations, "n_permutations", 19)
        self.seed = int(seed)
        self._reference: np.ndarray | None = None  # (queries, clusters + 1) profiles
        self._reference_hits = 0
        self._gen: torch.Generator | None = None  # made at the first permutation test (torch loads then)

    @classmethod
    def from_corpus(
        cls, doc_ids: Any, vectors: Any, *, n_clusters: int = 20, seed: int = 0, **kwargs: Any
    ) -> RetrievalClusterDetector:
        """Cluster the corpus vectors with seeded k-means and build the detector (see clusters_for_window)."""
        ids = as_ids(doc_ids, "doc_ids", min_rows=1)
        vec = as_matrix(vectors, "vectors", min_rows=2)
        if len(ids) != len(vec):
            raise MonitorInputError(f"vectors: {len(vec)} rows for {len(ids)} doc_ids; pass one vector per id")
        return cls(ids, cluster_corpus(vec, n_clusters=n_clusters, seed=seed), seed=seed, **kwargs)

    @property
    def assignment(self) -> Mapping[Any, int]:
        return frozen(self._assignment)

    def labels_of(self, top1_ids: Any) -> np.ndarray:
        """Cluster label per id; ``UNKNOWN`` (-1) for ids outside the corpus assignment."""
        ids = as_ids(top1_ids, "top1_ids", min_rows=0)
        get = self._assignment.get
        return np.fromiter((get(i, UNKNOWN) for i in ids.tolist()), dtype=np.int64, count=len(ids))

    def _profiles(self, top_ids: Any, name: str) -> tuple[np.ndarray, int]:
        """Per-query cluster shares of its hits, and the most hits any query contributed."""
        rows = as_top_ids(top_ids, name, min_rows=self.min_rows)
        hits = [r[: self.top_k] for r in rows]
        lengths = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
        get = self._assignment.get
        # Last column holds unknown ids; each query with hits weighs 1 in total, spread evenly over them.
        labels = np.fromiter((get(h, UNKNOWN) for r in hits for h in r), dtype=np.int64, count=int(lengths.sum()))
        labels[labels == UNKNOWN] = self.n_clusters
        query = np.repeat(np.arange(len(hits)), lengths)
        out = np.zeros((len(rows), self.n_clusters + 1))
        np.add.at(out, (query, labels), 1.0 / lengths[query])
        return out, min(self.top_k, int(lengths.max()))

    def reference_size(self) -> int:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        return len(self._reference)

    def fit(self, reference_top_ids: Any) -> Self:
        self._reference, self._reference_hits = self._profiles(reference_top_ids, "reference_top_ids")
        self._gen = None
        return self

    def _chi_square(self, ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float, dict[str, Any]]:
        table = np.stack([ref_counts, cur_counts])
        table = table[:, table.sum(axis=0) > 0]
        merged, n_merged = _merge_sparse(table, self.min_expected)
        if merged.shape[1] < 2:
            return 0.0, 1.0, {"dof": 0, "bins_tested": int(merged.shape[1]), "bins_merged": n_merged}
        lambda_ = "log-likelihood" if self.statistic == "g" else "pearson"
        value, p, dof, _ = chi2_contingency(merged, correction=False, lambda_=lambda_)
        return float(value), float(p), {"dof": int(dof), "bins_tested": int(merged.shape[1]), "bins_merged": n_merged}

    def _split_stats(self, ref: np.ndarray, cur: np.ndarray, assigned: torch.Tensor) -> tuple[np.ndarray, int]:
        import torch

        from . import permutation

        both = np.concatenate([ref, cur])
        keep = both.sum(axis=0) > 0
        # float64: equal statistics of different splits (summed in another order) must stay equal within the
        # p-value's tie tolerance; a block of 128 splits x 40,000 rows is 41 MB.
        pooled = torch.from_numpy(both[:, keep])
        share = pooled.mean(dim=0)
        total = pooled.sum(dim=0)
        n_ref, n = len(ref), len(pooled)
        out = []
        for block in permutation.blocks(assigned):
            # The reference side's profile sums; the difference of the two mean profiles follows from the total.
            ref_sum = block.to(pooled.dtype) @ pooled
            diff = ref_sum / n_ref - (total - ref_sum) / (n - n_ref)
            # Scaled by the pooled share like Pearson's statistic, so a change in a rare cluster counts as much.
            out.append((diff * diff / share).sum(dim=1) * (n_ref * (n - n_ref) / n))
        return torch.cat(out).numpy(), int(keep.sum())

    def split_statistics(self, current_top_ids: Any, assigned: torch.Tensor) -> np.ndarray:
        """The chi-square distance of mean top-k profiles for every split ``assigned`` marks (the shared null of
        :class:`monitors.Page`), in blocks of splits so memory stays bounded."""
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        cur, _ = self._profiles(current_top_ids, "current_top_ids")
        return self._split_stats(self._reference, cur, assigned)[0]

    def _permutation(self, ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, dict[str, Any]]:
        import torch

        from . import permutation

        if self._gen is None:
            self._gen = torch.Generator().manual_seed(self.seed)
        assigned = permutation.assignments(len(ref), len(cur), self.n_permutations, self._gen)
        stats, bins = self._split_stats(ref, cur, assigned)
        return float(stats[0]), permutation.p_value(stats), {"dof": bins - 1, "bins_tested": bins, "bins_merged": 0}

    def check(self, current_top_ids: Any) -> DriftResult:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        ref = self._reference
        cur, cur_hits = self._profiles(current_top_ids, "current_top_ids")
        # One hit per query on both sides: the counts are independent draws, so the contingency test is valid.
        hits_one = max(self._reference_hits, cur_hits) == 1
        if hits_one:
            stat, p, extra = self._chi_square(ref.sum(axis=0), cur.sum(axis=0))
            test = f"{'G-test' if self.statistic == 'g' else 'chi-square'} (2 x K contingency, top-1)"
        else:
            stat, p, extra = self._permutation(ref, cur)
            test = f"permutation chi-square distance of top-{self.top_k} cluster profiles"
        share_cur = cur[:, :-1].mean(axis=0)
        share_ref = ref[:, :-1].mean(axis=0)
        delta = share_cur - share_ref
        top = np.argsort(-np.abs(delta))[:5]
        return DriftResult(
            method=self.name,
            statistic=stat,
            p_value=p,
            threshold=None,
            drift=p <= self.alpha,
            alpha=self.alpha,
            n_reference=len(ref),
            n_current=len(cur),
            params=frozen(
                {
                    "n_clusters": self.n_clusters,
                    "min_expected": self.min_expected,
                    "test": test,
                    "statistic": self.statistic,
                    "min_rows": self.min_rows,
                    "top_k": self.top_k,
                    "n_permutations": None if hits_one else self.n_permutations,
                }
            ),
            details=frozen(
                {
                    **extra,
                    "unknown_reference": float(ref[:, -1].sum()),
                    "unknown_current": float(cur[:, -1].sum()),
                    "largest_share_changes": tuple((int(c), float(share_ref[c]), float(share_cur[c])) for c in top),
                }
            ),
        )
