"""What is new in a drifted window: groups of current queries whose neighbourhoods the reference does not share.

The same graph as :class:`~monitors.NeighbourDetector`: pool the reference and the window and link each row to its
``k`` nearest pooled rows. A current query from a topic the reference lacks has (nearly) only current neighbours;
one from a known topic has a mix. A current row is *new* when its count of current neighbours is improbable for a
row whose neighbours are drawn at random from the pool (binomial tail ``<= alpha``). New rows linked in the graph
form a cluster; clusters smaller than ``min_size`` are dropped (a lone query is no topic). Each cluster is named by
the terms of its queries' texts that most distinguish them from the rest of the window (TF-IDF), and its rows are
listed most typical first (nearest its centroid).

Why not the OOD detector's flags: a query far from the reference is not necessarily part of something new (the
tail of a known topic is far too), so OOD flags mix known and new topics; a neighbourhood made of window queries
only is what a new topic looks like (benchmarks/results/drift_real.md measures the precision on known labels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import binom

from ._torch import nearest_others, normalise
from ._validate import as_matrix, check_alpha, check_int
from .errors import MonitorInputError

_MAX_REFERENCE = 4000  # reference rows the graph uses at most (a seeded sample): the cost stays fixed


@dataclass(frozen=True)
class NewCluster:
    """One group of new queries: ``rows`` index the window (most typical first), ``share`` is its part of the
    window, ``purity`` the mean share of its members' neighbours that are window queries, ``distance`` ``1 - cos``
    from its mean direction to the nearest reference query, and ``terms`` the words that name it (when texts were
    given)."""

    size: int
    share: float
    purity: float
    distance: float
    rows: tuple[int, ...]
    terms: tuple[str, ...] = ()


def _terms(texts: list[str], members: np.ndarray, others: np.ndarray, n_terms: int) -> tuple[str, ...]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    if not any(t.strip() for t in texts):
        return ()
    try:
        tfidf = TfidfVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9+#.-]+\b")
        m = tfidf.fit_transform(texts)
    except ValueError:  # only stop words
        return ()
    inside = np.asarray(m[members].mean(axis=0)).ravel()
    outside = np.asarray(m[others].mean(axis=0)).ravel() if len(others) else 0.0
    score = inside - outside
    vocab = tfidf.get_feature_names_out()
    return tuple(str(vocab[i]) for i in np.argsort(-score)[:n_terms] if score[i] > 0)


def new_clusters(
    reference: Any,
    current: Any,
    *,
    texts: Any = None,
    k: int = 20,
    alpha: float = 0.01,
    min_size: int = 5,
    max_clusters: int = 5,
    n_terms: int = 4,
    seed: int = 0,
) -> tuple[NewCluster, ...]:
    """The window's new-topic clusters against ``reference``, largest first (empty when nothing is new)."""
    ref = normalise(as_matrix(reference, "reference", min_rows=2))
    cur = normalise(as_matrix(current, "current", min_rows=2, dim=ref.shape[1]))
    k, min_size = check_int(k, "k", 1), check_int(min_size, "min_size", 1)
    alpha = check_alpha(alpha)
    if len(ref) > _MAX_REFERENCE:
        ref = ref[np.sort(np.random.default_rng(seed).choice(len(ref), _MAX_REFERENCE, replace=False))]
    n_ref, n_cur = len(ref), len(cur)
    pooled = np.concatenate([ref, cur])
    k = min(k, len(pooled) - 1)
    nbrs = nearest_others(cur, pooled, k, n_ref + np.arange(n_cur))
    from_window = (nbrs >= n_ref).sum(axis=1)
    # A row's neighbours drawn at random from the pool are window rows with probability (n_cur - 1) / (n - 1).
    tail = binom.sf(from_window - 1, k, (n_cur - 1) / (n_ref + n_cur - 1))
    new = np.flatnonzero(tail <= alpha)
    if len(new) < min_size:
        return ()
    is_new = np.zeros(n_ref + n_cur, dtype=bool)
    is_new[n_ref + new] = True
    # Links between new rows (either direction) join them into one cluster.
    src = np.repeat(new, k)
    dst = nbrs[new].ravel()
    keep = is_new[dst]
    graph = coo_matrix((np.ones(keep.sum()), (src[keep], dst[keep] - n_ref)), shape=(n_cur, n_cur))
    _, label = connected_components(graph, directed=True, connection="weak")
    groups = sorted((np.intersect1d(np.flatnonzero(label == c), new) for c in np.unique(label[new])), key=len)[::-1]
    text_list = None if texts is None else ["" if t is None else str(t) for t in texts]
    if text_list is not None and len(text_list) != n_cur:
        raise MonitorInputError(f"texts: {len(text_list)} texts for {n_cur} window rows; pass one text per row")
    out = []
    for members in groups[:max_clusters]:
        if len(members) < min_size:
            break
        centre = cur[members].mean(axis=0)
        centre /= max(float(np.linalg.norm(centre)), 1e-12)
        typical = members[np.argsort(-(cur[members] @ centre), kind="stable")]
        terms: tuple[str, ...] = ()
        if text_list is not None:
            terms = _terms(text_list, members, np.setdiff1d(np.arange(n_cur), new), n_terms)
        out.append(
            NewCluster(
                size=len(members),
                share=len(members) / n_cur,
                purity=float(from_window[members].mean() / k),
                distance=float(1.0 - (ref @ centre).max()),
                rows=tuple(int(r) for r in typical),
                terms=terms,
            )
        )
    return tuple(out)
