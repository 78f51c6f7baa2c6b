"""Explanations for a drifted window: which groups of out-of-distribution queries are new.

The flagged queries are clustered with seeded k-means (``k = min(max_clusters, n_flagged // min_cluster_size)``),
and each cluster is described by its size, share of the window, how far its centroid is from the reference and
the ids of its most central members. The daemon looks up texts for those ids; this module stays pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._torch import normalise, topk_cosine
from ._validate import as_ids, as_matrix, check_int
from .errors import MonitorInputError
from .ood import KNNOODDetector, OODResult


@dataclass(frozen=True)
class ClusterExplanation:
    """One group of OOD queries.

    ``centroid_distance`` is ``1 - cos`` between the cluster's mean direction and its nearest reference vector
    (0 = sits on known data); ``mean_score`` is the members' mean kNN OOD score. ``representative_ids`` are the
    members closest to the centroid, most central first.
    """

    size: int
    share: float
    centroid_distance: float
    mean_score: float
    representative_ids: tuple[Any, ...]


def explain_ood(
    detector: KNNOODDetector,
    queries: Any,
    ids: Any,
    *,
    result: OODResult | None = None,
    max_clusters: int = 5,
    min_cluster_size: int = 5,
    n_representatives: int = 3,
    seed: int = 0,
) -> tuple[ClusterExplanation, ...]:
    """Cluster the queries ``detector`` flags as OOD and describe the clusters, largest first.

    ``ids`` holds one caller id per query row. Pass ``result`` (from ``detector.evaluate(queries)``) to reuse its
    flags. Returns an empty tuple when nothing is flagged.
    """
    from sklearn.cluster import KMeans

    q = as_matrix(queries, "queries", min_rows=1, dim=detector.index.shape[1])
    id_arr = as_ids(ids, "ids", min_rows=1)
    if len(id_arr) != len(q):
        raise MonitorInputError(f"ids: {len(id_arr)} ids for {len(q)} query rows; pass one id per query")
    max_clusters = check_int(max_clusters, "max_clusters", 1)
    min_cluster_size = check_int(min_cluster_size, "min_cluster_size", 1)
    n_representatives = check_int(n_representatives, "n_representatives", 1)
    res = result if result is not None else detector.evaluate(q)
    if len(res.flags) != len(q):
        raise MonitorInputError(
            f"result: has {len(res.flags)} flags for {len(q)} queries; pass the result of "
            "detector.evaluate(queries) for these same queries"
        )
    flagged = np.flatnonzero(res.flags)
    if flagged.size == 0:
        return ()
    unit = normalise(q[flagged])
    k = max(1, min(max_clusters, flagged.size // min_cluster_size))
    labels = (
        KMeans(n_clusters=k, n_init=3, random_state=seed).fit_predict(unit)
        if k > 1
        else np.zeros(flagged.size, dtype=np.int64)
    )
    out = []
    for c in range(k):
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        centroid = normalise(unit[members].mean(axis=0, keepdims=True))
        nearest_ref, _ = topk_cosine(centroid, detector.index, 1)
        central = members[np.argsort(-(unit[members] @ centroid[0]))[:n_representatives]]
        out.append(
            ClusterExplanation(
                size=int(members.size),
                share=float(members.size / len(q)),
                centroid_distance=float(1.0 - nearest_ref[0, 0]),
                mean_score=float(res.scores[flagged[members]].mean()),
                representative_ids=tuple(id_arr[flagged[central]].tolist()),
            )
        )
    return tuple(sorted(out, key=lambda e: (-e.size, -e.centroid_distance)))
