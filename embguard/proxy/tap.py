"""The proxy's tap: forwarded calls' bytes in, the Client tap's rows out, all off the request path.

``wants`` (a per-call draw) and ``offer`` (a ``put_nowait`` into a bounded queue; a full queue drops the call
and counts it) are the only calls on the relay's event loop. A worker thread decodes Search/HybridSearch calls
on watched collections (``collections[]``, in ``milvus.db_name``; each call drawn at ``sampling.query_rate`` in
``wants``) and hands the rows to the same
:class:`~embguard.client.tapwriter.QueryTap` the Client uses, so the daemon reads proxy and Client queries
alike. Insert, Upsert and Delete are counted per collection. Resolving an alias to the collection it serves and
that collection's model id takes Milvus calls, so it is cached for a few seconds; a collection that records no
model (its vectors come from the application) is tapped under :func:`~embguard.milvus.names.app_model_id`.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from embguard.client.tap import finite_vector, new_id, tap_row
from embguard.client.tapwriter import QueryTap
from embguard.config.settings import Settings
from embguard.milvus.milvus import Milvus, recorded_model_id
from embguard.milvus.wire import SEARCHES, WRITES, SearchCall, decode_search, decode_write

log = logging.getLogger("embguard.proxy")

RESOLVE_TTL_S = 5.0


@dataclass(frozen=True)
class Served:
    collection: str
    model_id: str


class ProxyCounters:
    """What the tap did, as callbacks the metrics module implements (a plain object in tests)."""

    def tapped(self, collection: str, n: int) -> None: ...
    def dropped(self, reason: str, n: int) -> None: ...
    def documents(self, collection: str, op: str, n: int) -> None: ...


class ProxyTap:
    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Milvus],
        counters: ProxyCounters | None = None,
        queue_size: int = 10_000,
        seed: int | None = None,
    ):
        self.settings = settings
        self.counters = counters or ProxyCounters()
        self._connect = connect
        self._milvus: Milvus | None = None
        self._db = settings.milvus.db_name or "default"
        self._watched = {c.name for c in settings.collections}
        self._rate = settings.sampling.query_rate
        self._rng = random.Random(seed)
        self._served: dict[str, tuple[float, Served]] = {}
        self._queue: queue.Queue[tuple[str, bytes, bytes, str]] = queue.Queue(maxsize=queue_size)
        s = settings.sampling
        self.writer = QueryTap(
            connect,
            buffer_size=s.tap_buffer_size,
            flush_interval_s=s.tap_flush_interval_s,
            on_dropped=lambda reason, n: self.counters.dropped(reason, n),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embguard-proxy-tap", daemon=True)
        self._thread.start()

    def wants(self, method: str) -> bool:
        """Asked by the forwarder when a call's headers arrive, before its body is read: a search is drawn here,
        per call, at the sampling rate (an unsampled call costs one random number, and its bytes are not kept;
        every query of a sampled call is tapped, so each query is still tapped with probability
        ``sampling.query_rate``); writes are always wanted (their rows are counted)."""
        if method in SEARCHES:
            return self._rng.random() < self._rate
        return method in WRITES

    def offer(self, method: str, request: bytes, response: bytes, metadata: tuple[tuple[str, str], ...]) -> None:
        """On the relay's event loop: never raises, never waits (a full queue drops the call and counts it)."""
        db = next((v for k, v in metadata if k == "dbname"), "")
        try:
            self._queue.put_nowait((method, request, response, db))
        except queue.Full:
            self.counters.dropped("queue_full", 1)

    def _run(self) -> None:
        while not self._stop.is_set() or not self._queue.empty():
            try:
                method, request, response, db = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._handle(method, request, response, db)
            except Exception as exc:  # a call the tap cannot read is counted, never fatal
                self.counters.dropped("decode_error", 1)
                log.debug("proxy tap: could not read a %s call: %s", method, exc)
            finally:
                self._queue.task_done()

    def _watched_name(self, db: str, collection: str) -> bool:
        return (db or "default") == self._db and collection in self._watched

    def _handle(self, method: str, request: bytes, response: bytes, db: str) -> None:
        if method in WRITES:
            write = decode_write(method, request, response, db)
            if write is not None and self._watched_name(write.db_name, write.collection):
                self.counters.documents(write.collection, write.op, write.rows)
            return
        call = decode_search(method, request, response, db)
        if call is None or not self._watched_name(call.db_name, call.collection):
            return
        if call.skipped:
            self.counters.dropped(call.skipped, max(len(call.hits), 1))
            return
        self._tap(call)

    def _tap(self, call: SearchCall) -> None:
        draws = range(len(call.vectors))  # the call was drawn in wants()
        served = self._resolve(call.collection)
        if served is None:
            self.counters.dropped("milvus_unavailable", len(draws))
            return
        offered = 0
        for i in draws:
            if not finite_vector(call.vectors[i]):
                self.counters.dropped("invalid_vector", 1)
                continue
            row = tap_row(
                query_id=new_id(),
                vector=call.vectors[i],
                alias=call.collection,
                collection=served.collection,
                model_id=served.model_id,
                text=None,
                store_text=False,
                hits=[{"id": h, "distance": s} for h, s in call.hits[i]],
            )
            offered += self.writer.offer(row)
        if offered:
            self.counters.tapped(call.collection, offered)

    def _resolve(self, name: str) -> Served | None:
        cached = self._served.get(name)
        if cached and time.monotonic() - cached[0] < RESOLVE_TTL_S:
            return cached[1]
        try:
            milvus = self._milvus or self._connect()
            self._milvus = milvus
            collection = milvus.resolve(name)
            model_id = recorded_model_id(milvus.properties(collection), collection)
        except Exception as exc:
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None
            log.debug("proxy tap: cannot resolve %s: %s", name, exc)
            return cached[1] if cached else None
        served = Served(collection, model_id)
        self._served[name] = (time.monotonic(), served)
        return served

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self.writer.pending

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until the queued calls are decoded, then write what the writer holds (tests, shutdown)."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        self.writer.flush()

    def close(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        self.writer.close(timeout_s)
        if self._milvus is not None:
            self._milvus.close()
