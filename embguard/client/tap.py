"""The query tap and the feedback log: what the application-side client records for the sidecar.

Milvus keeps no log of the searches it serves, so the client records a sample of them into bookkeeping
collections in the same Milvus, where a sidecar in another process can read them. This module owns those
collections: their names and schemas, the rows, and reading them back; the background writer that fills
the tap is :mod:`embguard.client.tapwriter`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embguard.errors import MilvusError
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION

log = logging.getLogger(__name__)

# Annotators' labels (embguard label import) go into the feedback collection under query ids with this prefix.
LABEL_QUERY_PREFIX = "label:"
SIGNALS = ("click", "positive", "negative")
_MAX_TEXT = 8192
MAX_TAPPED_HITS = 100


def tap_collection_name(dim: int, base_dim: int = 384) -> str:
    """``embguard_queries`` for the default model's dimension; other dimensions get their own collection,
    because a Milvus vector field has one fixed dimension."""
    return TAP_COLLECTION if dim == base_dim else f"{TAP_COLLECTION}_d{dim}"


TAP_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("query_id", "varchar", 64),
    ("ts_ms", "int64", 0),
    ("alias", "varchar", 255),
    ("collection", "varchar", 255),
    ("model_id", "varchar", 255),
    ("text", "varchar", _MAX_TEXT),
    ("text_hash", "varchar", 64),
    # One JSON *object* {"ids": [...], "scores": [...]}: a real Milvus server refuses a top-level JSON array,
    # and a JSON object keeps the ids' own type (INT64 or VARCHAR keys) without a second schema.
    ("hits", "json", 0),
)
TAP_HEALTH_PROPERTY = "embguard.tap_health"
FEEDBACK_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("feedback_id", "varchar", 64),
    ("query_id", "varchar", 64),
    ("doc_id", "varchar", 512),
    ("alias", "varchar", 255),
    ("collection", "varchar", 255),
    ("model_id", "varchar", 255),
    ("signal", "varchar", 16),
    ("weight", "float", 0),
    ("ts_ms", "int64", 0),
    ("query_text", "varchar", _MAX_TEXT),
)


def ensure_tap_collection(milvus: Milvus, dim: int) -> str:
    name = tap_collection_name(dim)
    if not milvus.has_collection(name):
        try:
            milvus.create_table(
                name, TAP_FIELDS, primary="query_id", vector=("vector", dim), properties={"embguard.kind": "query_tap"}
            )
        except MilvusError:
            if not milvus.has_collection(name):  # another process created it first: fine
                raise
    return name


def legacy_layout(milvus: Milvus, tap: str) -> bool:
    """True for a tap collection made by embguard 0.1 (``top_ids``/``top_scores`` JSON arrays; Lite only)."""
    return any(f["name"] == "top_ids" for f in milvus.schema_fields(tap))


def read_tap(milvus: Milvus, tap: str, filter: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Tap rows matching ``filter`` with ``top_ids``/``top_scores`` lists, whatever the stored layout."""
    if not milvus.has_collection(tap):
        return []
    legacy = legacy_layout(milvus, tap)
    wanted = [f for f in fields if f not in ("top_ids", "top_scores")]
    if "top_ids" in fields or "top_scores" in fields:
        wanted += ["top_ids", "top_scores"] if legacy else ["hits"]
    rows = [r for batch in milvus.iterate(tap, wanted, filter=filter) for r in batch]
    if not legacy:
        for r in rows:
            hits = r.pop("hits", None) or {}
            r["top_ids"], r["top_scores"] = list(hits.get("ids") or []), list(hits.get("scores") or [])
    return rows


def legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    hits = row.pop("hits")
    return {**row, "top_ids": hits["ids"], "top_scores": hits["scores"]}


def ensure_feedback_collection(milvus: Milvus) -> str:
    if not milvus.has_collection(FEEDBACK_COLLECTION):
        try:
            # The vector is a placeholder: Milvus requires one vector field per collection.
            milvus.create_table(
                FEEDBACK_COLLECTION,
                FEEDBACK_FIELDS,
                primary="feedback_id",
                vector=("_v", 2),
                properties={"embguard.kind": "feedback"},
            )
        except MilvusError:
            if not milvus.has_collection(FEEDBACK_COLLECTION):
                raise
    return FEEDBACK_COLLECTION


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class TapHealth:
    """The query tap's state as last recorded on a collection by the writing process."""

    ts_ms: int
    ok: bool
    error: str = ""


def tap_health(milvus: Milvus, collection: str) -> TapHealth | None:
    """The tap state last recorded on ``collection``, if any (an unreadable record counts as none)."""
    raw = milvus.properties(collection).get(TAP_HEALTH_PROPERTY)
    try:
        value = json.loads(raw) if raw else None
        if not isinstance(value, dict):
            return None
        return TapHealth(ts_ms=int(value["ts_ms"]), ok=bool(value["ok"]), error=str(value.get("error") or ""))
    except (ValueError, KeyError, TypeError):
        return None


# An embedding's values are O(1) (normalised models) to O(100); beyond this a value is garbage, and its square
# overflows float32 in the monitors' distances (3e38 is finite, its norm is not). A vector shorter than
# MIN_VECTOR_NORM (all zeros) has no direction: cosine similarity is undefined and normalising gives NaN.
MAX_VECTOR_VALUE = 1e6
MIN_VECTOR_NORM = 1e-6


def usable_rows(vectors: np.ndarray) -> np.ndarray:
    """For a 2-D array, which rows are usable embeddings: finite, every value within +-MAX_VECTOR_VALUE, and a
    norm of at least MIN_VECTOR_NORM (computed in float64, so it cannot overflow)."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"usable_rows takes a 2-D array, got shape {v.shape}")
    with np.errstate(all="ignore"):
        finite = np.isfinite(v).all(axis=1)
        bounded = (np.abs(np.where(np.isfinite(v), v, 0.0)) <= MAX_VECTOR_VALUE).all(axis=1)
        norms: np.ndarray = np.linalg.norm(np.where(np.isfinite(v), v, 0.0), axis=1)
    return finite & bounded & (norms >= MIN_VECTOR_NORM)


def vector_problem(vector: Any) -> str | None:
    """Why ``vector`` is not a usable embedding (None when it is)."""
    try:
        v = np.asarray(vector, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return "is not numeric"
    if v.ndim != 1 or v.size == 0:
        return f"has shape {v.shape}, not (dim,)"
    if not np.isfinite(v).all():
        return "contains NaN or infinite values"
    if np.abs(v).max() > MAX_VECTOR_VALUE:
        return f"has a value of {float(np.abs(v).max()):.3g}, beyond +-{MAX_VECTOR_VALUE:g}"
    if float(np.linalg.norm(v)) < MIN_VECTOR_NORM:
        return f"has norm {float(np.linalg.norm(v)):.3g} (all zeros or nearly): it has no direction to compare"
    return None


def finite_vector(vector: Any) -> bool:
    """A query vector worth tapping: a usable embedding (one NaN, one overflowing value or one all-zero vector
    would poison every check of its window)."""
    return vector_problem(vector) is None


def tap_row(
    *,
    query_id: str,
    vector: np.ndarray,
    alias: str,
    collection: str,
    model_id: str,
    text: str | None,
    store_text: bool,
    hits: Sequence[Mapping[str, Any]],
    ts_ms: int | None = None,
) -> dict[str, Any]:
    return {
        "_collection": tap_collection_name(len(vector)),
        "query_id": query_id,
        "ts_ms": ts_ms if ts_ms is not None else now_ms(),
        "alias": alias,
        "collection": collection,
        "model_id": model_id,
        "text": fit_bytes(text or "", _MAX_TEXT) if store_text else "",
        "text_hash": text_hash(text) if text else "",
        "hits": {
            "ids": [h["id"] for h in hits[:MAX_TAPPED_HITS]],
            "scores": [round(float(h["distance"]), 6) for h in hits[:MAX_TAPPED_HITS]],
        },
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
    }


def fit_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, at a character boundary: Milvus counts a VARCHAR's
    max_length in bytes, so 8,192 characters of CJK text (24 KB) would be refused and the row lost."""
    raw = text.encode("utf-8", "surrogatepass")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")


def feedback_row(
    *,
    query_id: str,
    doc_id: int | str,
    alias: str,
    collection: str,
    model_id: str,
    signal: str,
    weight: float,
    query_text: str,
) -> dict[str, Any]:
    return {
        "feedback_id": new_id(),
        "query_id": query_id,
        "doc_id": json.dumps(doc_id),
        "alias": alias,
        "collection": collection,
        "model_id": model_id,
        "signal": signal,
        "weight": float(weight),
        "ts_ms": now_ms(),
        "query_text": fit_bytes(query_text, _MAX_TEXT),
        "_v": [1.0, 0.0],
    }
