"""What the client remembers about its searches: the sampled query tap and the recent-query table feedback needs.

Every search is offered to the tap with probability ``sampling.query_rate``; the last ``recent_queries`` searches
are kept in memory (vector, hits, where they ran) so feedback can name a query by id, be checked against what
was shown, and force-tap a query that was not sampled (its vector must be on record for training).
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from embguard.client.inputs import ClientMetrics
from embguard.client.tap import tap_row
from embguard.client.tapwriter import QueryTap, TapStats
from embguard.milvus.milvus import Milvus


@dataclass(frozen=True)
class Recent:
    text: str | None
    vector: np.ndarray
    alias: str
    collection: str
    model_id: str
    hits: tuple[dict[str, Any], ...]
    tapped: bool


class Recorder:
    """The tap, its sampling draw and the recent-query table of one client. Thread-safe."""

    def __init__(
        self,
        connect: Callable[[], Milvus],
        *,
        rate: float,
        seed: int | None,
        store_text: bool,
        buffer_size: int,
        flush_interval_s: float,
        recent_max: int,
        metrics: ClientMetrics | None,
    ):
        self.rate = rate
        self.recent_max = recent_max
        self.stats = TapStats()
        self._store_text = store_text
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, Recent] = OrderedDict()
        self._metrics = metrics
        self._tap = QueryTap(
            connect,
            buffer_size=buffer_size,
            flush_interval_s=flush_interval_s,
            stats=self.stats,
            on_written=metrics.written if metrics else None,
            on_dropped=metrics.dropped if metrics else None,
        )

    def flush(self) -> int:
        return self._tap.flush()

    def close(self) -> None:
        self._tap.close()

    def _offer(self, qid: str, r: Recent) -> bool:
        row = tap_row(
            query_id=qid,
            vector=r.vector,
            alias=r.alias,
            collection=r.collection,
            model_id=r.model_id,
            text=r.text,
            store_text=self._store_text,
            hits=r.hits,
        )
        return self._tap.offer(row)

    def searched(
        self,
        alias: str,
        collection: str,
        model_id: str,
        qids: tuple[str, ...],
        texts: Sequence[str] | None,
        qv: np.ndarray,
        raw: list[list[dict[str, Any]]],
    ) -> None:
        """Record a search. Best effort: the application's search has already succeeded."""
        try:
            with self._lock:
                draws = [self._rng.random() < self.rate for _ in qids]
            for i, qid in enumerate(qids):
                hits = tuple({"id": h["id"], "distance": h["distance"]} for h in raw[i])
                r = Recent(texts[i] if texts is not None else None, qv[i], alias, collection, model_id, hits, False)
                if draws[i]:
                    r = replace(r, tapped=self._offer(qid, r))
                    self.stats.add(sampled=1)
                with self._lock:
                    self._recent[qid] = r
                    while len(self._recent) > self.recent_max:
                        self._recent.popitem(last=False)
            self.stats.add(searches=len(qids))
            if self._metrics:
                self._metrics.searched(len(qids), sum(draws))
        except Exception:  # the tap never fails the application
            self.stats.add(dropped_error=len(qids))

    def recent(self, query_id: object) -> Recent | None:
        with self._lock:
            return self._recent.get(query_id) if isinstance(query_id, str) else None

    def force_tap(self, query_id: str, r: Recent) -> None:
        """Tap a query that got feedback but was not sampled: training needs its vector."""
        if r.tapped:
            return
        tapped = self._offer(query_id, r)
        self.stats.add(sampled=1)  # a forced tap is a sampled row: keeps drop ratios honest
        if self._metrics:
            self._metrics.searched(0, 1)
        if tapped:
            with self._lock:
                self._recent[query_id] = replace(r, tapped=True)
