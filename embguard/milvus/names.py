"""The names embguard gives to Milvus collections: an alias's versioned collections and embguard's own.

Every collection embguard makes for an alias is ``<alias>__v<NNNN>``, NNNN the model store version whose vectors
it holds (``v0000``: a model that is not a store version, such as the shipped default). Names of earlier
releases (``docs__v1`` from `collection create`) are still recognised as versioned names.
"""

from __future__ import annotations

import json
import re

# The query tap and the feedback log (384-d tap; other dimensions get ``embguard_queries_d<dim>``).
TAP_COLLECTION = "embguard_queries"
FEEDBACK_COLLECTION = "embguard_feedback"

VERSION_PREFIX = "__v"
BASE_VERSION = "v0000"
CREATED_PROPERTY = "embguard.created_at"  # set on every collection embguard creates: gc drops only those
# Set by approve and rollback on the collection they switch an alias to (unix seconds): writers that embedded
# with the other model just before may still write here for swap.grace_s (the proxy repeats their writes).
SWITCHED_PROPERTY = "embguard.switched_at"
# Set by approve and rollback on both collections of a switch: {"until": unix seconds, "aliases": {model id: a
# routing alias as long as the application's}}. Until then the proxy sends each search to the collection of the
# model that made its vector (embguard.proxy.router).
ROUTES_PROPERTY = "embguard.routes"
# Set on the serving collection while a swap builds (or after it, for rollback) another: every write goes to both.
DUAL_WRITE_PROPERTY = "embguard.dual_write_to"
# A collection whose vectors the application computes itself (watched through `embguard proxy`, no model
# embguard can load) records no embguard.model_id; its windows and tap rows carry this id instead.
APP_MODEL_PREFIX = "app:"
_VERSIONED = re.compile(r"__v\d+")
_MODEL_VERSION = re.compile(r"v\d{4,}")


def app_model_id(collection: str) -> str:
    """The model id of vectors made by the application, for ``collection`` (which records no model)."""
    return f"{APP_MODEL_PREFIX}{collection}"


def collection_name(alias: str, version: str) -> str:
    """The versioned collection of ``alias`` that holds model ``version``'s vectors: ``docs__v0002``."""
    return f"{alias}__{version}"


def version_for_model(model_id: str) -> str:
    """The version part of a collection name for ``model_id``: its store version (``v0002@...``), else v0000."""
    version = model_id.split("@", 1)[0]
    return version if _MODEL_VERSION.fullmatch(version) else BASE_VERSION


def is_versioned(alias: str, name: str) -> bool:
    """Whether ``name`` is one of ``alias``'s versioned collections by embguard's scheme (old ``__v1`` too)."""
    return name.startswith(alias) and _VERSIONED.fullmatch(name[len(alias) :]) is not None


def routes_value(until: float, aliases: dict[str, str]) -> str:
    """The ``embguard.routes`` property: routing until ``until`` (unix seconds), ``{model id: routing alias}``."""
    return json.dumps({"until": until, "aliases": aliases}, separators=(",", ":"))


def read_routes(properties: dict[str, str]) -> tuple[float, dict[str, str]] | None:
    """``(until, {model id: routing alias})`` from a collection's properties, if a switch recorded them."""
    raw = properties.get(ROUTES_PROPERTY)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return float(data["until"]), {str(k): str(v) for k, v in dict(data["aliases"]).items()}
    except (ValueError, KeyError, TypeError):
        return None
