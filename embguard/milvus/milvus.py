"""The one module that imports pymilvus. Everything embguard asks of Milvus goes through ``Milvus``.

The same code path serves both backends: a Milvus Lite server on loopback (the embedded default) and
Milvus standalone/cluster. The backend is read from the server itself at connect time, so Lite's gaps
(index types it cannot build, aliases missing from ``describe_collection``) are handled here, once.
"""

from __future__ import annotations

__all__ = ["MODEL_ID_PROPERTY", "Milvus", "recorded_model_id"]

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
from pymilvus import DataType, MilvusClient, MilvusException

from embguard.config.credentials import redact_uri, scrub, secret, split_userinfo
from embguard.config.settings import Settings
from embguard.errors import ConfigError, MilvusError, MilvusUnavailable, UnsupportedIndex
from embguard.milvus.filters import ids_expr
from embguard.milvus.indexes import LITE_SUPPORTED_INDEXES, LITE_UNSUPPORTED_INDEXES
from embguard.milvus.names import app_model_id
from embguard.milvus.rows import Rows
from embguard.milvus.schemas import Schemas
from embguard.milvus.wire import status_ok

MODEL_ID_PROPERTY = "embguard.model_id"


def recorded_model_id(properties: Mapping[str, str], collection: str) -> str:
    """The model whose vectors ``collection`` holds: its ``embguard.model_id`` property or, for a collection that
    records none because the application computes its vectors (watched through the proxy), ``app_model_id``."""
    return properties.get(MODEL_ID_PROPERTY) or app_model_id(collection)


# pymilvus logs a full traceback for every failed RPC, including the ones embguard expects and turns into
# one-line errors (an alias that does not exist yet, a server that is down). Keep only its critical logs.
logging.getLogger("pymilvus").setLevel(logging.CRITICAL)


def _reason(exc: BaseException) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return redact_uri(" ".join(str(msg).split())[:300])


class Milvus(Rows, Schemas):
    """A connected Milvus (Lite server or standalone/cluster). Thread-safe as pymilvus' client is."""

    _types = DataType  # for the Schemas mixin, which does not import pymilvus

    def __init__(self, client: MilvusClient, uri: str, server_version: str):
        self._client = client
        self.uri = uri
        self.server_version = server_version
        self._keys: dict[str, tuple[str, bool]] = {}  # collection -> (primary key field, is INT64)

    @classmethod
    def connect(cls, settings: Settings, uri: str | None = None) -> Milvus:
        """Connect to the configured Milvus; a failure names the URI and what to check.

        Credentials inside ``uri`` (``http://user:pass@host``) are taken out of it and used as the user and
        password, exactly as ``milvus.uri`` in the settings: the URI kept (``self.uri``, printed in every
        error) holds only where Milvus is."""
        m = settings.milvus
        uri, user, password = split_userinfo(uri or settings.milvus_uri)
        token = secret(m.token)
        if user or password:
            if token or secret(m.password) or (m.user and m.user != user):
                raise ConfigError(
                    f"the Milvus URI {redact_uri(uri)} was given with credentials while milvus.user/password/token "
                    "are set too; keep one (preferably EMBGUARD_MILVUS__USER and EMBGUARD_MILVUS__PASSWORD)"
                )
        else:
            user, password = m.user, secret(m.password)
        if not token and user:
            token = f"{user}:{password}"
        try:
            # A dedicated channel: pymilvus otherwise shares one per URI, and a shared channel that saw the
            # server go away can stay broken after the server comes back.
            # pymilvus pings every 10 s even with no call in flight; Lite (and servers with the gRPC default
            # policy) answer an idle client's pings with GOAWAY "too_many_pings", logged as an ERROR by gRPC.
            # Pinging only while calls are active keeps idle processes (the daemon between ticks) quiet.
            client = MilvusClient(
                uri=uri,
                token=token,
                db_name=m.db_name,
                timeout=m.timeout_s,
                dedicated=True,
                grpc_options={"grpc.keepalive_permit_without_calls": 0},
            )
            version = client.get_server_version()
        except MilvusException as exc:
            hint = (
                "start the local server with `embguard lite start`"
                if settings.milvus.uri == "lite" and uri == settings.milvus_uri
                else "check that Milvus is running, the host and port, and the credentials"
            )
            reason = scrub(_reason(exc), [s for s in (token, password) if len(s) >= 3])
            raise MilvusUnavailable(f"cannot reach Milvus at {uri}: {reason}; {hint}") from None
        return cls(client, uri, str(version))

    def __repr__(self) -> str:
        return f"Milvus({self.uri!r}, {self.server_version!r})"

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
                f"{', '.join(LITE_SUPPORTED_INDEXES)}, or point milvus.uri at Milvus standalone/cluster"
            )

    def has_collection(self, name: str) -> bool:
        with self._call(f"has_collection({name!r})"):
            return bool(self._client.has_collection(name))

    def list_collections(self) -> list[str]:
        with self._call("list_collections"):
            return list(self._client.list_collections())

    def schema_fields(self, collection: str) -> list[dict[str, Any]]:
        return list(self.describe(collection).get("fields", []))

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
            found += [
                a for a in self._client.list_aliases(collection_name=collection).get("aliases", []) if a not in found
            ]
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
                raise MilvusError(
                    f"no collection or alias named {name!r} on {self.uri}; check the [[collections]] name in the config"
                ) from None

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

    def serving(self, alias: str, rereads: int = 5) -> tuple[str, dict[str, str]]:
        """The collection ``alias`` serves and that collection's properties, read as one state: the alias is read
        again after the properties, because a switch between the two reads (approve and rollback mark the new
        collection, move the alias, then unmark the old one) would pair the old collection with its dual-write mark
        already dropped, and a write would then reach neither side. An alias that moves more than ``rereads`` times
        meanwhile is read as last seen."""
        served = self.resolve(alias)
        for _ in range(rereads):
            props = self.properties(served)
            now = self.resolve(alias)
            if now == served:
                return served, props
            served = now
        return served, self.properties(served)

    def set_properties(self, collection: str, properties: Mapping[str, str]) -> None:
        with self._call(f"alter_collection_properties({collection!r})"):
            self._client.alter_collection_properties(collection, properties=dict(properties))

    def send_write(self, request: Any, timeout_s: float = 30.0) -> None:
        """Send a prepared ``UpsertRequest`` or ``DeleteRequest`` (:func:`embguard.milvus.wire.retarget`).

        The proxy's dual writes repeat an application's write as it was sent, so its fields (dynamic ones, arrays,
        JSON) never go through rows and back. No public pymilvus call takes a request, so this uses the stub of
        the client's own connection: its credentials and database interceptors apply as to any other call."""
        kind = type(request).__name__
        stub = self._client._get_connection()._stub
        send = stub.Upsert if kind == "UpsertRequest" else stub.Delete
        what = f"{kind.removesuffix('Request')}({request.collection_name!r})"
        try:
            res = send(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            if not self.ping():
                raise MilvusUnavailable(f"Milvus at {self.uri} went away during {what}: {exc.details()}") from None
            raise MilvusError(f"{what} failed on {self.uri}: {exc.details()}") from None
        if not status_ok(res.status):
            raise MilvusError(f"{what} failed on {self.uri}: {res.status.reason or res.status.code}")

    def describe(self, collection: str) -> dict[str, Any]:
        with self._call(f"describe_collection({collection!r})"):
            return dict(self._client.describe_collection(collection))

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
        return ids_expr(field, int_keys, ids, what)

    def vector_dimension(self, collection: str, field: str | None = None) -> int:
        """The dimension of ``field`` (or the first float vector field) of a collection."""
        for f in self.schema_fields(collection):
            if f["type"] == DataType.FLOAT_VECTOR and (field is None or f["name"] == field):
                return int((f.get("params") or {})["dim"])
        raise MilvusError(f"collection {collection!r} has no float vector field {field or ''}".rstrip())
