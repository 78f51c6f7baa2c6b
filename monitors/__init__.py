"""Embedding drift and out-of-distribution statistics: numpy arrays in, frozen results out.

Every window detector follows one contract (:class:`Detector`): ``fit(reference)`` then
``check(current) -> DriftResult``, and declares its ``input_kind`` (vectors, top-k ids, similarities).
:class:`CombinedDetector` / :func:`combine` turn several monitors into one decision with a stated family-wise
error rate. Bad input raises :class:`MonitorInputError`; ``check`` before ``fit`` raises
:class:`NotFittedError`. This package never imports ``embguard`` or ``retrain``; Evidently is imported only when
an Evidently detector or report is used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from .base import INPUT_KINDS, Detector, InputKind
from .combine import CombinedDetector, cauchy_p_value, combine, holm_adjusted
from .errors import MissingDependencyError, MonitorError, MonitorInputError, NotFittedError
from .evidently_methods import EvidentlyDetector
from .report import build_report, report_html, save_report
from .result import DriftResult
from .retrieval import UNKNOWN, RetrievalClusterDetector, cluster_corpus, clusters_for_window
from .sequential import SequentialDetector

if TYPE_CHECKING:
    from .classifier import ClassifierDetector
    from .explain import ClusterExplanation, explain_ood
    from .mmd import ExactMMDDetector, MMDDetector
    from .neighbours import NeighbourDetector
    from .novelty import NewCluster, new_clusters
    from .ood import KNNOODDetector, OODResult
    from .page import Page
    from .top1 import Top1SimilarityDetector, top1_similarity

# These modules import torch (~1.5 s); they load on first use so `import monitors` stays cheap for callers
# that only need the other detectors, results or errors.
_TORCH_BACKED = {
    "ClassifierDetector": "classifier",
    "ClusterExplanation": "explain",
    "explain_ood": "explain",
    "ExactMMDDetector": "mmd",
    "MMDDetector": "mmd",
    "KNNOODDetector": "ood",
    "NeighbourDetector": "neighbours",
    "NewCluster": "novelty",
    "new_clusters": "novelty",
    "Page": "page",
    "OODResult": "ood",
    "Top1SimilarityDetector": "top1",
    "top1_similarity": "top1",
}

__all__ = [
    "ClassifierDetector",
    "ClusterExplanation",
    "CombinedDetector",
    "Detector",
    "DriftResult",
    "EvidentlyDetector",
    "INPUT_KINDS",
    "InputKind",
    "ExactMMDDetector",
    "KNNOODDetector",
    "MMDDetector",
    "MissingDependencyError",
    "MonitorError",
    "MonitorInputError",
    "NeighbourDetector",
    "NewCluster",
    "NotFittedError",
    "OODResult",
    "Page",
    "RetrievalClusterDetector",
    "SequentialDetector",
    "Top1SimilarityDetector",
    "UNKNOWN",
    "build_report",
    "cauchy_p_value",
    "cluster_corpus",
    "clusters_for_window",
    "combine",
    "explain_ood",
    "holm_adjusted",
    "new_clusters",
    "report_html",
    "save_report",
    "top1_similarity",
]


def __getattr__(name: str) -> Any:
    if name in _TORCH_BACKED:
        value = getattr(import_module(f".{_TORCH_BACKED[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'monitors' has no attribute {name!r}")
