"""Record which model made a collection's vectors, for collections embguard did not create."""

from __future__ import annotations

from . import model as models
from .config import Settings
from .errors import AdoptError
from .milvus import MODEL_ID_PROPERTY, Milvus


def adopt(settings: Settings, milvus: Milvus, name: str, model_spec: str, force: bool = False) -> str:
    """Set ``embguard.model_id`` on the collection behind ``name``; checks the vector dimension matches."""
    collection = milvus.resolve(name)
    current = milvus.properties(collection).get(MODEL_ID_PROPERTY)
    model_id = models.model_id_of(model_spec, settings.model.store_dir)
    if current and current != model_id and not force:
        raise AdoptError(
            f"collection {collection!r} already records model {current!r}; pass --force to "
            f"replace it with {model_id!r} only if its vectors really came from that model"
        )
    spec = next((c for c in settings.collections if c.name == name), None)
    vector_field = spec.vector_field if spec else None
    fields = milvus.describe(collection).get("fields", [])
    vec = [
        f
        for f in fields
        if (vector_field is None and "dim" in (f.get("params") or {})) or f.get("name") == vector_field
    ]
    if not vec:
        raise AdoptError(
            f"collection {collection!r} has no vector field {vector_field!r}; set collections[].vector_field"
        )
    dim = int(vec[0]["params"]["dim"])
    want = models.load(model_spec, settings.model.store_dir, settings.model.device).dimension
    if dim != want:
        raise AdoptError(
            f"collection {collection!r} stores {dim}-d vectors but model {model_id!r} makes {want}-d "
            "ones; it cannot have made them"
        )
    milvus.set_properties(collection, {MODEL_ID_PROPERTY: model_id})
    return model_id
