"""The query tap's writer (used by the Client and the proxy) writes every row it accepted exactly once, however
many batches one flush spans, and keeps for a retry exactly what a failed write did not store."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from embguard.client.tap import new_id, tap_row
from embguard.client.tapwriter import QueryTap


class RecordingMilvus:
    """What the writer calls on Milvus, recording each insert; ``fail_on`` makes those insert calls raise."""

    def __init__(self, fail_on: Sequence[int] = ()) -> None:
        self.inserted: list[dict[str, Any]] = []
        self.calls = 0
        self.fail_on = set(fail_on)

    def has_collection(self, name: str) -> bool:
        return True

    def schema_fields(self, name: str) -> list[dict[str, Any]]:
        return [{"name": "query_id"}, {"name": "hits"}]

    def insert(self, collection: str, rows: Sequence[Mapping[str, Any]]) -> int:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("insert refused")
        assert rows, "an empty insert"
        self.inserted.extend(dict(r) for r in rows)
        return len(rows)

    def ping(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def set_properties(self, collection: str, properties: Mapping[str, str]) -> None:
        pass


def rows(n: int, alias: str) -> list[dict[str, Any]]:
    vec = np.ones(8, np.float32)
    return [
        tap_row(
            query_id=new_id(),
            vector=vec,
            alias=alias,
            collection=alias,
            model_id="m",
            text=None,
            store_text=False,
            hits=[{"id": 1, "distance": 0.5}],
        )
        for _ in range(n)
    ]


def offered_in_one_go(tap: QueryTap, offered: list[dict[str, Any]]) -> None:
    """Offer every row before any flush can take some: the writer's thread wakes at a batch's worth of rows, and
    would otherwise split them over several flushes at random. (The lock is the writer's own, held as a flush
    holds it.)"""
    with tap._flush_lock:
        assert all(tap.offer(r) for r in offered)


def test_one_flush_of_many_batches_writes_every_row_once() -> None:
    milvus, flushes = RecordingMilvus(), []
    tap = QueryTap(lambda: milvus, flush_interval_s=3600, batch_size=500, on_written=flushes.append)
    offered = rows(1200, "a") + rows(900, "b")
    offered_in_one_go(tap, offered)
    tap.flush()  # this call or the writer's thread, whichever takes the lock first, writes all of it
    tap.close()
    assert flushes == [2100]
    assert Counter(r["query_id"] for r in milvus.inserted) == Counter(r["query_id"] for r in offered)


def test_a_failed_batch_is_kept_and_written_once_on_the_next_flush() -> None:
    milvus, flushes = RecordingMilvus(fail_on=[2]), []  # the second 500-row insert fails
    tap = QueryTap(lambda: milvus, flush_interval_s=3600, batch_size=500, on_written=flushes.append)
    offered = rows(1300, "a")
    offered_in_one_go(tap, offered)
    tap.flush()
    tap.flush()
    tap.close()
    assert flushes == [500, 800]  # the first chunk is stored and counted; the rest waits for the next flush
    assert sorted(r["query_id"] for r in milvus.inserted) == sorted(r["query_id"] for r in offered)
