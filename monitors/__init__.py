"""Embedding drift and out-of-distribution statistics: numpy arrays in, frozen results out.

Every window detector follows one contract (:class:`Detector`): ``fit(reference)`` then
``check(current) -> DriftResult``. Bad input raises :class:`MonitorInputError`; ``check`` before ``fit`` raises
:class:`NotFittedError`. This package never imports ``embguard`` or ``retrain``; Evidently is imported only when
an Evidently detector or report is used.
"""

from __future__ import annotations

from .base import Detector
from .classifier import ClassifierDetector
from .errors import MissingDependencyError, MonitorError, MonitorInputError, NotFittedError
from .evidently_methods import EvidentlyDetector
from .explain import ClusterExplanation, explain_ood
from .mmd import ExactMMDDetector, MMDDetector
from .ood import KNNOODDetector, OODResult
from .report import build_report, report_html, save_report
from .result import DriftResult
from .retrieval import UNKNOWN, RetrievalClusterDetector, cluster_corpus
from .sequential import SequentialDetector
from .top1 import Top1SimilarityDetector, top1_similarity

__all__ = [
    "ClassifierDetector",
    "ClusterExplanation",
    "Detector",
    "DriftResult",
    "EvidentlyDetector",
    "ExactMMDDetector",
    "KNNOODDetector",
    "MMDDetector",
    "MissingDependencyError",
    "MonitorError",
    "MonitorInputError",
    "NotFittedError",
    "OODResult",
    "RetrievalClusterDetector",
    "SequentialDetector",
    "Top1SimilarityDetector",
    "UNKNOWN",
    "build_report",
    "cluster_corpus",
    "explain_ood",
    "report_html",
    "save_report",
    "top1_similarity",
]
