"""Creating collections: the schema half of :class:`embguard.milvus.milvus.Milvus` (managed collections, embguard's
bookkeeping tables, and a versioned clone of a served collection for the swap). Like :mod:`embguard.milvus.rows` it
never imports pymilvus: it uses the client and the ``DataType`` enum the facade holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from embguard.config.settings import CollectionSettings
from embguard.milvus.indexes import index_params

TEXT_MAX_LENGTH = 65535
# describe_index keys that are not index build parameters
_INDEX_INFO_KEYS = frozenset(
    (
        "index_type",
        "metric_type",
        "field_name",
        "index_name",
        "total_rows",
        "indexed_rows",
        "pending_index_rows",
        "state",
    )
)


class Schemas:
    """Mixed into ``Milvus``; relies on its client, its ``DataType``, ``_call`` and ``describe``."""

    _client: Any
    _types: Any
    _call: Callable[[str], contextlib.AbstractContextManager[None]]
    check_index_type: Callable[[str], None]
    describe: Callable[[str], dict[str, Any]]

    def create_collection(
        self,
        spec: CollectionSettings,
        dimension: int,
        name: str | None = None,
        properties: Mapping[str, str] | None = None,
        id_type: str = "int",
        extra_text_fields: Mapping[str, int] | None = None,
    ) -> str:
        """Create a collection for ``spec`` (id, vector, text, optional timestamp) and its vector index.

        ``extra_text_fields`` maps further VARCHAR field names to their maximum length.
        """
        name = name or spec.name
        self.check_index_type(spec.index_type)
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        if id_type == "int":
            schema.add_field(spec.id_field, self._types.INT64, is_primary=True)
        else:
            schema.add_field(spec.id_field, self._types.VARCHAR, is_primary=True, max_length=512)
        schema.add_field(spec.vector_field, self._types.FLOAT_VECTOR, dim=dimension)
        if spec.text_field:
            schema.add_field(spec.text_field, self._types.VARCHAR, max_length=TEXT_MAX_LENGTH)
        if spec.timestamp_field:
            schema.add_field(spec.timestamp_field, self._types.INT64)
        for fname, max_length in (extra_text_fields or {}).items():
            schema.add_field(fname, self._types.VARCHAR, max_length=max_length)
        index = self._client.prepare_index_params()
        params = index_params(spec.index_type, dimension, spec.index_params)
        index.add_index(
            field_name=spec.vector_field, index_type=spec.index_type, metric_type=spec.metric_type, params=params
        )
        with self._call(f"create_collection({name!r})"):
            self._client.create_collection(name, schema=schema, index_params=index, properties=dict(properties or {}))
        return name

    def create_table(
        self,
        name: str,
        fields: Sequence[tuple[str, str, int]],
        primary: str,
        vector: tuple[str, int],
        properties: Mapping[str, str] | None = None,
    ) -> str:
        """Create an embguard bookkeeping collection (tap, feedback).

        ``fields`` are ``(name, kind, max_length)`` with kind one of varchar, int64, float, json; the
        primary key is a VARCHAR. Milvus requires a vector field in every collection, so one is always
        present (``vector``: name and dimension) with a FLAT index, which costs nothing until searched.
        """
        kinds = {
            "varchar": self._types.VARCHAR,
            "int64": self._types.INT64,
            "float": self._types.FLOAT,
            "json": self._types.JSON,
        }
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        for fname, kind, max_length in fields:
            kwargs: dict[str, Any] = {"is_primary": fname == primary}
            if kind == "varchar":
                kwargs["max_length"] = max_length
            schema.add_field(fname, kinds[kind], **kwargs)
        schema.add_field(vector[0], self._types.FLOAT_VECTOR, dim=vector[1])
        index = self._client.prepare_index_params()
        index.add_index(field_name=vector[0], index_type="FLAT", metric_type="COSINE")
        with self._call(f"create_collection({name!r})"):
            self._client.create_collection(name, schema=schema, index_params=index, properties=dict(properties or {}))
        return name

    def clone_collection(
        self,
        source: str,
        target: str,
        properties: Mapping[str, str],
        index_params: Mapping[str, Any] | None = None,
        dimension: int | None = None,
    ) -> str:
        """Create ``target`` with ``source``'s fields, vector index (type, metric, params) and ``properties``.

        ``dimension`` replaces the vector dimension when the new model's differs.
        """
        desc = self.describe(source)
        schema = self._client.create_schema(
            auto_id=bool(desc.get("auto_id")), enable_dynamic_field=bool(desc.get("enable_dynamic_field"))
        )
        vector_fields = []
        for f in desc["fields"]:
            params = dict(f.get("params") or {})
            kwargs: dict[str, Any] = {
                k: v for k, v in params.items() if k in ("dim", "max_length", "element_type", "max_capacity")
            }
            if f["type"] == self._types.FLOAT_VECTOR:
                vector_fields.append(f["name"])
                if dimension:
                    kwargs["dim"] = dimension
            if f.get("is_primary"):
                kwargs["is_primary"] = True
            if f.get("nullable"):
                kwargs["nullable"] = True
            schema.add_field(f["name"], f["type"], **kwargs)
        index = self._client.prepare_index_params()
        with self._call(f"describe indexes of {source!r}"):
            for name in self._client.list_indexes(source):
                info = dict(self._client.describe_index(source, name))
                if info.get("field_name") not in vector_fields:
                    continue
                params = {k: v for k, v in info.items() if k not in _INDEX_INFO_KEYS}
                params.update(index_params or {})
                self.check_index_type(str(info["index_type"]))
                index.add_index(
                    field_name=info["field_name"],
                    index_type=info["index_type"],
                    metric_type=info["metric_type"],
                    params=params,
                )
        with self._call(f"create_collection({target!r})"):
            self._client.create_collection(target, schema=schema, index_params=index, properties=dict(properties))
        return target
