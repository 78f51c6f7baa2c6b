"""embguard: embedding drift monitoring, retraining and hot-swapping for Milvus.

The public API is small on purpose; heavy modules (torch, pymilvus) load only when first used.

One subpackage per concern. Imports flow down only (import-linter checks it: ``make lint`` and
tests/unit/test_architecture_layers.py), siblings on one line never import each other, and nothing imports in a cycle::

    cli                      the `embguard` command: click, and the plain functions behind each command
    demo                     `embguard demo`: the whole loop offline, simulated traffic
    daemon | proxy |         `embguard serve`: jobs, scheduler, pager, retrain policy, metrics, status |
      endpoint               `embguard proxy`: the Milvus wire sidecar that taps unchanged applications |
                             `embguard endpoint`: their OpenAI/TEI embedding service, switched with the alias
    swap | training | alerts hot-swap and rollback | candidates, recipes, gate, labels | webhook delivery
    checks                   reference windows, sampled windows, each collection's monitors, check reports
    client                   embguard.Client: inputs, the query tap, feedback, caches, retention
    milvus                   the one pymilvus home: connection, schemas, rows, filters, Lite, managed collections
    models                   the one sentence-transformers home: loading, the versioned registry
    config | http            settings (file + EMBGUARD_* env, frozen), secrets, the state directory |
                             /metrics, /healthz, /readyz of the daemon and the proxy
    errors                   the one exception tree

The pure packages ``monitors`` (statistics) and ``retrain`` (training, evaluation) sit beside embguard and never
import it.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from typing import TYPE_CHECKING, Any

from embguard.config.loader import load as load_config
from embguard.config.settings import Settings
from embguard.errors import (
    AdoptError,
    AlertConfigError,
    AlertError,
    CollectionExists,
    ConfigError,
    EmbguardError,
    FeedbackError,
    InvalidFeedback,
    InvalidInput,
    InvalidLabels,
    LabelError,
    LiteServerError,
    MetricsServerError,
    MilvusError,
    MilvusUnavailable,
    MissingModelId,
    ModelError,
    ModelNotFound,
    NotEnoughFeedback,
    PinError,
    ReferenceCorrupt,
    ReferenceMismatch,
    ReferenceMissing,
    RegistryError,
    StateFileError,
    SwapError,
    SwapLocked,
    TrainingError,
    UnsupportedIndex,
    WindowError,
)

try:  # the one version source is pyproject.toml; `embguard --version` and the build_info metric read this
    __version__ = _distribution_version("embguard")
except PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0+unknown"

# Loaded on first use: these pull pymilvus (~0.5 s) or the model stack (torch, seconds); the rest is cheap.
_LAZY = {
    "Client": ("embguard.client.client", "Client"),
    "SearchResponse": ("embguard.client.client", "SearchResponse"),
    "Milvus": ("embguard.milvus.milvus", "Milvus"),
    "LiteServer": ("embguard.milvus.lite", "LiteServer"),
    "load_model": ("embguard.models.loading", "load"),
    "EmbeddingModel": ("embguard.models.loading", "EmbeddingModel"),
}

if TYPE_CHECKING:  # type checkers and IDEs see the real objects behind the lazy names
    from embguard.client.client import Client, SearchResponse
    from embguard.milvus.lite import LiteServer
    from embguard.milvus.milvus import Milvus
    from embguard.models.loading import EmbeddingModel
    from embguard.models.loading import load as load_model

__all__ = [
    "AdoptError",
    "AlertConfigError",
    "AlertError",
    "Client",
    "CollectionExists",
    "ConfigError",
    "EmbeddingModel",
    "EmbguardError",
    "FeedbackError",
    "InvalidFeedback",
    "InvalidInput",
    "InvalidLabels",
    "LabelError",
    "LiteServer",
    "LiteServerError",
    "MetricsServerError",
    "Milvus",
    "MilvusError",
    "MilvusUnavailable",
    "MissingModelId",
    "ModelError",
    "ModelNotFound",
    "NotEnoughFeedback",
    "PinError",
    "ReferenceCorrupt",
    "ReferenceMismatch",
    "ReferenceMissing",
    "RegistryError",
    "SearchResponse",
    "Settings",
    "StateFileError",
    "SwapError",
    "SwapLocked",
    "TrainingError",
    "UnsupportedIndex",
    "WindowError",
    "__version__",
    "load_config",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(import_module(module), attr)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module 'embguard' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
