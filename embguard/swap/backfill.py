"""The local backfill: the source's documents re-embedded into the target in primary-key order.

A reader thread prefetches the next batch and a writer thread upserts the previous one while the calling
thread encodes, so the encoder (the expensive part) rarely waits. The checkpoint (``st.cursor``) advances only
after a batch's write has returned, so a run killed anywhere resumes after the last durable batch; re-upserting
a batch is harmless. ``swap.engine = "ray"`` replaces this with :mod:`embguard.swap.ray_backfill`.

Progress (``st.done`` of ``st.total``) never runs past its total: ``st.total`` is the source's count when the
backfill starts, but the application keeps inserting (dual writes) and the scan reads those documents too, so
when ``st.done`` would pass it the source is counted again; at the end the total is set to exactly what was
copied (inserts the scan did not read reached the target by dual writes; deletes meanwhile shrink it).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from embguard.config.settings import CollectionSettings
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus
from embguard.milvus.overlap import write_overlapped
from embguard.swap.state import SwapState

Rows = list[dict[str, Any]]


def _prefetch(it: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Run ``it`` in a background thread, ``depth`` items ahead; its exceptions surface here."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()

    def run() -> None:
        try:
            for item in it:
                q.put(item)
        except BaseException as exc:
            q.put(exc)
        q.put(done)

    threading.Thread(target=run, name="embguard-backfill-read", daemon=True).start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _pk_filter(field_name: str, cursor: Any) -> str:
    if cursor is None:
        return ""
    return f"{field_name} > {literal(cursor)}" if isinstance(cursor, str) else f"{field_name} > {int(cursor)}"


def backfill_local(
    milvus: Milvus,
    spec: CollectionSettings,
    st: SwapState,
    fields: list[str],
    embed: Callable[[Rows], Rows],
    batch_size: int,
    checkpoint: Callable[[], None],
) -> None:
    st.total = max(milvus.count(st.source), st.done)
    checkpoint()
    t0, done0 = time.monotonic(), st.done
    batches = _prefetch(
        milvus.iterate(st.source, fields, filter=_pk_filter(spec.id_field, st.cursor), batch_size=batch_size)
    )

    def commit(batch: Rows) -> None:
        st.cursor = max(r[spec.id_field] for r in batch)
        st.done += len(batch)
        if st.done > st.total:  # the scan read documents inserted since the count: count again, never "2400/2047"
            st.total = max(milvus.count(st.source), st.done)
        st.rate = (st.done - done0) / max(time.monotonic() - t0, 1e-9)
        checkpoint()  # a restart continues after st.cursor

    write_overlapped(
        batches,
        embed,
        lambda rows: milvus.upsert(st.target, rows),
        lambda batch, _n: commit(batch),
        name="embguard-backfill-write",
    )
    settle_total(st)
    checkpoint()


def settle_total(st: SwapState) -> None:
    """At the end of a backfill its progress reaches its total exactly: every document it copied."""
    st.total = st.done
