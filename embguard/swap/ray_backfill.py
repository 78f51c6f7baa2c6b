"""The one module that imports ray: the swap's backfill on a Ray cluster (``swap.engine = "ray"``).

The swap state machine (embguard.swap) still owns every phase; only the re-embedding of the backfill runs
here, as a Ray Data pipeline::

    primary-key ranges -> read (tasks, parallel) -> encode (actor pool) -> upsert (tasks) -> driver

- **plan**: one pass over the source's primary keys only (no text, no vectors) cuts them into ranges of
  about ``range_docs`` documents. The plan is stored in the swap state with a ``done`` flag per range; the
  first range is open below and the last open above, so the ranges cover every id whatever the scan order.
- **read**: each range is read by a Ray task straight from Milvus, in one query (a filter built from
  validated ints; a range never exceeds ``RANGE_READ_MAX`` documents), cut into blocks of at most
  4 encoder batches, so that even a single range spreads over every actor.
- **encode**: an actor pool; each actor loads the candidate once (on a GPU when ``model.device = "cuda"``).
- **upsert**: Ray tasks write the re-embedded rows into the target; the driver only receives per-range
  counts, and marks a range done (a durable checkpoint) once all its rows are written. Killed anywhere and
  rerun, only the ranges not marked done are read again; re-upserting a row is harmless. A worker that dies
  is retried by Ray.

Reconcile and verify then run unchanged in the state machine, so writes that raced with a range are fixed
the same way as after the local backfill. Needs an INT64 primary key (the range filters are built from
ints only) and, on a multi-node cluster, a Milvus URI and a model store path every node can reach.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import SwapError
from embguard.milvus.milvus import Milvus
from embguard.swap import ray_cluster as raycluster
from embguard.swap.state import SwapState

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_RANGES = 8192  # keeps the plan (rewritten at every checkpoint) small: ~300 KB at most
RANGE_BATCHES = 2  # a range is this many backfill batches unless that gives more than MAX_RANGES ranges
RANGE_READ_MAX = 16_384  # Milvus' largest query result: a range is read by one query, so never bigger
INSTALL_HINT = "pip install 'embguard[ray]'"


def _import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise SwapError(
            f"swap.engine = 'ray' needs Ray, which is not installed ({exc}); run: {INSTALL_HINT}, "
            "or set swap.engine = 'local'. Nothing was changed"
        ) from None
    return ray


def range_filter(id_field: str, lo: int, hi: int) -> str:
    """``lo < id <= hi``; the bounds are ints (never text), an open end is INT64_MIN / INT64_MAX."""
    lo, hi = int(lo), int(hi)
    parts = ([f"{id_field} > {lo}"] if lo != INT64_MIN else []) + ([f"{id_field} <= {hi}"] if hi != INT64_MAX else [])
    return " and ".join(parts)


def plan(milvus: Milvus, source: str, id_field: str, range_docs: int, after: int | None = None) -> list[dict[str, Any]]:
    """Cut the source's primary keys (those above ``after``) into ranges of about ``range_docs`` ids."""
    cuts: list[int] = []
    n = seen = 0
    start = INT64_MIN if after is None else int(after)
    for batch in milvus.iterate(
        source, [id_field], filter=range_filter(id_field, start, INT64_MAX), batch_size=RANGE_READ_MAX
    ):
        for row in batch:
            n += 1
            seen += 1
            if n == range_docs:
                cuts.append(int(row[id_field]))
                n = 0
    # Sorted and open at both ends, the ranges cover every id even if the scan was not in key order.
    bounds = [start, *sorted(set(cuts)), INT64_MAX]
    if len(bounds) > 2 and bounds[-2] == bounds[-1]:
        bounds.pop(-2)
    sizes = [range_docs] * (len(bounds) - 2) + [seen - range_docs * (len(bounds) - 2)]
    spans = zip(bounds[:-1], bounds[1:], sizes, strict=True)
    return [{"lo": lo, "hi": hi, "n": max(k, 0), "done": False} for lo, hi, k in spans]


_connections: dict[str, Milvus] = {}


def _milvus(settings: Settings) -> Milvus:
    """One connection per worker process, reused by every task that lands on it."""
    key = settings.milvus_uri
    if key not in _connections:
        _connections[key] = Milvus.connect(settings)
    return _connections[key]


def _read(
    batch: dict[str, np.ndarray],
    *,
    settings: Settings,
    source: str,
    id_field: str,
    text_field: str,
    fields: list[str],
    batch_size: int,
) -> Iterator[dict[str, np.ndarray]]:
    """Read each range with one query; its last batch carries the range's row count."""
    m = _milvus(settings)
    for r, lo, hi in zip(batch["range"], batch["lo"], batch["hi"], strict=True):
        rows = m.query(source, filter=range_filter(id_field, lo, hi), output_fields=fields, limit=RANGE_READ_MAX)
        if len(rows) >= RANGE_READ_MAX:
            raise SwapError(
                f"primary-key range ({lo}, {hi}] of {source!r} holds {RANGE_READ_MAX}+ documents, "
                "more than one query returns; the range plan is stale: abort the swap and start it "
                "again"
            )
        for i in range(0, len(rows), batch_size):
            yield _block(int(r), rows[i : i + batch_size], len(rows) if i + batch_size >= len(rows) else -1, text_field)


def _block(r: int, rows: list[dict[str, Any]], total: int, text_field: str) -> dict[str, np.ndarray]:
    n = len(rows)
    return {
        "range": np.full(n, r, dtype=np.int64),
        "range_total": np.full(n, total, dtype=np.int64),
        "text": np.array([str(x[text_field]) for x in rows], dtype=object),
        "row": np.array([pickle.dumps(x, protocol=5) for x in rows], dtype=object),
    }


class _Encoder:
    """An actor: loads the candidate once, then encodes every batch sent to it."""

    def __init__(self, model_id: str, store_dir: str, device: str, batch_size: int):
        from embguard.models import loading as models

        self.model = models.load_by_id(model_id, Path(store_dir), device)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        vectors = self.model.encode([str(t) for t in batch.pop("text")], batch_size=self.batch_size)
        return {**batch, "vector": vectors}


def _write(
    batch: dict[str, np.ndarray], *, settings: Settings, target: str, vector_field: str
) -> dict[str, np.ndarray]:
    rows = [{**pickle.loads(b), vector_field: v.tolist()} for b, v in zip(batch["row"], batch["vector"], strict=True)]
    _milvus(settings).upsert(target, rows)
    ranges, counts = np.unique(batch["range"], return_counts=True)
    totals = [int(batch["range_total"][batch["range"] == r].max()) for r in ranges]
    return {"range": ranges, "n": counts, "range_total": np.array(totals, dtype=np.int64)}


def backfill(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    st: SwapState,
    fields: list[str],
    checkpoint: Callable[[], None],
) -> None:
    """Backfill ``st.target`` from ``st.source`` on Ray; ``checkpoint()`` persists ``st`` after each range."""
    id_type = next((f.get("type") for f in milvus.schema_fields(st.source) if f["name"] == spec.id_field), None)
    id_type = getattr(id_type, "name", id_type)
    if id_type != "INT64":
        raise SwapError(
            f"swap.engine = 'ray' splits {st.source!r} by primary-key ranges and needs an INT64 "
            f"primary key; {spec.id_field!r} is {id_type}. Set swap.engine = 'local' for this "
            "collection. Nothing was changed"
        )
    if not settings.swap.ray_address and "ray" not in sys.modules:
        # The local head started below turns token auth on, and a client reads the mode once, at import.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    ray = _import_ray()
    st.total = max(milvus.count(st.source), st.done)
    if not st.ranges:
        range_docs = min(
            max(settings.swap.batch_size * RANGE_BATCHES, math.ceil(st.total / MAX_RANGES)), RANGE_READ_MAX // 2
        )
        # A local backfill that ran before leaves a cursor: everything at or below it is already copied.
        after = int(st.cursor) if isinstance(st.cursor, int) else None
        st.ranges = plan(milvus, st.source, spec.id_field, range_docs, after)
        if after is not None:
            st.ranges.insert(0, {"lo": INT64_MIN, "hi": after, "n": st.done, "done": True})
        checkpoint()
    todo = [i for i, r in enumerate(st.ranges) if not r["done"]]
    if not todo:
        st.total = st.done = sum(r["n"] for r in st.ranges)
        checkpoint()
        return
    joined = not ray.is_initialized()
    head = raycluster.connect(ray, settings.swap.ray_address)
    try:
        _run(ray, settings, spec, st, fields, todo, checkpoint)
    finally:
        if joined:
            ray.shutdown()
        raycluster.stop(head)


def _run(
    ray: Any,
    settings: Settings,
    spec: CollectionSettings,
    st: SwapState,
    fields: list[str],
    todo: list[int],
    checkpoint: Callable[[], None],
) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    # Workers may run elsewhere, with another working directory: give them absolute paths.
    wsettings = settings.model_copy(
        update={"model": settings.model.model_copy(update={"store_dir": settings.model.store_dir.resolve()})}
    )
    n_workers, resources = raycluster.workers(ray, settings)
    batch_size = settings.swap.batch_size
    items = [{"range": i, "lo": int(st.ranges[i]["lo"]), "hi": int(st.ranges[i]["hi"])} for i in todo]
    io_tasks = ray.data.TaskPoolStrategy(size=max(2, n_workers))
    ds = (
        ray.data.from_items(items, override_num_blocks=len(items))
        # Reads and writes wait on Milvus, not on a core: they take no CPU slot from the encoders.
        .map_batches(
            _read,
            batch_size=1,
            compute=io_tasks,
            num_cpus=0,
            fn_kwargs={
                "settings": wsettings,
                "source": st.source,
                "id_field": spec.id_field,
                "text_field": spec.text_field,
                "fields": fields,
                "batch_size": min(batch_size, settings.model.batch_size * 4),
            },
        )
        # Ray Data restarts a dead actor and retries its batch (max_restarts defaults to -1).
        # Encoded and written in model-sized batches, so every actor gets work even from a single range.
        .map_batches(
            _Encoder,
            batch_size=settings.model.batch_size,
            compute=ray.data.ActorPoolStrategy(size=n_workers),
            fn_constructor_args=(
                st.candidate_model_id,
                str(wsettings.model.store_dir),
                settings.model.device,
                settings.model.batch_size,
            ),
            **resources,
        )
        .map_batches(
            _write,
            batch_size=settings.model.batch_size,
            compute=io_tasks,
            num_cpus=0,
            fn_kwargs={"settings": wsettings, "target": st.target, "vector_field": spec.vector_field},
        )
    )
    written: dict[int, int] = {}
    totals: dict[int, int] = {}
    done0 = st.done = sum(r["n"] for r in st.ranges if r["done"])
    t0 = time.monotonic()
    for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
        for r, n, total in zip(out["range"].tolist(), out["n"].tolist(), out["range_total"].tolist(), strict=True):
            written[r] = written.get(r, 0) + n
            if total >= 0:
                totals[r] = total
            if r in totals and written[r] >= totals[r] and not st.ranges[r]["done"]:
                st.ranges[r].update(done=True, n=totals[r])  # durable at the checkpoint: a rerun skips it
        # A retried task writes its rows again, and documents inserted since the count are read too: progress
        # counts each range at most once, and the total grows rather than being passed.
        st.done = done0 + sum(min(written[r], totals.get(r, written[r])) for r in written)
        st.total = max(st.total, st.done)
        st.rate = (st.done - done0) / max(time.monotonic() - t0, 1e-9)
        checkpoint()
    for i in todo:  # the pipeline finished: ranges that yielded no rows (empty) are done too
        st.ranges[i]["done"] = True
    st.done = sum(r["n"] for r in st.ranges)
    st.rate = (st.done - done0) / max(time.monotonic() - t0, 1e-9)
    st.total = st.done  # the end: progress reaches its total exactly
    checkpoint()
