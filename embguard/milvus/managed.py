"""Managed collections: what ``embguard collection create`` makes and ``embguard collection list`` shows.

A managed collection is served through an alias: ``NAME`` -> ``NAME__v0000``, a versioned collection with the
model's dimension and the ``embguard.model_id`` property. Everything embguard does later (the query tap's
model pairing, reindexing into ``NAME__v0002``, rollback) relies on those three, so they are made together,
and a failure half-way leaves nothing behind. ``embguard adopt`` covers collections made elsewhere.

Versioned names are ``NAME__v<NNNN>``, NNNN the model store version whose vectors the collection holds
(``v0000`` for a model outside the store's versions: the shipped default). The collection also records when
embguard created it (``embguard.created_at``), which is what lets `embguard gc` retire it later; collections
without it are never dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import CollectionExists, EmbguardError, InvalidInput, MilvusError, MilvusUnavailable, ModelNotFound
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import (
    CREATED_PROPERTY,
    FEEDBACK_COLLECTION,
    TAP_COLLECTION,
    collection_name,
    version_for_model,
)
from embguard.models import loading as models
from embguard.models.registry import ModelRegistry
from embguard.models.variant import with_variant


@dataclass(frozen=True)
class CollectionInfo:
    """One row of ``embguard collection list``: an alias (or a bare collection), what serves it, how much."""

    alias: str
    collection: str
    model_id: str
    rows: int
    dimension: int

    @property
    def managed(self) -> bool:
        return bool(self.alias) and bool(self.model_id)


def spec_for(settings: Settings, name: str, index_type: str | None = None) -> CollectionSettings:
    """The configured ``[[collections]]`` entry for ``name``, or the defaults; ``index_type`` overrides."""
    spec = settings.find_collection(name)
    try:
        spec = spec or CollectionSettings(name=name)
        return spec.model_validate({**spec.model_dump(), "index_type": index_type}) if index_type else spec
    except ValueError as exc:
        raise InvalidInput(f"collection {name!r}: {' '.join(str(exc).split())[:300]}") from None


def create(
    settings: Settings, milvus: Milvus, name: str, model_spec: str = "default", index_type: str | None = None
) -> CollectionInfo:
    """Create ``name__v<NNNN>`` for ``model_spec`` (its dimension, its id and creation time recorded) and the
    alias ``name``."""
    spec = spec_for(settings, name, index_type)
    milvus.check_index_type(spec.index_type)
    if _exists(milvus, name):
        raise CollectionExists(
            f"a collection or alias named {name!r} already exists on {milvus.uri}; pick another "
            f"name, or record its model with `embguard adopt {name} --model {model_spec}`"
        )
    model = _serving_model(settings, model_spec, name)
    target = collection_name(name, version_for_model(model.model_id))
    if milvus.has_collection(target):
        raise CollectionExists(
            f"collection {target!r} already exists on {milvus.uri} without the alias {name!r}; "
            f"serve it with `embguard adopt` after creating the alias, or drop it"
        )
    props = {MODEL_ID_PROPERTY: model.model_id, CREATED_PROPERTY: str(int(time.time()))}
    milvus.create_collection(spec, model.dimension, name=target, properties=props)
    try:
        milvus.create_alias(target, name)
    except EmbguardError:
        milvus.drop_collection(target)  # all or nothing: an unaliased copy would only confuse the next run
        raise
    return CollectionInfo(alias=name, collection=target, model_id=model.model_id, rows=0, dimension=model.dimension)


def _serving_model(settings: Settings, model_spec: str, alias: str) -> models.EmbeddingModel:
    """The model for a new collection, loadable by its id from every process: a model directory outside
    the store is registered into it first (as an ``active`` version), since a collection records only an id."""
    store = settings.model.store_dir
    variant = settings.model.variant
    model = models.load(model_spec, store, settings.model.device, variant)
    try:
        models.find_by_id(model.model_id, store)
    except ModelNotFound:
        _, path = models.resolve(model_spec, store)
        version = ModelRegistry(store).register(
            path, status="active", extra={"alias": alias, "imported_from": str(path)}
        )
        model = models.load_by_id(with_variant(version.model_id, variant), store, settings.model.device)
    return model


def list_collections(milvus: Milvus) -> list[CollectionInfo]:
    """Every served collection with its aliases, model and row count (embguard's bookkeeping left out)."""
    out: list[CollectionInfo] = []
    for collection in sorted(milvus.list_collections()):
        if collection == FEEDBACK_COLLECTION or collection.startswith(TAP_COLLECTION):
            continue
        model_id = milvus.properties(collection).get(MODEL_ID_PROPERTY, "")
        try:
            dim = milvus.vector_dimension(collection)
        except MilvusError:  # binary or sparse vectors: not something embguard embeds
            dim = 0
        rows = milvus.count(collection)
        for alias in milvus.aliases_of(collection) or [""]:
            out.append(CollectionInfo(alias=alias, collection=collection, model_id=model_id, rows=rows, dimension=dim))
    return out


def _exists(milvus: Milvus, name: str) -> bool:
    try:
        milvus.resolve(name)
    except MilvusUnavailable:
        raise
    except MilvusError:
        return False
    return True
