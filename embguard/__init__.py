"""embguard: embedding drift monitoring, retraining and hot-swapping for Milvus.

The public API is small on purpose; heavy modules (torch, pymilvus) load only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .config import Settings
from .config import load as load_config
from .errors import (
    ConfigError,
    EmbguardError,
    LiteServerError,
    MilvusError,
    MilvusUnavailable,
    ModelError,
    ModelNotFound,
    UnsupportedIndex,
)

__version__ = "0.1.0"

_LAZY = {
    "Client": ("embguard.client", "Client"),
    "SearchResponse": ("embguard.client", "SearchResponse"),
    "FeedbackError": ("embguard.client", "FeedbackError"),
    "InvalidInput": ("embguard.errors", "InvalidInput"),
    "Milvus": ("embguard.milvus", "Milvus"),
    "LiteServer": ("embguard.lite", "LiteServer"),
    "load_model": ("embguard.model", "load"),
    "EmbeddingModel": ("embguard.model", "EmbeddingModel"),
}

__all__ = [
    "ConfigError", "EmbguardError", "LiteServerError", "MilvusError", "MilvusUnavailable", "ModelError",
    "ModelNotFound", "Settings", "UnsupportedIndex", "load_config", "__version__", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'embguard' has no attribute {name!r}")
