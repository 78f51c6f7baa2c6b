"""The tap's writer: a bounded queue and a background thread that batch rows into Milvus.

The tap must never fail, block or slow the application: rows go into a bounded in-memory queue
(``put_nowait``; a full queue drops the row and counts it) and a background thread writes them in batches on
its own connection, backing off while Milvus refuses them and logging an outage once, then once a minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from embguard.client.tap import TAP_HEALTH_PROPERTY, ensure_tap_collection, legacy_layout, legacy_row, now_ms
from embguard.milvus.milvus import Milvus

log = logging.getLogger("embguard.tap")  # the tap's records keep the logger operators already route


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
            return {
                k: getattr(self, k)
                for k in (
                    "searches",
                    "sampled",
                    "written",
                    "dropped_full",
                    "dropped_error",
                    "dropped_invalid",
                    "flush_errors",
                    "last_error",
                    "last_error_ms",
                )
            }


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
            log.warning(
                "query tap: writing %d row(s) to %s failed: %s (retrying with back-off; further "
                "failures are summarised every %.0f s)",
                n,
                coll,
                error,
                self.every_s,
            )
        elif now - self.last_log >= self.every_s:
            log.warning(
                "query tap: still failing: %d failed flush(es) affecting %d row(s) in the last %.0f s; last error: %s",
                self.failures,
                self.rows,
                now - self.last_log,
                error,
            )
            self.last_log = now
            self.failures = self.rows = 0
        self.failures += 1
        self.rows += n

    def recovered(self) -> bool:
        if not self.failures and not self.since:
            return False
        log.info("query tap: writes recovered after %.0f s", time.monotonic() - self.since)
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

    def __init__(
        self,
        connect: Callable[[], Milvus],
        buffer_size: int = 10_000,
        flush_interval_s: float = 1.0,
        batch_size: int = 500,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[str, int], None] | None = None,
        stats: TapStats | None = None,
        max_backoff_s: float = 30.0,
    ):
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
                before = len(group)
                try:
                    self._write(coll, group)
                except Exception as exc:  # the tap absorbs every failure
                    failed = True
                    self._failed(coll, group, exc)
                written += before - len(group)  # _write removes what it stored, also when a later chunk fails
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

    def _write(self, coll: str, group: list[dict[str, Any]]) -> None:
        milvus = self._milvus or self._connect()
        self._milvus = milvus
        if coll not in self._ready:
            ensure_tap_collection(milvus, len(group[0]["vector"]))
            self._ready[coll] = legacy_layout(milvus, coll)
        # Always the head of ``group``: each stored chunk is removed, so what is left is what a failure keeps for a
        # retry (indexing by offset while removing, as before, skipped every other chunk of a large flush).
        while group:
            chunk = [{k: v for k, v in r.items() if k != "_collection"} for r in group[: self._batch_size]]
            if self._ready[coll]:
                chunk = [legacy_row(r) for r in chunk]
            milvus.insert(coll, chunk)
            del group[: len(chunk)]

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
