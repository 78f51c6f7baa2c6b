"""embguard: embedding drift monitoring, retraining and hot-swapping for Milvus.

The public API is small on purpose; heavy modules (torch, pymilvus) load only when first used.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version
from typing import TYPE_CHECKING, Any

from .config import Settings
from .config import load as load_config
from .errors import (
    AdoptError,
    AlertConfigError,
    AlertError,
    CollectionExists,
    ConfigError,
    EmbguardError,
    FeedbackError,
    InvalidInput,
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
    "Client": ("embguard.client", "Client"),
    "SearchResponse": ("embguard.client", "SearchResponse"),
    "Milvus": ("embguard.milvus", "Milvus"),
    "LiteServer": ("embguard.lite", "LiteServer"),
    "load_model": ("embguard.model", "load"),
    "EmbeddingModel": ("embguard.model", "EmbeddingModel"),
}

if TYPE_CHECKING:  # type checkers and IDEs see the real objects behind the lazy names
    from .client import Client, SearchResponse
    from .lite import LiteServer
    from .milvus import Milvus
    from .model import EmbeddingModel
    from .model import load as load_model

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
    "InvalidInput",
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
