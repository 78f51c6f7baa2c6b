"""The query tap and the feedback log: what the application-side client records for the sidecar.

Milvus keeps no log of the searches it serves, so the client records a sample of them into bookkeeping
collections in the same Milvus, where a sidecar in another process can read them. The tap must never
fail, block or slow the application: rows go into a bounded in-memory queue (``put_nowait``; a full
queue drops the row and counts it) and a background thread writes them in batches on its own connection.
"""

from __future__ import annotations

import contextlib
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
MAX_TAPPED_HITS = 100


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
    # One JSON *object* {"ids": [...], "scores": [...]}: a real Milvus server refuses a top-level JSON array,
    # and a JSON object keeps the ids' own type (INT64 or VARCHAR keys) without a second schema.
    ("hits", "json", 0),
)
TAP_HEALTH_PROPERTY = "embguard.tap_health"
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


def legacy_layout(milvus: Milvus, tap: str) -> bool:
    """True for a tap collection made by embguard 0.1 (``top_ids``/``top_scores`` JSON arrays; Lite only)."""
    return any(f["name"] == "top_ids" for f in milvus.schema_fields(tap))


def read_tap(milvus: Milvus, tap: str, filter: str, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Tap rows matching ``filter`` with ``top_ids``/``top_scores`` lists, whatever the stored layout."""
    if not milvus.has_collection(tap):
        return []
    legacy = legacy_layout(milvus, tap)
    wanted = [f for f in fields if f not in ("top_ids", "top_scores")]
    if "top_ids" in fields or "top_scores" in fields:
        wanted += ["top_ids", "top_scores"] if legacy else ["hits"]
    rows = [r for batch in milvus.iterate(tap, wanted, filter=filter) for r in batch]
    if not legacy:
        for r in rows:
            hits = r.pop("hits", None) or {}
            r["top_ids"], r["top_scores"] = list(hits.get("ids") or []), list(hits.get("scores") or [])
    return rows


def _legacy_row(row: dict[str, Any]) -> dict[str, Any]:
    hits = row.pop("hits")
    return {**row, "top_ids": hits["ids"], "top_scores": hits["scores"]}


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
    dropped_invalid: int = 0
    flush_errors: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **deltas: int) -> None:
        with self._lock:
            for k, v in deltas.items():
                setattr(self, k, getattr(self, k) + v)

    @property
    def dropped(self) -> int:
        return self.dropped_full + self.dropped_error + self.dropped_invalid

    def snapshot(self) -> dict[str, int | str]:
        with self._lock:
            return {k: getattr(self, k) for k in ("searches", "sampled", "written", "dropped_full",
                                                   "dropped_error", "dropped_invalid", "flush_errors",
                                                   "last_error", "last_error_ms")}


class _Outage:
    """One run of failing flushes: logged loudly once, then summarised at most once per ``every_s``."""

    def __init__(self, every_s: float = 60.0):
        self.every_s = every_s
        self.failures = 0
        self.rows = 0
        self.since = 0.0
        self.last_log = 0.0

    def failed(self, coll: str, n: int, error: str) -> None:
        now = time.monotonic()
        if not self.failures:
            self.since = self.last_log = now
            log.warning("query tap: writing %d row(s) to %s failed: %s (retrying with back-off; further "
                        "failures are summarised every %.0f s)", n, coll, error, self.every_s)
        elif now - self.last_log >= self.every_s:
            log.warning("query tap: still failing: %d failed flush(es) affecting %d row(s) in the last %.0f s; "
                        "last error: %s", self.failures, self.rows, now - self.last_log, error)
            self.last_log = now
            self.failures = self.rows = 0
        self.failures += 1
        self.rows += n

    def recovered(self) -> bool:
        if not self.failures and not self.since:
            return False
        log.warning("query tap: writes recovered after %.0f s", time.monotonic() - self.since)
        self.failures = self.rows = 0
        self.since = 0.0
        return True


class QueryTap:
    """A bounded buffer of tap rows and the thread that writes them.

    ``offer`` is the only call on the application's search path: it never raises and never waits.
    A batch whose write fails is retried with exponential back-off (up to ``max_backoff_s``) while it fits
    the buffer's budget, then dropped and counted; the application never sees the failure. The first
    failure is logged, then one summary per minute, and the failure is recorded on the served collection
    (``embguard.tap_health`` property) so ``embguard status`` in another process can show it.
    """

    def __init__(self, connect: Callable[[], Milvus], buffer_size: int = 10_000, flush_interval_s: float = 1.0,
                 batch_size: int = 500, on_written: Callable[[int], None] | None = None,
                 on_dropped: Callable[[str, int], None] | None = None, stats: TapStats | None = None,
                 max_backoff_s: float = 30.0):
        self._connect = connect
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=buffer_size)
        self._retry: list[dict[str, Any]] = []
        self._buffer_size = buffer_size
        self._flush_interval_s = flush_interval_s
        self._batch_size = batch_size
        self._max_backoff_s = max_backoff_s
        self._backoff_s = 0.0
        self._milvus: Milvus | None = None
        self._ready: dict[str, bool] = {}  # tap collection -> legacy layout
        self._outage = _Outage()
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
        if self._queue.qsize() >= self._batch_size and not self._backoff_s:
            self._wake.set()
        return True

    def _drop(self, reason: str, n: int) -> None:
        self.stats.add(**{"dropped_full" if reason == "buffer_full" else "dropped_error": n})
        _quietly(self._on_dropped, reason, n)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(max(self._flush_interval_s, self._backoff_s))
            self._wake.clear()
            if self._stop.is_set():
                return
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
            written, failed = 0, False
            by_coll: dict[str, list[dict[str, Any]]] = {}
            for r in rows:
                by_coll.setdefault(r["_collection"], []).append(r)
            for coll, group in by_coll.items():
                try:
                    written += self._write(coll, group)
                except Exception as exc:  # the tap absorbs every failure
                    failed = True
                    self._failed(coll, group, exc)
            if failed:
                self._backoff_s = min(self._max_backoff_s, max(2 * self._backoff_s, self._flush_interval_s))
            else:
                self._backoff_s = 0.0
                if self._outage.recovered():
                    self._report_health(by_coll, "")
            if written:
                self.stats.add(written=written)
                _quietly(self._on_written, written)
            return written

    def _write(self, coll: str, group: list[dict[str, Any]]) -> int:
        milvus = self._milvus or self._connect()
        self._milvus = milvus
        if coll not in self._ready:
            ensure_tap_collection(milvus, len(group[0]["vector"]))
            self._ready[coll] = legacy_layout(milvus, coll)
        written = 0
        for i in range(0, len(group), self._batch_size):
            chunk = [{k: v for k, v in r.items() if k != "_collection"} for r in group[i:i + self._batch_size]]
            if self._ready[coll]:
                chunk = [_legacy_row(r) for r in chunk]
            milvus.insert(coll, chunk)
            written += len(chunk)
            del group[:len(chunk)]  # what is left is what failed, if the next chunk fails
        return written

    def _failed(self, coll: str, group: list[dict[str, Any]], exc: Exception) -> None:
        error = " ".join(str(exc).split())[:300]
        self.stats.add(flush_errors=1)
        with self.stats._lock:
            self.stats.last_error, self.stats.last_error_ms = error, now_ms()
        first = not self._outage.failures
        self._outage.failed(coll, len(group), error)
        self._ready.pop(coll, None)
        if self._milvus is not None and not self._milvus.ping():
            self._milvus.close()
            self._milvus = None
        elif first:
            self._report_health({coll: group}, error)
        room = self._buffer_size - self._queue.qsize() - len(self._retry)
        keep = group[-room:] if room > 0 else []
        self._retry.extend(keep)
        if len(group) - len(keep):
            self._drop("write_error", len(group) - len(keep))

    def _report_health(self, by_coll: Mapping[str, list[dict[str, Any]]], error: str) -> None:
        """Record the tap's state on each served collection, where any process can read it."""
        if self._milvus is None:
            return
        served = {r["collection"] for group in by_coll.values() for r in group}
        value = json.dumps({"ts_ms": now_ms(), "error": error, "ok": not error})
        for collection in served:
            with contextlib.suppress(Exception):
                self._milvus.set_properties(collection, {TAP_HEALTH_PROPERTY: value})

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


def _quietly(callback: Callable[..., None] | None, *args: Any) -> None:
    if callback is None:
        return
    try:
        callback(*args)
    except Exception:  # a metrics callback must not break the tap
        pass


def tap_health(milvus: Milvus, collection: str) -> dict[str, Any] | None:
    """The tap state last recorded on ``collection`` (``{"ts_ms", "error", "ok"}``), if any."""
    raw = milvus.properties(collection).get(TAP_HEALTH_PROPERTY)
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def finite_vector(vector: Any) -> bool:
    """A query vector worth tapping: numeric and finite (one NaN would poison every check of its window)."""
    try:
        v = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError):
        return False
    return v.ndim == 1 and v.size > 0 and bool(np.isfinite(v).all())


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
        "hits": {"ids": [h["id"] for h in hits[:MAX_TAPPED_HITS]],
                 "scores": [round(float(h["distance"]), 6) for h in hits[:MAX_TAPPED_HITS]]},
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
