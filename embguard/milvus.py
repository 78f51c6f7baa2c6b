"""The one module that imports pymilvus. Everything embguard asks of Milvus goes through ``Milvus``.

The same code path serves both backends: a Milvus Lite server on loopback (the embedded default) and
Milvus standalone/cluster. The backend is read from the server itself at connect time, so Lite's gaps
(index types it cannot build, aliases missing from ``describe_collection``) are handled here, once.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient, MilvusException

from .config import CollectionSettings, Settings, secret
from .errors import InvalidInput, MilvusError, MilvusUnavailable, UnsupportedIndex

# Accepted by Lite at create time, then fail in its background build: refuse them before that.
LITE_UNSUPPORTED_INDEXES = frozenset({"IVF_PQ", "DISKANN", "SCANN", "GPU_CAGRA", "GPU_IVF_FLAT", "GPU_IVF_PQ",
                                      "GPU_BRUTE_FORCE"})
LITE_SUPPORTED_INDEXES = ("FLAT", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "AUTOINDEX")
_DEFAULT_INDEX_PARAMS: dict[str, dict[str, Any]] = {
    "HNSW": {"M": 16, "efConstruction": 200},
    "HNSW_SQ": {"M": 16, "efConstruction": 200},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
    "IVF_PQ": {"nlist": 128},  # plus m, which must divide the dimension: see _index_params
}
MODEL_ID_PROPERTY = "embguard.model_id"
# pymilvus logs a full traceback for every failed RPC, including the ones embguard expects and turns into
# one-line errors (an alias that does not exist yet, a server that is down). Keep only its critical logs.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
TEXT_MAX_LENGTH = 65535


# embguard's own reads (counts, windows, reconcile, feedback) must see writes that came just before them;
# a real server's default (Bounded) may not. Application searches keep the collection's own level.
STRONG = "Strong"
MAX_ID_LENGTH = 512


def literal(value: str) -> str:
    """``value`` as a Milvus filter string literal: quoted and escaped, so it can never end the literal."""
    if not isinstance(value, str):
        raise InvalidInput(f"filter value {value!r} must be a string")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_ids(ids: Any, int_keys: bool, what: str = "ids") -> list[int | str]:
    """Validate primary keys by the key's type; a bad one is named, and nothing is sent to Milvus.

    pymilvus writes ids into a filter expression unquoted (int keys) or quoted without escaping (varchar),
    so a crafted id such as ``"0] or id > 0 or id in [0"`` would select every row: every id is checked here.
    """
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (list, tuple, set, frozenset)):
        raise InvalidInput(f"{what} must be a list of document ids, got {type(ids).__name__} {ids!r:.80}")
    out: list[int | str] = []
    for i in ids:
        if int_keys:
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
                raise InvalidInput(f"{what}: {i!r:.80} is not an integer; this collection's primary key is INT64")
            if not -(2 ** 63) <= int(i) < 2 ** 63:
                raise InvalidInput(f"{what}: {i} is out of the INT64 range of this collection's primary key")
            out.append(int(i))
        else:
            if not isinstance(i, str) or not i or len(i) > MAX_ID_LENGTH:
                raise InvalidInput(f"{what}: {i!r:.80} is not a non-empty string of at most {MAX_ID_LENGTH} "
                                   "characters; this collection's primary key is VARCHAR")
            out.append(i)
    return out


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return " ".join(str(msg).split())[:300]


def _index_params(index_type: str, dimension: int, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults a real server insists on (Lite fills its own): IVF indexes need ``nlist``, IVF_PQ an ``m``
    that divides the dimension (about 8 dimensions per sub-quantizer)."""
    params = dict(_DEFAULT_INDEX_PARAMS.get(index_type.upper(), {}))
    if index_type.upper() == "IVF_PQ":
        params["m"] = max(m for m in range(1, max(dimension // 8, 1) + 1) if dimension % m == 0)
    params.update(overrides)
    return params


class Milvus:
    """A connected Milvus (Lite server or standalone/cluster). Thread-safe as pymilvus' client is."""

    def __init__(self, client: MilvusClient, uri: str, server_version: str):
        self._client = client
        self.uri = uri
        self.server_version = server_version
        self._keys: dict[str, tuple[str, bool]] = {}  # collection -> (primary key field, is INT64)

    @classmethod
    def connect(cls, settings: Settings, uri: str | None = None) -> Milvus:
        """Connect to the configured Milvus; a failure names the URI and what to check."""
        uri = uri or settings.milvus_uri
        m = settings.milvus
        token = secret(m.token)
        if not token and m.user:
            token = f"{m.user}:{secret(m.password)}"
        try:
            # A dedicated channel: pymilvus otherwise shares one per URI, and a shared channel that saw the
            # server go away can stay broken after the server comes back.
            client = MilvusClient(uri=uri, token=token, db_name=m.db_name, timeout=m.timeout_s, dedicated=True)
            version = client.get_server_version()
        except MilvusException as exc:
            hint = ("start the local server with `embguard lite start`" if settings.milvus.uri == "lite"
                    else "check that Milvus is running, the host and port, and the credentials")
            raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {_reason(exc)}; {hint}") from None
        return cls(client, uri, str(version))

    @property
    def client(self) -> MilvusClient:
        """The raw pymilvus client, for embguard modules that need a call not wrapped here."""
        return self._client

    @property
    def is_lite(self) -> bool:
        return self.server_version.lower().startswith("milvus_lite")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def ping(self) -> bool:
        try:
            self._client.get_server_version(timeout=2)
        except Exception:  # any failure means "not up" to the caller
            return False
        return True

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        try:
            yield
        except MilvusException as exc:
            code = getattr(exc, "code", None)
            if code in (2, 1) and not self.ping():
                raise MilvusUnavailable(f"Milvus at {self.uri} went away during {what}: {_reason(exc)}") from None
            raise MilvusError(f"{what} failed on {self.uri}: {_reason(exc)}") from None

    # --- collections, aliases, properties ---------------------------------------------------------------

    def check_index_type(self, index_type: str) -> None:
        if self.is_lite and index_type.upper() in LITE_UNSUPPORTED_INDEXES:
            raise UnsupportedIndex(
                f"index type {index_type!r} cannot be built by Milvus Lite (at {self.uri}); use one of "
                f"{', '.join(LITE_SUPPORTED_INDEXES)}, or point milvus.uri at Milvus standalone/cluster")

    def has_collection(self, name: str) -> bool:
        with self._call(f"has_collection({name!r})"):
            return bool(self._client.has_collection(name))

    def list_collections(self) -> list[str]:
        with self._call("list_collections"):
            return list(self._client.list_collections())

    def create_collection(self, spec: CollectionSettings, dimension: int, name: str | None = None,
                          properties: Mapping[str, str] | None = None, id_type: str = "int",
                          extra_text_fields: Mapping[str, int] | None = None) -> str:
        """Create a collection for ``spec`` (id, vector, text, optional timestamp) and its vector index.

        ``extra_text_fields`` maps further VARCHAR field names to their maximum length.
        """
        name = name or spec.name
        self.check_index_type(spec.index_type)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        if id_type == "int":
            schema.add_field(spec.id_field, DataType.INT64, is_primary=True)
        else:
            schema.add_field(spec.id_field, DataType.VARCHAR, is_primary=True, max_length=512)
        schema.add_field(spec.vector_field, DataType.FLOAT_VECTOR, dim=dimension)
        if spec.text_field:
            schema.add_field(spec.text_field, DataType.VARCHAR, max_length=TEXT_MAX_LENGTH)
        if spec.timestamp_field:
            schema.add_field(spec.timestamp_field, DataType.INT64)
        for fname, max_length in (extra_text_fields or {}).items():
            schema.add_field(fname, DataType.VARCHAR, max_length=max_length)
        index = MilvusClient.prepare_index_params()
        params = _index_params(spec.index_type, dimension, spec.index_params)
        index.add_index(field_name=spec.vector_field, index_type=spec.index_type, metric_type=spec.metric_type,
                        params=params)
        with self._call(f"create_collection({name!r})"):
            self._client.create_collection(name, schema=schema, index_params=index,
                                           properties=dict(properties or {}))
        return name

    def create_table(self, name: str, fields: Sequence[tuple[str, str, int]], primary: str,
                     vector: tuple[str, int], properties: Mapping[str, str] | None = None) -> str:
        """Create an embguard bookkeeping collection (tap, feedback).

        ``fields`` are ``(name, kind, max_length)`` with kind one of varchar, int64, float, json; the
        primary key is a VARCHAR. Milvus requires a vector field in every collection, so one is always
        present (``vector``: name and dimension) with a FLAT index, which costs nothing until searched.
        """
        kinds = {"varchar": DataType.VARCHAR, "int64": DataType.INT64, "float": DataType.FLOAT,
                 "json": DataType.JSON}
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        for fname, kind, max_length in fields:
            kwargs: dict[str, Any] = {"is_primary": fname == primary}
            if kind == "varchar":
                kwargs["max_length"] = max_length
            schema.add_field(fname, kinds[kind], **kwargs)
        schema.add_field(vector[0], DataType.FLOAT_VECTOR, dim=vector[1])
        index = MilvusClient.prepare_index_params()
        index.add_index(field_name=vector[0], index_type="FLAT", metric_type="COSINE")
        with self._call(f"create_collection({name!r})"):
            self._client.create_collection(name, schema=schema, index_params=index,
                                           properties=dict(properties or {}))
        return name

    def schema_fields(self, collection: str) -> list[dict[str, Any]]:
        return list(self.describe(collection).get("fields", []))

    def clone_collection(self, source: str, target: str, properties: Mapping[str, str],
                         index_params: Mapping[str, Any] | None = None, dimension: int | None = None) -> str:
        """Create ``target`` with ``source``'s fields, vector index (type, metric, params) and ``properties``.

        ``dimension`` replaces the vector dimension when the new model's differs.
        """
        desc = self.describe(source)
        schema = MilvusClient.create_schema(auto_id=bool(desc.get("auto_id")),
                                            enable_dynamic_field=bool(desc.get("enable_dynamic_field")))
        vector_fields = []
        for f in desc["fields"]:
            params = dict(f.get("params") or {})
            kwargs: dict[str, Any] = {k: v for k, v in params.items() if k in ("dim", "max_length",
                                                                               "element_type", "max_capacity")}
            if f["type"] == DataType.FLOAT_VECTOR:
                vector_fields.append(f["name"])
                if dimension:
                    kwargs["dim"] = dimension
            if f.get("is_primary"):
                kwargs["is_primary"] = True
            if f.get("nullable"):
                kwargs["nullable"] = True
            schema.add_field(f["name"], f["type"], **kwargs)
        index = MilvusClient.prepare_index_params()
        with self._call(f"describe indexes of {source!r}"):
            for name in self._client.list_indexes(source):
                info = dict(self._client.describe_index(source, name))
                if info.get("field_name") not in vector_fields:
                    continue
                standard = {"index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows",
                            "pending_index_rows", "state"}
                params = {k: v for k, v in info.items() if k not in standard}
                params.update(index_params or {})
                self.check_index_type(str(info["index_type"]))
                index.add_index(field_name=info["field_name"], index_type=info["index_type"],
                                metric_type=info["metric_type"], params=params)
        with self._call(f"create_collection({target!r})"):
            self._client.create_collection(target, schema=schema, index_params=index, properties=dict(properties))
        return target

    def drop_properties(self, collection: str, keys: Sequence[str]) -> None:
        """Remove properties. Milvus 2.3 cannot drop a property, so there it is set to "" instead, which
        ``properties()`` reports as absent on every backend."""
        try:
            with self._call(f"drop_collection_properties({collection!r})"):
                self._client.drop_collection_properties(collection, list(keys))
        except MilvusUnavailable:
            raise
        except MilvusError:
            self.set_properties(collection, {k: "" for k in keys})

    def drop_collection(self, name: str) -> None:
        with self._call(f"drop_collection({name!r})"):
            # Lite silently drops aliases with their collection; full Milvus refuses. Drop them explicitly.
            for alias in self.aliases_of(name):
                self._client.drop_alias(alias)
            self._client.drop_collection(name)

    def aliases_of(self, collection: str) -> list[str]:
        # Lite leaves ``aliases`` out of describe_collection; Milvus 2.3's list_aliases fails outside the
        # default database. Ask both and take the union.
        with self._call(f"describe_collection({collection!r})"):
            found = list(self._client.describe_collection(collection).get("aliases") or [])
        with contextlib.suppress(MilvusException):
            found += [a for a in self._client.list_aliases(collection_name=collection).get("aliases", [])
                      if a not in found]
        return found

    def resolve(self, name: str) -> str:
        """The concrete collection behind ``name`` (an alias or a collection name).

        describe_collection answers for an alias with the collection behind it on every backend, where
        describe_alias on Milvus 2.3 looks in the default database whatever the client's database is.
        """
        with self._call(f"describe_collection({name!r})"):
            try:
                return str(self._client.describe_collection(name)["collection_name"])
            except MilvusException:
                if not self.ping():
                    raise
                raise MilvusError(f"no collection or alias named {name!r} on {self.uri}; check the "
                                  "[[collections]] name in the config") from None

    def create_alias(self, collection: str, alias: str) -> None:
        with self._call(f"create_alias({alias!r} -> {collection!r})"):
            self._client.create_alias(collection, alias)

    def alter_alias(self, collection: str, alias: str) -> None:
        with self._call(f"alter_alias({alias!r} -> {collection!r})"):
            self._client.alter_alias(collection, alias)

    def properties(self, collection: str) -> dict[str, str]:
        with self._call(f"describe_collection({collection!r})"):
            desc = self._client.describe_collection(collection)
        return {str(k): str(v) for k, v in (desc.get("properties") or {}).items() if str(v)}

    def set_properties(self, collection: str, properties: Mapping[str, str]) -> None:
        with self._call(f"alter_collection_properties({collection!r})"):
            self._client.alter_collection_properties(collection, properties=dict(properties))

    def describe(self, collection: str) -> dict[str, Any]:
        with self._call(f"describe_collection({collection!r})"):
            return dict(self._client.describe_collection(collection))

    def count(self, collection: str, filter: str = "") -> int:
        res = self._loaded(collection, f"count({collection!r})", lambda: self._client.query(
            collection, filter=filter, output_fields=["count(*)"], consistency_level=STRONG))
        return int(res[0]["count(*)"])

    def primary_key(self, collection: str) -> tuple[str, bool]:
        """``(field name, is INT64)`` of a collection's primary key (cached: a schema never changes)."""
        if collection not in self._keys:
            for f in self.schema_fields(collection):
                if f.get("is_primary"):
                    self._keys[collection] = (str(f["name"]), f["type"] == DataType.INT64)
                    break
            else:
                raise MilvusError(f"collection {collection!r} on {self.uri} has no primary key field")
        return self._keys[collection]

    def ids_filter(self, collection: str, ids: Any, what: str = "ids") -> str:
        """A filter selecting exactly ``ids`` (validated by the key's type): ``pk in [...]``."""
        field, int_keys = self.primary_key(collection)
        checked = check_ids(ids, int_keys, what)
        values = [str(i) if int_keys else literal(str(i)) for i in checked]
        return f"{field} in [{', '.join(values)}]"

    def vector_dimension(self, collection: str, field: str | None = None) -> int:
        """The dimension of ``field`` (or the first float vector field) of a collection."""
        for f in self.schema_fields(collection):
            if f["type"] == DataType.FLOAT_VECTOR and (field is None or f["name"] == field):
                return int((f.get("params") or {})["dim"])
        raise MilvusError(f"collection {collection!r} has no float vector field {field or ''}".rstrip())

    def ensure_loaded(self, collection: str) -> None:
        """Load a released collection (after a server restart Lite keeps collections released)."""
        with self._call(f"load_collection({collection!r})"):
            state = str(self._client.get_load_state(collection).get("state", ""))
            if "Loaded" not in state:
                self._client.load_collection(collection)

    def _loaded(self, collection: str, what: str, fn: Any) -> Any:
        try:
            with self._call(what):
                return fn()
        except MilvusError as exc:
            if "released" not in str(exc) and "not loaded" not in str(exc):
                raise
        self.ensure_loaded(collection)
        with self._call(what):
            return fn()

    # --- data ---------------------------------------------------------------------------------------------

    def insert(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        with self._call(f"insert into {collection!r}"):
            res = self._client.insert(collection, [dict(r) for r in rows])
        return int(res.get("insert_count", len(rows)))

    def upsert(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> int:
        if not rows:
            return 0
        with self._call(f"upsert into {collection!r}"):
            res = self._client.upsert(collection, [dict(r) for r in rows])
        return int(res.get("upsert_count", len(rows)))

    def delete(self, collection: str, ids: Sequence[int | str] | None = None, filter: str = "") -> None:
        """Delete by ids or by filter (pymilvus no longer reports how many rows went: count before/after)."""
        if ids is None and not filter:
            raise MilvusError(f"delete from {collection!r} needs ids or a filter; refusing to delete everything")
        if ids is not None:
            ids = list(ids) if isinstance(ids, (list, tuple)) else ids
            if not ids:
                return
            filter = self.ids_filter(collection, ids)
        with self._call(f"delete from {collection!r}"):
            self._client.delete(collection, filter=filter)

    def iterate(self, collection: str, output_fields: Sequence[str], filter: str = "",
                batch_size: int = 5000) -> Iterator[list[dict[str, Any]]]:
        """Batches of rows in primary-key order, streamed (the whole collection is never held in memory).

        Pages by primary key (``pk > last`` with a limit, asking for key order as pymilvus' query_iterator
        does), but through plain queries: on Milvus 2.3 query_iterator returns nothing outside the default
        database. Pass a concrete collection, not an alias: an iteration on an alias straddles a switch.
        """
        self.ensure_loaded(collection)
        pk, int_keys = self.primary_key(collection)
        fields = list(output_fields) + ([] if pk in output_fields else [pk])
        # A server reads an iterator-flagged query at its own timestamp, ignoring the consistency level: one
        # small Strong read first makes every write acknowledged so far visible to the pages that follow.
        self._loaded(collection, f"query on {collection!r}", lambda: self._client.query(
            collection, filter=filter, output_fields=[pk], limit=1, consistency_level=STRONG))
        last: int | str | None = None
        while True:
            after = "" if last is None else f"{pk} > {last if int_keys else literal(str(last))}"
            cond = " and ".join(f"({c})" for c in (filter, after) if c)
            # The iterator flags make the server return the *smallest* keys past ``last`` (what query_iterator
            # asks for); without them Lite returns any ``limit`` matching rows, and paging would skip rows.
            rows = self._loaded(collection, f"query on {collection!r}", lambda: self._client.query(
                collection, filter=cond, output_fields=fields, limit=batch_size, consistency_level=STRONG,
                iterator="True", reduce_stop_for_best="True"))
            if not rows:
                return
            batch = sorted((dict(r) for r in rows), key=lambda r: r[pk])
            yield batch
            # Only an empty page ends it: with reduce_stop_for_best a server may return a short page (the
            # best rows of the segments it merged) while more rows follow.
            last = batch[-1][pk]

    def flush(self, collection: str) -> None:
        with self._call(f"flush({collection!r})"):
            self._client.flush(collection)

    def search(self, collection: str, vectors: np.ndarray, limit: int = 10, *, anns_field: str | None = None,
               filter: str = "", output_fields: Sequence[str] | None = None,
               search_params: Mapping[str, Any] | None = None,
               consistency_level: str | None = None) -> list[list[dict[str, Any]]]:
        """Top-``limit`` hits per query vector: ``[[{"id", "distance", "entity"}...]...]``.

        ``consistency_level`` defaults to the collection's (Bounded on a server: a search may miss writes of
        the last moments; "Strong" waits for them).
        """
        extra = {"consistency_level": consistency_level} if consistency_level else {}
        data = np.asarray(vectors, dtype=np.float32)
        if data.ndim != 2:
            raise MilvusError(f"search on {collection!r} needs a 2-D array of query vectors, got shape {data.shape}")
        res = self._loaded(collection, f"search on {collection!r}", lambda: self._client.search(
            collection, data=data.tolist(), limit=limit, filter=filter, output_fields=list(output_fields or []),
            anns_field=anns_field, search_params=dict(search_params or {}), **extra))
        return [[dict(hit) for hit in hits] for hits in res]

    def query(self, collection: str, filter: str = "", output_fields: Sequence[str] | None = None,
              ids: Sequence[int | str] | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"output_fields": list(output_fields or []), "consistency_level": STRONG}
        if ids is not None:
            ids = list(ids) if isinstance(ids, (list, tuple)) else ids
            if not ids:
                return []
            kwargs["filter"] = self.ids_filter(collection, ids)
        elif not filter and limit is None:
            # A server refuses an empty filter without a limit: "every row" is a paged read.
            return [r for batch in self.iterate(collection, list(output_fields or [])) for r in batch]
        else:
            kwargs["filter"] = filter
        if limit is not None:
            kwargs["limit"] = limit
        rows = self._loaded(collection, f"query on {collection!r}", lambda: self._client.query(collection, **kwargs))
        return [dict(r) for r in rows]

    def wait_index(self, collection: str, field: str, timeout_s: float = 600.0) -> None:
        """Block until the vector index on ``field`` has no pending rows."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._call(f"describe_index({collection!r})"):
                names = self._client.list_indexes(collection, field_name=field)
                info = self._client.describe_index(collection, names[0]) if names else {}
            if not names or int(info.get("pending_index_rows", 0) or 0) == 0:
                return
            if time.monotonic() > deadline:
                raise MilvusError(f"index on {collection}.{field} still building after {timeout_s:.0f} s")
            time.sleep(0.5)
