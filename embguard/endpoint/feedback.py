"""``POST /v1/feedback``: a click or judgement from an application that has no ``embguard.Client`` (so no
query id), joined to the search it refers to.

The application sends what it has: the collection, the query text, the document id, the signal and weight. The
query's vector is what this endpoint returned for that text (the collection's current model; for an asymmetric
model both of its encodings are tried), so the tapped search it made is the tap row of that alias, within
``endpoint.feedback_join_s``, whose vector is that vector (cosine >= ``JOIN_COSINE``: the same text through the
same model, up to float rounding across batch compositions). Joined, the feedback carries that search's query id
(so retraining reads the rank the document was shown at); unjoined (the search was not sampled, or is older),
it gets an id of its own and still trains: a pair needs only the query text and the document.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from embguard.client.inputs import check_feedback, check_feedback_doc
from embguard.client.tap import (
    ensure_feedback_collection,
    feedback_row,
    now_ms,
    tap_collection_name,
)
from embguard.errors import FeedbackError, InvalidFeedback, MilvusError
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus
from embguard.models.loading import EmbeddingModel

JOIN_COSINE = 0.9999
MAX_DOC_ID_BYTES = 512  # the feedback collection's doc_id VARCHAR (bytes)


@dataclass(frozen=True)
class Recorded:
    feedback_id: str
    query_id: str
    joined: bool

    def to_json(self) -> dict[str, Any]:
        return {"object": "feedback", "id": self.feedback_id, "query_id": self.query_id, "joined": self.joined}


def parse(body: Any, max_query_chars: int) -> tuple[str, str, Any, str, float]:
    """(collection, query, doc_id, signal, weight) from a request body, or InvalidFeedback naming the field."""
    if not isinstance(body, dict):
        raise InvalidFeedback("feedback must be a JSON object with collection, query and doc_id; nothing was recorded")
    missing = [k for k in ("collection", "query", "doc_id") if body.get(k) in (None, "")]
    if missing:
        raise InvalidFeedback(
            f"feedback needs {', '.join(missing)} (the collection searched, the query text and the document id "
            "the user chose); nothing was recorded"
        )
    unknown = sorted(set(body) - {"collection", "query", "doc_id", "signal", "weight"})
    if unknown:
        raise InvalidFeedback(
            f"feedback has unknown field(s) {', '.join(map(repr, unknown))}; the fields are collection, query, "
            "doc_id, signal, weight; nothing was recorded"
        )
    collection, query = body["collection"], body["query"]
    if not isinstance(collection, str) or not isinstance(query, str):
        raise InvalidFeedback("feedback collection and query must be strings; nothing was recorded")
    if not query.strip():
        raise InvalidFeedback("feedback query is blank; send the text the user searched; nothing was recorded")
    if len(query) > max_query_chars:
        raise InvalidFeedback(
            f"feedback query has {len(query)} characters, over endpoint.max_text_chars = {max_query_chars}; "
            "nothing was recorded"
        )
    if len(json.dumps(body["doc_id"]).encode()) > MAX_DOC_ID_BYTES:
        raise InvalidFeedback(
            f"feedback doc_id is longer than the feedback store keeps ({MAX_DOC_ID_BYTES} bytes as JSON); "
            "nothing was recorded"
        )
    signal, weight = body.get("signal", "click"), body.get("weight", 1.0)
    check_feedback(signal, weight, query)
    return collection, query, body["doc_id"], signal, float(weight)


def find_tapped(milvus: Milvus, model: EmbeddingModel, alias: str, vectors: np.ndarray, since_ms: int) -> str | None:
    """The query id of the newest tapped search of ``alias`` since ``since_ms`` whose vector is one of
    ``vectors``; None when there is none."""
    tap = tap_collection_name(model.dimension)
    if not milvus.has_collection(tap):
        return None
    hits = milvus.search(
        tap,
        vectors,
        limit=16,  # the same query searched again has the same vector: the newest of them is wanted
        anns_field="vector",
        filter=f"alias == {literal(alias)} and ts_ms >= {int(since_ms)}",
        output_fields=["ts_ms", "query_id"],
    )  # Bounded, the tap's own level: a Strong search waited about 0.5 s per feedback on the server; a search tapped
    # moments before may be missed, and that feedback is stored unjoined
    best: tuple[int, str] | None = None
    for row in hits:
        for h in row:
            if float(h["distance"]) >= JOIN_COSINE:
                entity = h.get("entity") or {}
                ts = int(entity.get("ts_ms") or 0)
                if best is None or ts > best[0]:
                    best = (ts, str(entity.get("query_id") or h.get("query_id") or h.get("id")))
    return None if best is None else best[1]


def record(
    milvus: Milvus,
    model: EmbeddingModel,
    vectors: np.ndarray,
    *,
    alias: str,
    collection: str,
    query: str,
    doc_id: Any,
    signal: str,
    weight: float,
    join_s: int,
) -> Recorded:
    """Write one feedback row for ``alias`` (whose concrete collection is ``collection``, made by ``model``),
    joined to its tapped search where there is one: a search whose vector is one of ``vectors`` (the query's
    encodings by ``model``, made on the endpoint's encoder thread). Raises InvalidFeedback (the request's fault, nothing
    written) or FeedbackError (Milvus failed, nothing written; the caller may retry)."""
    try:
        check_feedback_doc(milvus, collection, alias, (), doc_id)
        query_id = find_tapped(milvus, model, alias, vectors, now_ms() - join_s * 1000)
        row = feedback_row(
            query_id=query_id or "",
            doc_id=doc_id,
            alias=alias,
            collection=collection,
            model_id=model.model_id,
            signal=signal,
            weight=weight,
            query_text=query,
        )
        if not query_id:
            row["query_id"] = "http-" + row["feedback_id"]
        milvus.insert(ensure_feedback_collection(milvus), [row])
    except MilvusError as exc:
        raise FeedbackError(f"feedback on doc {doc_id!r} for {alias!r} was not recorded: {exc}") from None
    return Recorded(str(row["feedback_id"]), str(row["query_id"]), query_id is not None)
