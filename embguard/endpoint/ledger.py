"""Which model made each vector the endpoint returned, for a while: what lets the proxy route a search exactly.

An application embeds (here) and then searches (through the proxy) in two calls. When approve or rollback switches
an alias between them, the vector was made by one collection's model and would be searched against the other's.
The endpoint keeps ``fingerprint(vector) -> model id`` for ``keep_s``; during a switch the proxy asks
(``POST /v1/vectors/lookup``) and sends each search to the collection of the model that made its vector
(:mod:`embguard.proxy.router`).

A fingerprint is :func:`embguard.milvus.wire.fingerprint` of the vector's float32 bytes.
"""

from __future__ import annotations

import collections
import threading
import time

import numpy as np

from embguard.milvus.wire import fingerprint


class VectorLedger:
    """``fingerprint -> model id`` for the vectors of the last ``keep_s`` seconds, at most ``max_entries``."""

    def __init__(self, keep_s: float, max_entries: int = 1_000_000):
        self.keep_s = keep_s
        self.max_entries = max_entries
        self._models: dict[bytes, tuple[str, float]] = {}
        self._order: collections.deque[tuple[float, bytes]] = collections.deque()
        self._lock = threading.Lock()

    def record(self, model_id: str, vectors: np.ndarray) -> None:
        rows = np.ascontiguousarray(vectors, dtype="<f4")
        now = time.monotonic()
        prints = [fingerprint(row.tobytes()) for row in rows]
        with self._lock:
            for fp in prints:
                self._models[fp] = (model_id, now)
                self._order.append((now, fp))
            self._expire(now)

    def lookup(self, prints: list[bytes]) -> list[str | None]:
        with self._lock:
            self._expire(time.monotonic())
            found = [self._models.get(fp) for fp in prints]
        return [f[0] if f else None for f in found]

    def __len__(self) -> int:
        return len(self._models)

    def _expire(self, now: float) -> None:
        order, models = self._order, self._models
        while order and (now - order[0][0] > self.keep_s or len(order) > self.max_entries):
            at, fp = order.popleft()
            entry = models.get(fp)
            if entry is not None and entry[1] == at:  # a vector made again since keeps its newer entry
                del models[fp]
