"""Which collection serves an alias, and which model made that collection's vectors: the client's caches.

A concrete collection's model never changes (a new model means a new collection), so model ids and loaded
models are cached for the process's life. Alias lookups are cached for ``milvus.alias_cache_s`` only: after a
switch a cached lookup still pairs the old collection with its own model, and the old collection keeps serving
(and getting dual writes) for ``swap.grace_s``, which config keeps at least as long as the cache. A cached
search is therefore never wrong, only up to ``alias_cache_s`` late.
"""

from __future__ import annotations

import threading
import time

from embguard.config.settings import Settings
from embguard.errors import MissingModelId
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models import loading as models


class Resolver:
    """Thread-safe alias -> collection -> model resolution over one Milvus connection."""

    def __init__(self, settings: Settings, milvus: Milvus):
        self._settings = settings
        self._milvus = milvus
        self._lock = threading.Lock()
        self._models: dict[str, models.EmbeddingModel] = {}
        self._collection_models: dict[str, str] = {}
        self._aliases: dict[str, tuple[str, float]] = {}  # alias -> (collection, resolved at, monotonic)

    def resolve(self, alias: str) -> str:
        """The collection behind ``alias``, reused for ``milvus.alias_cache_s`` (a lookup is a round trip)."""
        ttl = self._settings.milvus.alias_cache_s
        now = time.monotonic()
        with self._lock:
            hit = self._aliases.get(alias)
        if hit is not None and now - hit[1] < ttl:
            return hit[0]
        collection = self._milvus.resolve(alias)
        if ttl:
            with self._lock:
                self._aliases[alias] = (collection, now)
        return collection

    def remember(self, collection: str, model_id: str) -> None:
        """Record a model id read elsewhere (the write path reads a collection's properties fresh anyway)."""
        with self._lock:
            self._collection_models.setdefault(collection, model_id)

    def model_id_of(self, collection: str) -> str:
        """The model id a concrete collection records."""
        with self._lock:
            cached = self._collection_models.get(collection)
        if cached:
            return cached
        model_id = self._milvus.properties(collection).get(MODEL_ID_PROPERTY)
        if not model_id:
            raise MissingModelId(
                f"collection {collection!r} records no {MODEL_ID_PROPERTY} property, so embguard cannot tell "
                f"which model made its vectors; run `embguard adopt {collection} --model default` (or the "
                "model that did) once"
            )
        self.remember(collection, model_id)
        return model_id

    def model_for(self, collection: str) -> models.EmbeddingModel:
        """The loaded model that embeds queries and documents for ``collection``."""
        model_id = self.model_id_of(collection)
        with self._lock:
            cached = self._models.get(model_id)
        if cached is not None:
            return cached
        m = models.load_by_id(model_id, self._settings.model.store_dir, self._settings.model.device)
        with self._lock:
            self._models[model_id] = m
        return m
