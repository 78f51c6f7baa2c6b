"""An in-memory Milvus behind the interface of :class:`embguard.milvus.milvus.Milvus`, for unit tests of the
orchestration (gc, rollback, abort, managed collections): the real logic runs, only the storage is a dict.

It keeps the facade's observable behaviour, which ``milvus_contract_scenario`` pins down and
tests/integration/test_fake_milvus_contract.py runs against a real Milvus too:

- an alias resolves to its collection, a collection to itself, anything else is a ``MilvusError`` naming it;
- ``properties`` leaves out empty values, ``drop_properties`` removes keys, ``set_properties`` merges;
- ``drop_collection`` drops the collection's aliases with it; creating an existing alias, or altering a missing one,
  fails;
- ids are validated by the primary key's type before anything is touched (``check_ids``);
- ``down = True`` makes every call raise ``MilvusUnavailable``, as a server that went away.

Searches, indexes and the raw pymilvus ``client`` are not modelled: a test that needs them is an integration test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymilvus import DataType

from embguard.config.settings import CollectionSettings
from embguard.errors import MilvusError, MilvusUnavailable
from embguard.milvus.filters import check_ids, ids_expr


@dataclass
class FakeCollection:
    name: str
    fields: list[dict[str, Any]]
    properties: dict[str, str] = field(default_factory=dict)
    rows: dict[int | str, dict[str, Any]] = field(default_factory=dict)


class FakeMilvus:
    """In-memory stand-in for ``Milvus`` (same method names, arguments and errors for what it models)."""

    def __init__(self, uri: str = "fake://milvus", server_version: str = "fake-2.4") -> None:
        self.uri = uri
        self.server_version = server_version
        self.collections: dict[str, FakeCollection] = {}
        self.aliases: dict[str, str] = {}  # alias -> collection
        self.down = False
        self.calls: list[str] = []  # every method called, in order: what the orchestration asked of Milvus

    def __repr__(self) -> str:
        return f"FakeMilvus({self.uri!r}, {len(self.collections)} collections)"

    # --- plumbing -----------------------------------------------------------------------------------------------

    def _enter(self, what: str) -> None:
        self.calls.append(what)
        if self.down:
            raise MilvusUnavailable(f"Milvus at {self.uri} went away during {what}: connection refused")

    def _get(self, name: str, what: str) -> FakeCollection:
        self._enter(what)
        c = self.collections.get(self.aliases.get(name, name))
        if c is None:
            raise MilvusError(f"{what} failed on {self.uri}: collection not found[collection={name}]")
        return c

    @property
    def is_lite(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def ping(self) -> bool:
        return not self.down

    def check_index_type(self, index_type: str) -> None:
        pass

    # --- collections, aliases, properties -----------------------------------------------------------------------

    def has_collection(self, name: str) -> bool:
        self._enter(f"has_collection({name!r})")
        return name in self.collections

    def list_collections(self) -> list[str]:
        self._enter("list_collections")
        return list(self.collections)

    def create_collection(
        self,
        spec: CollectionSettings,
        dimension: int,
        name: str | None = None,
        properties: Mapping[str, str] | None = None,
        id_type: str = "int",
        extra_text_fields: Mapping[str, int] | None = None,
    ) -> str:
        name = name or spec.name
        self._enter(f"create_collection({name!r})")
        if name in self.collections or name in self.aliases:
            raise MilvusError(f"create_collection({name!r}) failed on {self.uri}: collection already exists")
        pk_type = DataType.INT64 if id_type == "int" else DataType.VARCHAR
        fields: list[dict[str, Any]] = [
            {"name": spec.id_field, "type": pk_type, "is_primary": True, "params": {}},
            {"name": spec.vector_field, "type": DataType.FLOAT_VECTOR, "params": {"dim": dimension}},
        ]
        if spec.text_field:
            fields.append({"name": spec.text_field, "type": DataType.VARCHAR, "params": {}})
        if spec.timestamp_field:
            fields.append({"name": spec.timestamp_field, "type": DataType.INT64, "params": {}})
        for extra in extra_text_fields or {}:
            fields.append({"name": extra, "type": DataType.VARCHAR, "params": {}})
        self.collections[name] = FakeCollection(name, fields, dict(properties or {}))
        return name

    def drop_collection(self, name: str) -> None:
        self._get(name, f"drop_collection({name!r})")
        if name not in self.collections:
            raise MilvusError(f"drop_collection({name!r}) failed on {self.uri}: {name!r} is an alias")
        for alias in self.aliases_of(name):
            del self.aliases[alias]
        del self.collections[name]

    def aliases_of(self, collection: str) -> list[str]:
        self._get(collection, f"describe_collection({collection!r})")
        return [a for a, c in self.aliases.items() if c == collection]

    def resolve(self, name: str) -> str:
        self._enter(f"describe_collection({name!r})")
        target = self.aliases.get(name, name)
        if target not in self.collections:
            raise MilvusError(
                f"no collection or alias named {name!r} on {self.uri}; check the [[collections]] name in the config"
            )
        return target

    def create_alias(self, collection: str, alias: str) -> None:
        what = f"create_alias({alias!r} -> {collection!r})"
        self._get(collection, what)
        if alias in self.aliases or alias in self.collections:
            raise MilvusError(f"{what} failed on {self.uri}: alias or collection {alias!r} already exists")
        self.aliases[alias] = collection

    def alter_alias(self, collection: str, alias: str) -> None:
        what = f"alter_alias({alias!r} -> {collection!r})"
        self._get(collection, what)
        if alias not in self.aliases:
            raise MilvusError(f"{what} failed on {self.uri}: alias {alias!r} does not exist")
        self.aliases[alias] = collection

    def properties(self, collection: str) -> dict[str, str]:
        c = self._get(collection, f"describe_collection({collection!r})")
        return {k: v for k, v in c.properties.items() if v}

    def set_properties(self, collection: str, properties: Mapping[str, str]) -> None:
        c = self._get(collection, f"alter_collection_properties({collection!r})")
        c.properties.update({str(k): str(v) for k, v in properties.items()})

    def drop_properties(self, collection: str, keys: Sequence[str]) -> None:
        c = self._get(collection, f"drop_collection_properties({collection!r})")
        for k in keys:
            c.properties.pop(k, None)

    def describe(self, collection: str) -> dict[str, Any]:
        c = self._get(collection, f"describe_collection({collection!r})")
        return {
            "collection_name": c.name,
            "fields": [dict(f) for f in c.fields],
            "properties": dict(c.properties),
            "aliases": [a for a, t in self.aliases.items() if t == c.name],
        }

    def schema_fields(self, collection: str) -> list[dict[str, Any]]:
        return list(self.describe(collection)["fields"])

    def primary_key(self, collection: str) -> tuple[str, bool]:
        for f in self.schema_fields(collection):
            if f.get("is_primary"):
                return str(f["name"]), f["type"] == DataType.INT64
        raise MilvusError(f"collection {collection!r} on {self.uri} has no primary key field")

    def ids_filter(self, collection: str, ids: Any, what: str = "ids") -> str:
        field, int_keys = self.primary_key(collection)
        return ids_expr(field, int_keys, ids, what)

    def vector_dimension(self, collection: str, field: str | None = None) -> int:
        for f in self.schema_fields(collection):
            if f["type"] == DataType.FLOAT_VECTOR and (field is None or f["name"] == field):
                return int(f["params"]["dim"])
        raise MilvusError(f"collection {collection!r} has no float vector field {field or ''}".rstrip())

    # --- rows ---------------------------------------------------------------------------------------------------

    def _write(self, collection: str, rows: Sequence[Mapping[str, Any]], what: str) -> int:
        # An insert of a key already present replaces it here; Milvus would keep both, which embguard never relies on.
        c = self._get(collection, f"{what} into {collection!r}")
        pk, int_keys = self.primary_key(collection)
        keys = check_ids([r[pk] for r in rows], int_keys)
        names = {f["name"] for f in c.fields}
        for key, row in zip(keys, rows, strict=True):
            unknown = set(row) - names
            if unknown:
                raise MilvusError(f"{what} into {collection!r} failed on {self.uri}: unknown fields {sorted(unknown)}")
            c.rows[key] = dict(row)
        return len(rows)

    def insert(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> int:
        return self._write(collection, rows, "insert") if rows else 0

    def upsert(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> int:
        return self._write(collection, rows, "upsert") if rows else 0

    def delete(self, collection: str, ids: Sequence[int | str] | None = None, filter: str = "") -> None:
        if ids is None:
            raise MilvusError(f"the fake Milvus deletes by ids only (asked for filter {filter!r} on {collection!r})")
        ids = list(ids) if isinstance(ids, (list, tuple)) else ids
        c = self._get(collection, f"delete from {collection!r}")
        _, int_keys = self.primary_key(collection)
        for key in check_ids(ids, int_keys):
            c.rows.pop(key, None)

    def count(self, collection: str, filter: str = "") -> int:
        if filter:
            raise MilvusError(f"the fake Milvus counts whole collections only (asked for filter {filter!r})")
        return len(self._get(collection, f"count({collection!r})").rows)

    def ensure_loaded(self, collection: str) -> None:
        self._get(collection, f"load_collection({collection!r})")

    def flush(self, collection: str) -> None:
        self._get(collection, f"flush({collection!r})")

    def wait_index(self, collection: str, field: str, timeout_s: float = 600.0) -> None:
        self._get(collection, f"describe_index({collection!r})")

    def query(
        self,
        collection: str,
        filter: str = "",
        output_fields: Sequence[str] | None = None,
        ids: Sequence[int | str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        c = self._get(collection, f"query on {collection!r}")
        pk, int_keys = self.primary_key(collection)
        if filter:
            raise MilvusError(f"the fake Milvus queries by ids only (asked for filter {filter!r})")
        if ids is not None:
            ids = list(ids) if isinstance(ids, (list, tuple)) else ids
            keys = check_ids(ids, int_keys)
        else:
            keys = sorted(c.rows)
        fields = [pk, *[f for f in (output_fields or []) if f != pk]]
        out = [{f: c.rows[k][f] for f in fields if f in c.rows[k]} for k in keys if k in c.rows]
        return out[:limit] if limit is not None else out

    def iterate(
        self, collection: str, output_fields: Sequence[str], filter: str = "", batch_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        rows = self.query(collection, filter, output_fields)
        for i in range(0, len(rows), batch_size):
            yield rows[i : i + batch_size]


def milvus_contract_scenario(m: Any, spec: CollectionSettings, prefix: str = "fk") -> None:
    """What the orchestration relies on, asserted against ``m`` (a ``FakeMilvus`` or a real ``Milvus``): the unit
    test runs it on the fake, the integration test on each real backend, so the fake cannot drift from the facade.
    Leaves nothing behind on a real Milvus."""
    from embguard.errors import InvalidInput
    from embguard.milvus.names import CREATED_PROPERTY

    v1, v2, alias = f"{prefix}__v1", f"{prefix}__v2", prefix
    created = str(int(time.time()))
    try:
        assert m.create_collection(spec, 4, name=v1, properties={CREATED_PROPERTY: created}) == v1
        m.create_alias(v1, alias)
        assert m.has_collection(v1) and not m.has_collection(f"{prefix}__none")
        assert v1 in m.list_collections() and alias not in m.list_collections()
        assert m.resolve(alias) == v1 and m.resolve(v1) == v1
        try:
            m.resolve(f"{prefix}__none")
            raise AssertionError("resolving an unknown name must fail")
        except MilvusError as exc:
            assert not isinstance(exc, MilvusUnavailable) and f"{prefix}__none" in str(exc)
        assert m.aliases_of(v1) == [alias]

        assert m.properties(v1) == {CREATED_PROPERTY: created}
        m.set_properties(v1, {"embguard.dual_write": v2})
        assert m.properties(v1) == {CREATED_PROPERTY: created, "embguard.dual_write": v2}
        m.drop_properties(v1, ["embguard.dual_write"])
        assert m.properties(v1) == {CREATED_PROPERTY: created}

        assert m.primary_key(v1) == (spec.id_field, True)
        assert m.vector_dimension(v1) == 4
        assert m.describe(v1)["collection_name"] == v1

        rows = [{"id": i, "vector": [float(i), 1.0, 0.0, 0.0], "text": f"doc {i}"} for i in range(1, 6)]
        assert m.insert(v1, rows) == 5
        assert m.count(v1) == 5
        m.upsert(v1, [{"id": 2, "vector": [2.0, 1.0, 0.0, 0.0], "text": "edited"}])
        m.delete(v1, [4, 5])
        assert m.count(v1) == 3
        got = sorted(m.query(v1, output_fields=["text"], ids=[1, 2, 4]), key=lambda r: r["id"])
        assert got == [{"id": 1, "text": "doc 1"}, {"id": 2, "text": "edited"}]
        assert [r["id"] for b in m.iterate(v1, ["id"], batch_size=2) for r in b] == [1, 2, 3]
        for bad in (["1"], "1", [True]):
            try:
                m.delete(v1, bad)
                raise AssertionError(f"ids {bad!r} must be refused before anything is deleted")
            except InvalidInput:
                pass
        assert m.count(v1) == 3

        m.create_collection(spec, 4, name=v2)
        try:
            # Only a clash is asserted: the standalone server accepts re-creating an alias to the same collection.
            m.create_alias(v2, alias)
            raise AssertionError("creating an alias that names another collection must fail")
        except MilvusError:
            pass
        assert m.resolve(alias) == v1
        m.alter_alias(v2, alias)
        assert m.resolve(alias) == v2 and m.aliases_of(v1) == [] and m.aliases_of(v2) == [alias]
        try:
            m.alter_alias(v1, f"{prefix}_no_such_alias")
            raise AssertionError("altering an alias that does not exist must fail")
        except MilvusError:
            pass
        m.drop_collection(v2)  # its alias goes with it
        assert not m.has_collection(v2)
        try:
            m.resolve(alias)
            raise AssertionError("an alias must go with its collection")
        except MilvusError:
            pass
    finally:
        for name in (v1, v2):
            if m.has_collection(name):
                m.drop_collection(name)
