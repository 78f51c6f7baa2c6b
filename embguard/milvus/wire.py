"""Milvus' gRPC wire, as far as the proxy reads it: the method table and what a tapped call says.

Everything here runs off the request path (the tap's worker thread): the forwarder passes raw bytes and never
parses a message. The protobuf classes are pymilvus' generated ones (``pymilvus.grpc_gen``), so the proxy
speaks exactly the protocol of the pymilvus it is installed with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pymilvus.grpc_gen import common_pb2, milvus_pb2, schema_pb2

SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
SERVICE_NAME = SERVICE.full_name  # milvus.proto.milvus.MilvusService
# The protocol's methods: a relayed call's ``method`` label is one of these or "other" (bounded cardinality).
METHODS = frozenset(m.name for m in SERVICE.methods)
# The calls the tap reads; every other call is forwarded and counted only.
SEARCHES = frozenset({"Search", "HybridSearch"})
WRITES = {"Insert": "insert", "Upsert": "upsert", "Delete": "delete"}
TAPPED = SEARCHES | frozenset(WRITES)

_FLOAT_VECTOR = common_pb2.PlaceholderType.FloatVector


@dataclass(frozen=True)
class SearchCall:
    """One Search (or HybridSearch) the application made, decoded: its dense query vectors and what came back.

    ``vectors`` has one row per query (``nq``); ``hits[i]`` is the ranked (id, score) list for query ``i``.
    ``skipped`` says why no vectors were read (server-side text embedding, sparse or binary vectors)."""

    db_name: str
    collection: str
    partitions: tuple[str, ...]
    vectors: np.ndarray
    hits: tuple[tuple[tuple[int | str, float], ...], ...]
    skipped: str = ""


@dataclass(frozen=True)
class WriteCall:
    db_name: str
    collection: str
    op: str  # insert | upsert | delete
    rows: int


def status_ok(status: common_pb2.Status) -> bool:
    return bool(status.code == 0 and status.error_code == 0)


def _vectors(placeholder_group: bytes) -> tuple[np.ndarray, str]:
    group = common_pb2.PlaceholderGroup.FromString(placeholder_group)
    for ph in group.placeholders:
        if ph.type == _FLOAT_VECTOR and ph.values:
            # One little-endian float32 blob per query; np.frombuffer copies nothing until the stack below.
            return np.stack([np.frombuffer(v, dtype="<f4") for v in ph.values]).astype(np.float32), ""
        if ph.type == common_pb2.PlaceholderType.VarChar:
            return np.empty((0, 0), np.float32), "text_query"
        return np.empty((0, 0), np.float32), "not_float_vector"
    return np.empty((0, 0), np.float32), "no_placeholder"


def _hits(results: schema_pb2.SearchResultData) -> tuple[tuple[tuple[int | str, float], ...], ...]:
    ids: list[int | str] = (
        list(results.ids.int_id.data) if results.ids.HasField("int_id") else list(results.ids.str_id.data)
    )
    scores = list(results.scores)
    out, start = [], 0
    for k in results.topks:
        out.append(tuple(zip(ids[start : start + k], (float(s) for s in scores[start : start + k]), strict=True)))
        start += k
    return tuple(out)


def decode_search(method: str, request: bytes, response: bytes, db_header: str = "") -> SearchCall | None:
    """The search a (Hybrid)Search call made, or None when Milvus answered it with an error status.

    HybridSearch is read through its first dense sub-request: the vectors of that request and the fused
    ranking the application was shown."""
    if method == "HybridSearch":
        hreq = milvus_pb2.HybridSearchRequest.FromString(request)
        db, coll, parts = hreq.db_name, hreq.collection_name, tuple(hreq.partition_names)
        vectors, skipped = np.empty((0, 0), np.float32), "no_placeholder"
        for sub in hreq.requests:
            vectors, skipped = _vectors(sub.placeholder_group)
            if not skipped:
                break
    else:
        req = milvus_pb2.SearchRequest.FromString(request)
        db, coll, parts = req.db_name, req.collection_name, tuple(req.partition_names)
        vectors, skipped = _vectors(req.placeholder_group)
    res = milvus_pb2.SearchResults.FromString(response)
    if not status_ok(res.status):
        return None
    hits = _hits(res.results)
    if not skipped and len(hits) != len(vectors):
        skipped = "malformed"  # nq and the result count disagree: nothing here can be trusted
    return SearchCall(db or db_header, coll, parts, vectors, hits, skipped)


def decode_write(method: str, request: bytes, response: bytes, db_header: str = "") -> WriteCall | None:
    """The rows an Insert, Upsert or Delete changed, or None when Milvus refused it."""
    res = milvus_pb2.MutationResult.FromString(response)
    if not status_ok(res.status):
        return None
    if method == "Delete":
        dreq = milvus_pb2.DeleteRequest.FromString(request)
        return WriteCall(dreq.db_name or db_header, dreq.collection_name, "delete", int(res.delete_cnt))
    cls = milvus_pb2.InsertRequest if method == "Insert" else milvus_pb2.UpsertRequest
    wreq = cls.FromString(request)
    rows = int(res.upsert_cnt if method == "Upsert" else res.insert_cnt) or int(wreq.num_rows)
    return WriteCall(wreq.db_name or db_header, wreq.collection_name, WRITES[method], rows)
