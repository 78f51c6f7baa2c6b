"""retrain: pure logic to turn feedback into a better embedding model, and to prove it is better.

No Milvus, no CLI, no daemon here (embguard wires those); everything talks to the outside through the
small protocols in ``retrain.protocols``. sentence-transformers is imported lazily (``retrain.finetune``),
so importing this package is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .adapter import Adapter, AdapterConfig, apply_adapter, load_adapter, train_adapter
from .bootstrap import Interval, bootstrap_mean, paired_difference
from .config import RESULT_FILE, TrainConfig, TrainData, TrainResult, ValidationSet
from .drift_selection import NO_CLUSTER, DriftSelection, DriftSignals, select_drift
from .errors import (
    ConfigError,
    DataError,
    LabelValidationError,
    LeakageError,
    ModelDirError,
    RetrainError,
    TrainingFailed,
)
from .evaluate import PerQueryScores, evaluate_embeddings, rank_by_cosine, score_rankings
from .gate import GateConfig, GateVerdict, decide
from .labels import validate_labels
from .metrics import mrr_at_k, ndcg_at_k, recall_at_k
from .negatives import MiningConfig, mine_hard_negatives
from .pairs import (
    MAX_PAIR_WEIGHT,
    SOURCES,
    FeedbackRecord,
    Pair,
    TrainingPairs,
    build_pairs,
    normalize_query,
    with_explicit_negatives,
)
from .position import PositionBias, click_weight, examination_propensity
from .protocols import Encoder, Retriever
from .pseudo import pseudo_pairs, pseudo_query
from .retrieval import ExactRetriever
from .runner import run_training_subprocess
from .selection import (
    DiversitySelection,
    MarginSelection,
    MissSelection,
    MixedSelection,
    NoveltySelection,
    Pool,
    RandomSelection,
    default_strategy,
    k_center_greedy,
)
from .split import QuerySplit, assert_disjoint, split_pairs, split_queries, split_queries_stratified

if TYPE_CHECKING:
    from .finetune import Progress, encode, train


def __getattr__(name: str) -> Any:
    # The heavy training stack loads only when a caller actually trains or encodes.
    if name in {"train", "encode", "Progress"}:
        from . import finetune as _train

        return getattr(_train, name)
    raise AttributeError(f"module 'retrain' has no attribute {name!r}")


__all__ = [
    "Adapter",
    "AdapterConfig",
    "ConfigError",
    "DataError",
    "DiversitySelection",
    "DriftSelection",
    "DriftSignals",
    "NO_CLUSTER",
    "Encoder",
    "ExactRetriever",
    "FeedbackRecord",
    "GateConfig",
    "GateVerdict",
    "Interval",
    "LabelValidationError",
    "LeakageError",
    "MAX_PAIR_WEIGHT",
    "MarginSelection",
    "MiningConfig",
    "MissSelection",
    "MixedSelection",
    "ModelDirError",
    "NoveltySelection",
    "Pair",
    "PerQueryScores",
    "PositionBias",
    "Pool",
    "Progress",
    "QuerySplit",
    "RESULT_FILE",
    "RandomSelection",
    "RetrainError",
    "Retriever",
    "SOURCES",
    "TrainConfig",
    "TrainData",
    "TrainResult",
    "TrainingFailed",
    "TrainingPairs",
    "ValidationSet",
    "apply_adapter",
    "assert_disjoint",
    "bootstrap_mean",
    "build_pairs",
    "click_weight",
    "decide",
    "default_strategy",
    "encode",
    "evaluate_embeddings",
    "examination_propensity",
    "k_center_greedy",
    "load_adapter",
    "mine_hard_negatives",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_difference",
    "pseudo_pairs",
    "pseudo_query",
    "rank_by_cosine",
    "recall_at_k",
    "run_training_subprocess",
    "score_rankings",
    "select_drift",
    "split_pairs",
    "normalize_query",
    "split_queries",
    "split_queries_stratified",
    "train",
    "train_adapter",
    "validate_labels",
    "with_explicit_negatives",
]
