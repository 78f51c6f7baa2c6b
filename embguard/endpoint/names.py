"""What a request's ``model`` names: a collection alias (the model that collection's vectors were made with,
followed across approve and rollback) or a model id from the model store (one fixed model).

An alias is resolved through the client's :class:`~embguard.client.resolver.Resolver`, the same cache the
Client uses: the alias' current collection (looked up again after ``milvus.alias_cache_s``) and the model id it
records. So after ``embguard retrain --approve`` or ``rollback`` the endpoint serves the new collection's model
within ``alias_cache_s``, and the old collection keeps serving for ``swap.grace_s``, which config keeps at least
as long: a vector from before the switch still finds the collection it belongs to.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from embguard.client.resolver import Resolver
from embguard.config.settings import Settings
from embguard.errors import EmbguardError, MilvusError, MilvusUnavailable, ModelNotFound
from embguard.milvus.milvus import Milvus
from embguard.models import loading as models


@dataclass(frozen=True)
class Resolved:
    model: models.EmbeddingModel
    alias: str | None  # the collection alias the name was, or None for a model id
    collection: str | None  # the concrete collection behind it


class ModelNames:
    """Thread-safe ``model`` name -> loaded model. Connects to Milvus on first need (a model id needs none)."""

    def __init__(self, settings: Settings, connect: Callable[[], Milvus]):
        self._settings = settings
        self._connect = connect
        self._lock = threading.Lock()  # the connection (held while connecting)
        self._models_lock = threading.Lock()  # models loaded by id: never waits on Milvus
        self._milvus: Milvus | None = None
        self._resolver: Resolver | None = None
        self._by_id: dict[str, models.EmbeddingModel] = {}

    def milvus(self) -> Milvus:
        with self._lock:
            if self._milvus is None:
                self._milvus = self._connect()
                self._resolver = Resolver(self._settings, self._milvus)
            return self._milvus

    def _resolver_(self) -> Resolver:
        self.milvus()
        assert self._resolver is not None
        return self._resolver

    def default(self) -> str:
        """The name TEI's ``/embed`` (which names no model) uses."""
        if self._settings.endpoint.default_model:
            return self._settings.endpoint.default_model
        names = [c.name for c in self._settings.collections]
        if len(names) == 1:
            return names[0]
        raise ModelNotFound(
            f"/embed names no model and {len(names)} collections are configured "
            f"({', '.join(names) or 'none'}); set endpoint.default_model, or call /embed?model=<alias>"
        )

    def listed(self) -> list[str]:
        """The names /v1/models lists: every configured collection."""
        return [c.name for c in self._settings.collections]

    def resolve(self, name: str) -> Resolved:
        if not isinstance(name, str) or not name.strip():
            raise ModelNotFound("`model` must name a collection alias or a model id; it was empty")
        if "@" in name:  # a model id (name@content-hash), as `embguard models list` prints them
            return Resolved(self._model_by_id(name), None, None)
        resolver = self._resolver_()
        try:
            collection = resolver.resolve(name)
        except MilvusUnavailable:
            raise
        except MilvusError as exc:
            known = self.listed()
            raise ModelNotFound(
                f"model {name!r:.80} is neither a collection alias in Milvus nor a model id ({exc}); "
                f"use one of: {', '.join(known) if known else 'a [[collections]] name or a model id'}"
            ) from None
        return Resolved(resolver.model_for(collection), name, collection)

    def _model_by_id(self, model_id: str) -> models.EmbeddingModel:
        with self._models_lock:
            cached = self._by_id.get(model_id)
        if cached is not None:
            return cached
        try:
            m = models.load_by_id(model_id, self._settings.model.store_dir, self._settings.model.device)
        except EmbguardError as exc:
            raise ModelNotFound(f"model {model_id!r:.120} is not in the model store: {exc}") from None
        with self._models_lock:
            return self._by_id.setdefault(model_id, m)

    def close(self) -> None:
        with self._lock:
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None
