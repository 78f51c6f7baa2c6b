"""Reading and writing rows: the data half of :class:`embguard.milvus.milvus.Milvus` (counts, queries, paging,
searches, writes, load and index state). It calls the pymilvus client the facade holds and never imports
pymilvus itself; errors become embguard's through the facade's ``_call``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from embguard.errors import MilvusError
from embguard.milvus.filters import after_expr

# embguard's own reads (counts, windows, reconcile, feedback) must see writes that came just before them;
# a real server's default (Bounded) may not. Application searches keep the collection's own level.
STRONG = "Strong"


class Rows:
    """Mixed into ``Milvus``; relies on its client, ``_call`` and the schema helpers."""

    _client: Any
    uri: str
    _call: Callable[[str], contextlib.AbstractContextManager[None]]
    primary_key: Callable[[str], tuple[str, bool]]
    ids_filter: Callable[..., str]

    def count(self, collection: str, filter: str = "") -> int:
        res = self._loaded(
            collection,
            f"count({collection!r})",
            lambda: self._client.query(collection, filter=filter, output_fields=["count(*)"], consistency_level=STRONG),
        )
        return int(res[0]["count(*)"])

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

    def iterate(
        self, collection: str, output_fields: Sequence[str], filter: str = "", batch_size: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
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
        self._loaded(
            collection,
            f"query on {collection!r}",
            lambda: self._client.query(
                collection, filter=filter, output_fields=[pk], limit=1, consistency_level=STRONG
            ),
        )
        last: int | str | None = None
        while True:
            after = after_expr(pk, int_keys, last)
            cond = " and ".join(f"({c})" for c in (filter, after) if c)
            # The iterator flags make the server return the *smallest* keys past ``last`` (what query_iterator
            # asks for); without them Lite returns any ``limit`` matching rows, and paging would skip rows.
            rows = self._loaded(
                collection,
                f"query on {collection!r}",
                lambda cond=cond: self._client.query(
                    collection,
                    filter=cond,
                    output_fields=fields,
                    limit=batch_size,
                    consistency_level=STRONG,
                    iterator="True",
                    reduce_stop_for_best="True",
                ),
            )
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

    def search(
        self,
        collection: str,
        vectors: np.ndarray,
        limit: int = 10,
        *,
        anns_field: str | None = None,
        filter: str = "",
        output_fields: Sequence[str] | None = None,
        search_params: Mapping[str, Any] | None = None,
        consistency_level: str | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Top-``limit`` hits per query vector: ``[[{"id", "distance", "entity"}...]...]``.

        ``consistency_level`` defaults to the collection's (Bounded on a server: a search may miss writes of
        the last moments; "Strong" waits for them).
        """
        extra = {"consistency_level": consistency_level} if consistency_level else {}
        data = np.asarray(vectors, dtype=np.float32)
        if data.ndim != 2:
            raise MilvusError(f"search on {collection!r} needs a 2-D array of query vectors, got shape {data.shape}")
        res = self._loaded(
            collection,
            f"search on {collection!r}",
            lambda: self._client.search(
                collection,
                data=data.tolist(),
                limit=limit,
                filter=filter,
                output_fields=list(output_fields or []),
                anns_field=anns_field,
                search_params=dict(search_params or {}),
                **extra,
            ),
        )
        return [[dict(hit) for hit in hits] for hits in res]

    def query(
        self,
        collection: str,
        filter: str = "",
        output_fields: Sequence[str] | None = None,
        ids: Sequence[int | str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
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
