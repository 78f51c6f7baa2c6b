"""The proxy's dual writes: an application's Insert, Upsert and Delete repeated on the other side of a swap.

An ``embguard.Client`` writes both collections of a swap itself (``embguard.dual_write_to``, see
:mod:`embguard.swap.swapper`). An application behind the proxy writes only its alias, so the proxy does it for
it: after each of its writes on a watched alias succeeds, if the collection the alias serves carries the mark,
the write is repeated on the marked collection, each row's vector re-embedded from its stored text with that
collection's model. An Insert is repeated as an Upsert, so a repeat never duplicates a primary key.

Around a switch (``swap.grace_s`` after ``embguard.switched_at``, which approve and rollback set on the collection
they switch to) the write is also repeated on the serving collection: an application that embedded a document
with the old model just before the switch and wrote it just after has put an old-model vector into the new
collection, and the repeat replaces it with the new model's.

Writes are repeated in the order they completed, on one thread, off the relay's event loop; the writes that queued
while one batch was repeated form the next, encoded together (one pass per model). A Milvus outage is
waited out (the queue holds the writes, in order); a write Milvus refuses, or one without the text field, is
counted and logged, never retried forever. ``embguard_proxy_dual_write_rows_total{outcome}`` counts rows.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import MilvusError, MilvusUnavailable
from embguard.milvus.milvus import Milvus, recorded_model_id
from embguard.milvus.names import DUAL_WRITE_PROPERTY, SWITCHED_PROPERTY
from embguard.milvus.wire import WriteRows, read_write, retarget, write_succeeded, write_vectors
from embguard.models import loading as models

log = logging.getLogger("embguard.proxy")

_BATCH_WRITES = 256
# A switch's window reaches this far past swap.grace_s (the endpoint follows an alias within milvus.alias_cache_s).
_SWITCH_MARGIN_S = 5.0


class _NoKey(ValueError):
    pass


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.abs(a - b).max(initial=0.0) < 1e-4)


@dataclass(frozen=True)
class _Write:
    write: WriteRows
    spec: CollectionSettings
    texts: tuple[str, ...] | None
    done_at: float  # wall-clock time the application's write succeeded (which side it landed on)


@dataclass(frozen=True)
class Sides:
    """Where a write on an alias is repeated: the marked collection, and the serving one during a switch."""

    served: str
    others: tuple[str, ...]


class DualWriter:
    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], Milvus],
        on_rows: Callable[[str, int], None] = lambda outcome, n: None,
        queue_size: int = 100_000,
        encoder: Callable[[str, list[str]], np.ndarray] | None = None,
    ):
        self.settings = settings
        self._connect = connect
        self._milvus: Milvus | None = None
        self._on_rows = on_rows
        self._specs = {c.name: c for c in settings.collections}
        self._db = settings.milvus.db_name or "default"
        self._encode = encoder or self._encode_locally
        self._models: dict[str, models.EmbeddingModel] = {}
        self._queue: queue.Queue[tuple[str, bytes, bytes, str, float]] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="embguard-proxy-dual-writes", daemon=True)
        self._thread.start()

    def offer(self, method: str, request: bytes, response: bytes, db: str) -> None:
        """On the relay's event loop, for a write whose call succeeded: queue it, never wait."""
        try:
            self._queue.put_nowait((method, request, response, db, time.time()))
        except queue.Full:
            self._on_rows("dropped", 1)
            log.warning("proxy: dual-write queue full (%d writes); a %s was not repeated", self._queue.maxsize, method)

    @property
    def pending(self) -> int:
        return self._queue.unfinished_tasks

    def flush(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout_s: float = 30.0) -> None:
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        if self._milvus is not None:
            self._milvus.close()

    # --- the worker ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < _BATCH_WRITES:  # what queued meanwhile is repeated together: one encode per model
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._repeat_all(batch)
            except Exception as exc:  # never fatal: the writes are counted and logged
                self._on_rows("failed", len(batch))
                log.warning("proxy: could not repeat %d write(s) on the other side of a swap: %s", len(batch), exc)
            finally:
                for _ in batch:
                    self._queue.task_done()

    def _repeat_all(self, batch: list[tuple[str, bytes, bytes, str, float]]) -> None:
        """Repeat ``batch`` in order: each run of consecutive writes on one alias together."""
        run: list[_Write] = []
        for method, request, response, db, done_at in batch:
            if not write_succeeded(response):
                continue
            write = self._watched(method, request, db, done_at)
            if write is None:
                continue
            if run and run[0].spec.name != write.spec.name:
                self._repeat_safely(run)
                run = []
            run.append(write)
        if run:
            self._repeat_safely(run)

    def _repeat_safely(self, run: list[_Write]) -> None:
        """One run's failure (a model that will not load, a malformed write) is counted; the next runs go on."""
        try:
            self._repeat(run)
        except Exception as exc:
            self._on_rows("failed", sum(w.write.rows for w in run))
            log.warning("proxy: could not repeat writes on %s on the other side of a swap: %r", run[0].spec.name, exc)

    def _watched(self, method: str, request: bytes, db: str, done_at: float) -> _Write | None:
        write = read_write(method, request)
        spec = self._specs.get(write.collection)
        if spec is None or (write.message.db_name or db or "default") != self._db:
            return None
        texts = write.texts(spec.text_field or "")
        if method != "Delete" and texts is None:
            self._on_rows("no_text", write.rows)
            log.warning(
                "proxy: a %s on %s carries no text field %r, so it cannot be re-embedded for the other side of "
                "a swap; set collections[].text_field to the field the application stores its text in",
                method,
                spec.name,
                spec.text_field,
            )
            return None
        return _Write(write, spec, texts, done_at)

    def _repeat(self, run: list[_Write]) -> None:
        """Repeat one alias's consecutive writes on each other side, in order; a Milvus outage is waited out."""
        spec = run[0].spec
        rows = sum(w.write.rows for w in run)
        for attempt in range(1, 1_000_000):
            try:
                sides = self._sides_of(spec.name, min(w.done_at for w in run))
                if sides is None:
                    return
                written = 0
                for collection in sides.others:
                    written += self._send(run, collection, spec.vector_field, serving=collection == sides.served)
                self._on_rows("written", written)
                return
            except MilvusUnavailable as exc:  # wait it out, in order: the writes behind these wait too
                self._reset()
                if self._stop.is_set():
                    raise
                log.warning("proxy: Milvus unavailable for dual writes (try %d): %s", attempt, exc)
                time.sleep(min(5.0, 0.2 * attempt))
            except _NoKey as exc:
                self._on_rows("no_key", rows)
                log.warning("proxy: writes on %s were not repeated: %s", spec.name, exc)
                return
            except MilvusError as exc:
                self._on_rows("failed", rows)
                log.warning("proxy: writes on %s were not repeated: %s", spec.name, exc)
                return

    def _send(self, run: list[_Write], collection: str, vector_field: str, serving: bool) -> int:
        """Repeat ``run`` on ``collection``; the rows written. On the serving collection (a switch's window) a write
        whose vectors are already that collection's model's is left alone: rewriting it could only race the
        application's own next write of the same key."""
        milvus = self._conn()
        texts = [t for w in run for t in (w.texts or ())]
        vectors = np.zeros((0, 0), dtype=np.float32)
        if texts:
            key = milvus.primary_key(collection)[0]
            for w in run:
                if w.texts is not None and key not in {fd.field_name for fd in w.write.message.fields_data}:
                    raise _NoKey(
                        f"a write carries no primary key {key!r} (Milvus assigns them: auto_id), so it cannot be "
                        f"repeated on {collection!r} under the same key"
                    )
            model_id = recorded_model_id(milvus.properties(collection), collection)
            vectors = self._encode(model_id, texts)
        at, written = 0, 0
        for w in run:
            mine = None
            if w.texts is not None:
                mine = vectors[at : at + len(w.texts)]
                at += len(w.texts)
            if serving and mine is not None:  # a Delete is repeated everywhere: it may have landed on the other side
                sent = write_vectors(w.write, vector_field)
                if sent is not None and sent.shape == mine.shape and _same(sent, mine):
                    continue  # vectors already this model's need no rewrite
            milvus.send_write(retarget(w.write, collection, vector_field, mine, self.settings.milvus.db_name))
            written += w.write.rows
        return written

    def _sides_of(self, alias: str, done_at: float) -> Sides | None:
        """Read fresh for every run: a cached answer from just before a switch would miss the collection the
        application's write may have landed in. The serving collection is a side too when the write succeeded
        before the switch or within its window: measured from when the write succeeded, not from now, so a
        backlog that is repeated after the window (a loaded proxy) still reaches the side it did not land on."""
        served, props = self._conn().serving(alias)  # one state: a switch between two reads would lose the write
        other = props.get(DUAL_WRITE_PROPERTY)
        if not other:
            return None
        switched = float(props.get(SWITCHED_PROPERTY, "0") or 0)
        recent = done_at - switched < self.settings.swap.grace_s + _SWITCH_MARGIN_S
        return Sides(served, (other, served) if recent else (other,))

    def _encode_locally(self, model_id: str, texts: list[str]) -> np.ndarray:
        model = self._models.get(model_id)
        if model is None:
            m = self.settings.model
            model = self._models[model_id] = models.load_by_id(model_id, m.store_dir, m.device)
        return model.encode(texts, batch_size=self.settings.model.batch_size)

    def _conn(self) -> Milvus:
        if self._milvus is None:
            self._milvus = self._connect()
        return self._milvus

    def _reset(self) -> None:
        if self._milvus is not None:
            self._milvus.close()
            self._milvus = None
