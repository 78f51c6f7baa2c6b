"""Record which model made a collection's vectors, for collections embguard did not create."""

from __future__ import annotations

from embguard.config.settings import Settings
from embguard.errors import AdoptError, MissingModelId
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models import loading as models
from embguard.models.variant import split_model_id, with_variant


def adopt(settings: Settings, milvus: Milvus, name: str, model_spec: str, force: bool = False) -> str:
    """Set ``embguard.model_id`` on the collection behind ``name``; checks the vector dimension matches."""
    collection = milvus.resolve(name)
    current = milvus.properties(collection).get(MODEL_ID_PROPERTY)
    # As [model] backend/quantize run it: an id names the encoder variant too (models.variant).
    model_id = with_variant(models.model_id_of(model_spec, settings.model.store_dir), settings.model.variant)
    if current and current != model_id and not force:
        why = f"pass --force to replace it with {model_id!r} only if its vectors really came from that model"
        if split_model_id(current)[0] == split_model_id(model_id)[0]:  # the same weights, another encoder variant
            why = (
                f"its vectors came from the {split_model_id(current)[1] or 'torch'!r} encoder variant, not the "
                f"{settings.model.variant or 'torch'!r} one that [model] backend/quantize name now, and queries from "
                "another variant would be searched against them: leave it as it is (embguard encodes for a "
                "collection with the variant it records, whatever the settings say)"
            )
        raise AdoptError(f"collection {collection!r} already records model {current!r}; {why}")
    spec = settings.find_collection(name)
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
    # Every variant of the weights makes vectors of the same dimension: the torch load needs no export.
    want = models.load(model_spec, settings.model.store_dir, settings.model.device).dimension
    if dim != want:
        raise AdoptError(
            f"collection {collection!r} stores {dim}-d vectors but model {model_id!r} makes {want}-d "
            "ones; it cannot have made them"
        )
    milvus.set_properties(collection, {MODEL_ID_PROPERTY: model_id})
    return model_id


def require_model(milvus: Milvus, name: str, doing: str) -> str:
    """The model id recorded on the collection ``name`` serves. A collection whose vectors the application computes
    (watched through `embguard proxy`, no embguard.model_id) is refused in one line that says what to do: embguard
    has no model to fine-tune or to re-embed its documents with."""
    collection = milvus.resolve(name)
    model_id = milvus.properties(collection).get(MODEL_ID_PROPERTY)
    if not model_id:
        raise MissingModelId(
            f"cannot {doing} {name}: its vectors come from the application ({collection!r} records no "
            f"{MODEL_ID_PROPERTY}), so embguard has no model to train or re-embed with; register the application's "
            f"model with `embguard models import PATH --collection {name}` and record it with "
            f"`embguard adopt --collection {name} --model VERSION` first"
        )
    return model_id
