"""The query tap and the feedback log: what the application-side client records for the sidecar.

Milvus keeps no log of the searches it serves, so the client records a sample of them into bookkeeping
collections in the same Milvus, where a sidecar in another process can read them. The tap must never
fail, block or slow the application: rows go into a bounded in-memory queue (``put_nowait``; a full
queue drops the row and counts it) and a background thread writes them in batches on its own connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import MilvusError
from .milvus import Milvus

log = logging.getLogger(__name__)

TAP_COLLECTION = "embguard_queries"
FEEDBACK_COLLECTION = "embguard_feedback"
SIGNALS = ("click", "positive", "negative")
_MAX_TEXT = 8192


def tap_collection_name(dim: int, base_dim: int = 384) -> str:
    """``embguard_queries`` for the default model's dimension; other dimensions get their own collection,
    because a Milvus vector field has one fixed dimension."""
    return TAP_COLLECTION if dim == base_dim else f"{TAP_COLLECTION}_d{dim}"


TAP_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("query_id", "varchar", 64),
    ("ts_ms", "int64", 0),
    ("alias", "varchar", 255),
    ("collection", "varchar", 255),
    ("model_id", "varchar", 255),
    ("text", "varchar", _MAX_TEXT),
    ("text_hash", "varchar", 64),
    ("top_ids", "json", 0),
    ("top_scores", "json", 0),
)
FEEDBACK_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("feedback_id", "varchar", 64),
    ("query_id", "varchar", 64),
    ("doc_id", "varchar", 512),
    ("alias", "varchar", 255),
    ("collection", "varchar", 255),
    ("model_id", "varchar", 255),
    ("signal", "varchar", 16),
    ("weight", "float", 0),
    ("ts_ms", "int64", 0),
    ("query_text", "varchar", _MAX_TEXT),
)


def ensure_tap_collection(milvus: Milvus, dim: int) -> str:
    name = tap_collection_name(dim)
    if not milvus.has_collection(name):
        try:
            milvus.create_table(name, TAP_FIELDS, primary="query_id", vector=("vector", dim),
                                properties={"embguard.kind": "query_tap"})
        except MilvusError:
            if not milvus.has_collection(name):  # another process created it first: fine
                raise
    return name


def ensure_feedback_collection(milvus: Milvus) -> str:
    if not milvus.has_collection(FEEDBACK_COLLECTION):
        try:
            # The vector is a placeholder: Milvus requires one vector field per collection.
            milvus.create_table(FEEDBACK_COLLECTION, FEEDBACK_FIELDS, primary="feedback_id", vector=("_v", 2),
                                properties={"embguard.kind": "feedback"})
        except MilvusError:
            if not milvus.has_collection(FEEDBACK_COLLECTION):
                raise
    return FEEDBACK_COLLECTION


def text_hash(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).lower().encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class TapStats:
    """Counters of the tap; read them or pass a prometheus registry to the client."""

    searches: int = 0
    sampled: int = 0
    written: int = 0
    dropped_full: int = 0
    dropped_error: int = 0
    flush_errors: int = 0
    last_error: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_error

    def snapshot(self) -> dict[str, int | str]:
        with self._lock:
            return {k: getattr(self, k) for k in ("searches", "sampled", "written", "dropped_full",
                                                   "dropped_error", "flush_errors", "last_error")}


class QueryTap:
    """A bounded buffer of tap rows and the thread that writes them.

    ``offer`` is the only call on the application's search path: it never raises and never waits.
    A batch whose write fails is retried on the next flush while it fits the buffer's budget, then
    dropped and counted; the application never sees the failure.
    """

    def __init__(self, connect: Callable[[], Milvus], buffer_size: int = 10_000, flush_interval_s: float = 1.0,
                 batch_size: int = 500, on_written: Callable[[int], None] | None = None,
                 on_dropped: Callable[[str, int], None] | None = None, stats: TapStats | None = None):
        self._connect = connect
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=buffer_size)
        self._retry: list[dict[str, Any]] = []
        self._buffer_size = buffer_size
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._milvus: Milvus | None = None
        self._ready: set[str] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._on_written = on_written
        self._on_dropped = on_dropped
        self.stats = stats or TapStats()
        self._thread = threading.Thread(target=self._run, name="embguard-tap", daemon=True)
        self._thread.start()

    def offer(self, row: dict[str, Any]) -> bool:
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._drop("buffer_full", 1)
            return False
        if self._queue.qsize() >= self._batch_size:
            self._wake.set()
        return True

    def _drop(self, reason: str, n: int) -> None:
        self.stats.add(**{"dropped_full" if reason == "buffer_full" else "dropped_error": n})
        if self._on_dropped:
            try:
                self._on_dropped(reason, n)
            except Exception:  # noqa: BLE001 - a metrics callback must not break the tap
                pass

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._flush_interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is buffered now; returns rows written. Safe to call from any thread."""
        with self._flush_lock:
            rows = self._retry
            self._retry = []
            while len(rows) < self._buffer_size:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not rows:
                return 0
            written = 0
            by_coll: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                by_coll.setdefault(r["_collection"], []).append(r)
            for coll, group in by_coll.items():
                try:
                    milvus = self._milvus or self._connect()
                    self._milvus = milvus
                    if coll not in self._ready:
                        ensure_tap_collection(milvus, len(group[0]["vector"]))
                        self._ready.add(coll)
                    for i in range(0, len(group), self._batch_size):
                        chunk = [{k: v for k, v in r.items() if k != "_collection"}
                                 for r in group[i:i + self._batch_size]]
                        milvus.insert(coll, chunk)
                        written += len(chunk)
                    group = []
                except Exception as exc:  # noqa: BLE001 - the tap absorbs every failure
                    self.stats.add(flush_errors=1)
                    self.stats.last_error = str(exc)[:300]
                    log.warning("query tap: writing %d row(s) to %s failed: %s", len(group), coll, exc)
                    self._ready.discard(coll)
                    if self._milvus is not None and not self._milvus.ping():
                        self._milvus.close()
                        self._milvus = None
                    room = self._buffer_size - self._queue.qsize() - len(self._retry)
                    keep = group[-max(room, 0):] if room > 0 else []
                    self._retry.extend(keep)
                    if len(group) - len(keep):
                        self._drop("write_error", len(group) - len(keep))
            if written:
                self.stats.add(written=written)
                if self._on_written:
                    try:
                        self._on_written(written)
                    except Exception:  # noqa: BLE001
                        pass
            return written

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the thread and flush what is left (bounded by ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout_s)
        deadline = time.monotonic() + timeout_s
        while (self._queue.qsize() or self._retry) and time.monotonic() < deadline:
            before = self.stats.flush_errors
            self.flush()
            if self.stats.flush_errors > before:
                time.sleep(0.2)
        left = self._queue.qsize() + len(self._retry)
        if left:
            self._drop("write_error", left)
        if self._milvus is not None:
            self._milvus.close()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._retry)


def tap_row(*, query_id: str, vector: np.ndarray, alias: str, collection: str, model_id: str, text: str | None,
            store_text: bool, hits: Sequence[Mapping[str, Any]], ts_ms: int | None = None) -> dict[str, Any]:
    return {
        "_collection": tap_collection_name(len(vector)),
        "query_id": query_id,
        "ts_ms": ts_ms if ts_ms is not None else now_ms(),
        "alias": alias,
        "collection": collection,
        "model_id": model_id,
        "text": (text or "")[:_MAX_TEXT] if store_text else "",
        "text_hash": text_hash(text) if text else "",
        "top_ids": [h["id"] for h in hits],
        "top_scores": [round(float(h["distance"]), 6) for h in hits],
        "vector": np.asarray(vector, dtype=np.float32).tolist(),
    }


def feedback_row(*, query_id: str, doc_id: int | str, alias: str, collection: str, model_id: str, signal: str,
                 weight: float, query_text: str) -> dict[str, Any]:
    return {
        "feedback_id": new_id(),
        "query_id": query_id,
        "doc_id": json.dumps(doc_id),
        "alias": alias,
        "collection": collection,
        "model_id": model_id,
        "signal": signal,
        "weight": float(weight),
        "ts_ms": now_ms(),
        "query_text": query_text[:_MAX_TEXT],
        "_v": [1.0, 0.0],
    }
