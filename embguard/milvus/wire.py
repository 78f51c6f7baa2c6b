"""Milvus' gRPC wire, as far as the proxy reads it: the method table and what a tapped call says.

Everything here runs off the request path (the tap's worker thread): the forwarder passes raw bytes and never
parses a message. The protobuf classes are pymilvus' generated ones (``pymilvus.grpc_gen``), so the proxy
speaks exactly the protocol of the pymilvus it is installed with.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

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


@dataclass(frozen=True)
class WriteRows:
    """An application's successful write, as the proxy re-sends it to a collection's other side: the parsed
    request (``InsertRequest``, ``UpsertRequest`` or ``DeleteRequest``)."""

    method: str
    message: Any

    @property
    def collection(self) -> str:
        return str(self.message.collection_name)

    @property
    def rows(self) -> int:
        return 1 if self.method == "Delete" else int(self.message.num_rows)

    def texts(self, text_field: str) -> tuple[str, ...] | None:
        """The stored text of ``text_field``, one per row; None for a Delete or a write without that field."""
        if self.method == "Delete":
            return None
        for fd in self.message.fields_data:
            if fd.field_name == text_field and fd.HasField("scalars") and fd.scalars.HasField("string_data"):
                return tuple(fd.scalars.string_data.data)
        return None


def write_vectors(write: WriteRows, vector_field: str) -> np.ndarray | None:
    """The float vectors an Insert or Upsert carries in ``vector_field``, one row per row (None if none)."""
    if write.method == "Delete":
        return None
    for fd in write.message.fields_data:
        if fd.field_name == vector_field and fd.HasField("vectors") and fd.vectors.HasField("float_vector"):
            dim = int(fd.vectors.dim)
            values = np.asarray(fd.vectors.float_vector.data, dtype=np.float32)
            return values.reshape(-1, dim) if dim and values.size % dim == 0 else None
    return None


def write_succeeded(response: bytes) -> bool:
    """Whether a write's ``MutationResult`` says it was applied (Milvus answers gRPC OK with an error inside)."""
    return status_ok(milvus_pb2.MutationResult.FromString(response).status)


def read_write(method: str, request: bytes) -> WriteRows:
    """Parse an Insert, Upsert or Delete request."""
    cls = {"Delete": milvus_pb2.DeleteRequest, "Insert": milvus_pb2.InsertRequest, "Upsert": milvus_pb2.UpsertRequest}
    return WriteRows(method, cls[method].FromString(request))


def retarget(
    write: WriteRows, collection: str, vector_field: str, vectors: np.ndarray | None, db_name: str = ""
) -> Any:
    """The request that repeats ``write`` on ``collection`` of database ``db_name`` (pymilvus sends the database in
    the request, not only as a header): a Delete as it was, an Insert or Upsert as an Upsert (so repeating it never
    duplicates a primary key) with ``vector_field`` replaced by ``vectors``."""
    if write.method == "Delete":
        d = milvus_pb2.DeleteRequest()
        d.CopyFrom(write.message)
        d.collection_name, d.db_name = collection, db_name
        del d.hash_keys[:]
        return d
    src = write.message
    up = milvus_pb2.UpsertRequest(
        db_name=db_name, collection_name=collection, partition_name=src.partition_name, num_rows=src.num_rows
    )
    for fd in src.fields_data:
        out = up.fields_data.add()
        out.CopyFrom(fd)
        if fd.field_name == vector_field:
            if vectors is None or vectors.shape[0] != src.num_rows:
                raise ValueError(f"{len(vectors) if vectors is not None else 0} vectors for {src.num_rows} rows")
            out.vectors.dim = int(vectors.shape[1])
            del out.vectors.float_vector.data[:]
            out.vectors.float_vector.data.extend(np.asarray(vectors, dtype=np.float32).ravel().tolist())
    return up


def field_span(message: bytes | bytearray | memoryview, number: int) -> tuple[int, int] | None:
    """Where the first length-delimited top-level field ``number`` of a serialized protobuf ``message`` lies
    (``start, end`` of its value), or None. Reads only the tags and lengths on the way, so a caller can patch a
    value in place (the proxy renames a Search's collection without re-encoding it)."""
    pos, n = 0, len(message)
    while pos < n:
        key, pos = _varint(message, pos)
        wire, field = key & 7, key >> 3
        if wire == 0:
            _, pos = _varint(message, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(message, pos)
            if field == number:
                return (pos, pos + length) if pos + length <= n else None
            pos += length
        else:
            return None
    return None


def _varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7


def float_vectors(placeholder_group: bytes) -> list[bytes]:
    """The raw little-endian float32 bytes of each dense query of a Search's placeholder group (none otherwise)."""
    group = common_pb2.PlaceholderGroup.FromString(placeholder_group)
    for ph in group.placeholders:
        if ph.type == _FLOAT_VECTOR:
            return list(ph.values)
    return []


FINGERPRINT_BYTES = 16


def fingerprint(vector_bytes: bytes) -> bytes:
    """A query vector's identity across the endpoint and the proxy: BLAKE2b-128 of its little-endian float32 bytes
    (what an SDK sends Milvus; JSON floats printed from float32 values parse back to the same float32)."""
    return hashlib.blake2b(vector_bytes, digest_size=FINGERPRINT_BYTES).digest()


# ShowCollectionsResponse's columns beside collection_names, in the order their room is taken for the aliases an
# answer lists: Milvus' hybrid-clock creation times (no SDK reads them; they show created_utc_timestamps), then
# the columns Milvus 2.x keeps for compatibility (load state is read from GetLoadingProgress/GetLoadState), then
# the rest. Milvus Lite fills only the compatibility ones.
_SPARE_COLUMNS = (
    "created_timestamps",
    "query_service_available",
    "shards_num",
    "inMemory_percentages",
    "created_utc_timestamps",
    "collection_ids",
)
_FILLER_FIELD = 15  # no ShowCollectionsResponse field: parsers skip it


def add_aliases(message: bytes, served: dict[str, str]) -> bytes | None:
    """``message`` (a serialized ShowCollectionsResponse) listing each alias of ``served`` (alias -> collection)
    whose collection it lists, in exactly as many bytes; None when it lists none of them or there is no room.

    The aliases go at the end of ``collection_names``; the room is taken from the fewest columns of
    ``_SPARE_COLUMNS``, in order, that make it, and an unknown field that parsers skip fills what is left."""
    answer = milvus_pb2.ShowCollectionsResponse.FromString(message)
    names = list(answer.collection_names)
    new = [alias for alias, collection in served.items() if collection in names and alias not in names]
    if not new:
        return None
    answer.collection_names.extend(new)
    for column in (None, *_SPARE_COLUMNS):
        if column is not None:
            answer.ClearField(column)
        body = answer.SerializeToString()
        filler = _filler(len(message) - len(body))
        if filler is None and answer.HasField("status") and answer.status.ByteSize() == 0:
            # An empty status reads as success whether it is there or not: two more bytes of room.
            trimmed = milvus_pb2.ShowCollectionsResponse()
            trimmed.CopyFrom(answer)
            trimmed.ClearField("status")
            body = trimmed.SerializeToString()
            filler = _filler(len(message) - len(body))
        if filler is not None:
            return bytes(body) + filler
    return None


def _filler(n: int) -> bytes | None:
    """Length-delimited fields ``_FILLER_FIELD`` of exactly ``n`` bytes in all (None for 1 or a negative ``n``)."""
    if n == 0:
        return b""
    for width in (1, 2, 3):
        size = n - 1 - width
        if size >= 0 and len(_encode_varint(size)) == width:
            return bytes([_FILLER_FIELD << 3 | 2]) + _encode_varint(size) + bytes(size)
    rest = _filler(n - 2) if n > 2 else None  # a length that no one field fits: an empty one, then the rest
    return None if rest is None else bytes([_FILLER_FIELD << 3 | 2, 0]) + rest


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
