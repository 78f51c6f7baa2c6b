"""Sample windows: what the daemon reads from Milvus and hands to the monitors as numpy arrays.

- A **query window** is the tapped queries of a time range for one serving collection and model.
- A **document sample** is a uniform random sample of a collection's documents. Milvus Lite has no
  ``RANDOM_SAMPLE`` filter, so it is done portably: stream the primary keys only (never the vectors) and
  keep a reservoir (Vitter's algorithm R, so every row is equally likely), then fetch just the sampled rows.
  With a timestamp field, ``recent_documents`` samples only rows inserted in a time range.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embguard.client.tap import MAX_VECTOR_VALUE, MIN_VECTOR_NORM, read_tap, tap_collection_name, usable_rows
from embguard.config.settings import CollectionSettings
from embguard.errors import ConfigError, WindowError
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus, recorded_model_id

log = logging.getLogger(__name__)


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Window:
    """A materialised sample: row ``i`` of ``vectors`` belongs to ``ids[i]`` at ``timestamps_ms[i]``."""

    kind: str  # "queries" | "documents"
    collection: str
    model_id: str
    start_ms: int
    end_ms: int
    ids: tuple[Any, ...]
    vectors: np.ndarray
    timestamps_ms: np.ndarray
    texts: tuple[str, ...] = ()
    top_ids: tuple[tuple[Any, ...], ...] = ()
    top_scores: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "vectors", _frozen(np.asarray(self.vectors, dtype=np.float32)))
        object.__setattr__(self, "timestamps_ms", _frozen(np.asarray(self.timestamps_ms, dtype=np.int64)))
        if self.top_scores is not None:
            object.__setattr__(self, "top_scores", _frozen(np.asarray(self.top_scores, dtype=np.float32)))

    @property
    def size(self) -> int:
        return len(self.ids)

    @property
    def top1_ids(self) -> tuple[Any, ...]:
        return tuple(t[0] if t else None for t in self.top_ids)

    @property
    def top1_scores(self) -> np.ndarray:
        if self.top_scores is None or self.top_scores.size == 0:
            return np.zeros(0, dtype=np.float32)
        return self.top_scores[:, 0]


def reservoir(ids: Iterable[Any], k: int, rng: random.Random) -> list[Any]:
    """A uniform sample of ``k`` items from a stream of unknown length (algorithm R), O(k) memory."""
    out: list[Any] = []
    for n, item in enumerate(ids):
        if n < k:
            out.append(item)
        else:
            j = rng.randint(0, n)
            if j < k:
                out[j] = item
    return out


def _model_id(milvus: Milvus, collection: str) -> str:
    # A collection that records no model is watched as the application's own (monitor-only, through the proxy).
    return recorded_model_id(milvus.properties(collection), collection)


def sample_documents(
    milvus: Milvus,
    spec: CollectionSettings,
    k: int,
    *,
    seed: int | None = None,
    filter: str = "",
    with_text: bool = True,
    batch_size: int = 5000,
) -> Window:
    """A uniform random sample of up to ``k`` documents of the collection behind ``spec.name``."""
    collection = milvus.resolve(spec.name)  # iterate a concrete collection, never the alias
    require_fields(milvus, collection, spec)
    model_id = _model_id(milvus, collection)
    rng = random.Random(seed)
    stream = (
        row[spec.id_field]
        for batch in milvus.iterate(collection, [spec.id_field], filter=filter, batch_size=batch_size)
        for row in batch
    )
    chosen = reservoir(stream, k, rng)
    fields = [spec.id_field, spec.vector_field]
    if with_text and spec.text_field:
        fields.append(spec.text_field)
    if spec.timestamp_field:
        fields.append(spec.timestamp_field)
    rows: list[dict[str, Any]] = []
    for i in range(0, len(chosen), 1000):
        rows += milvus.query(collection, ids=chosen[i : i + 1000], output_fields=fields)
    now = int(time.time() * 1000)
    dim = len(rows[0][spec.vector_field]) if rows else 0
    rows, skipped = _usable(rows, spec.vector_field, dim, f"document sample of {spec.name} ({collection})")
    return Window(
        kind="documents",
        collection=collection,
        model_id=model_id,
        start_ms=0,
        end_ms=now,
        ids=tuple(r[spec.id_field] for r in rows),
        vectors=np.array([r[spec.vector_field] for r in rows], dtype=np.float32).reshape(len(rows), dim),
        timestamps_ms=np.array([int(r.get(spec.timestamp_field or "", 0) or 0) for r in rows], dtype=np.int64),
        texts=tuple(str(r.get(spec.text_field or "", "")) for r in rows) if with_text and spec.text_field else (),
        meta={"sampled_from_filter": filter, "seed": seed, "skipped_rows": skipped},
    )


def require_fields(milvus: Milvus, collection: str, spec: CollectionSettings) -> None:
    """Refuse, naming the key and the fix, a ``[[collections]]`` entry whose field names the collection does not
    have: an application's own schema (LangChain's ``pk``, LlamaIndex's ``embedding``) is watched under its names."""
    have = [str(f["name"]) for f in milvus.schema_fields(collection)]
    keys = {"id_field": spec.id_field, "vector_field": spec.vector_field, "text_field": spec.text_field}
    keys["timestamp_field"] = spec.timestamp_field
    missing = [f"{key} = {name!r}" for key, name in keys.items() if name and name not in have]
    if missing:
        raise ConfigError(
            f"[[collections]] {spec.name!r}: collection {collection!r} has no field for {', '.join(missing)}; its "
            f"fields are {', '.join(have)}: set those keys of {spec.name!r} to the collection's own field names"
        )


def recent_documents(
    milvus: Milvus, spec: CollectionSettings, k: int, since_ms: int, *, seed: int | None = None
) -> Window:
    """A uniform sample of documents whose timestamp field is at or after ``since_ms``."""
    if not spec.timestamp_field:
        raise WindowError(
            f"collection {spec.name!r} has no timestamp_field configured; recent-document samples "
            "need one (set collections[].timestamp_field)"
        )
    return sample_documents(milvus, spec, k, seed=seed, filter=f"{spec.timestamp_field} >= {int(since_ms)}")


def query_window(
    milvus: Milvus,
    alias: str,
    start_ms: int,
    end_ms: int,
    *,
    model_id: str | None = None,
    dim: int | None = None,
    limit: int = 50_000,
) -> Window:
    """The tapped queries for ``alias`` in ``[start_ms, end_ms)``, made by ``model_id``.

    ``model_id`` defaults to the model of the collection the alias serves now, so a window never mixes
    queries embedded by two models across a swap; ``dim`` to that collection's vector dimension, which
    names the tap collection the client wrote them to. Rows whose vector is not a usable embedding (NaN or
    infinite, a value beyond +-MAX_VECTOR_VALUE, all zeros: see ``tap.usable_rows``) are skipped, counted in
    ``meta["skipped_rows"]`` and logged: one NaN must not fail every check of its window, and an all-zero or
    overflowing vector must not become part of a reference.
    """
    collection = milvus.resolve(alias)
    model_id = model_id or _model_id(milvus, collection)
    dim = dim or milvus.vector_dimension(collection)
    tap = tap_collection_name(dim)
    flt = (
        f"alias == {literal(alias)} and model_id == {literal(model_id)} and ts_ms >= {int(start_ms)} "
        f"and ts_ms < {int(end_ms)}"
    )
    rows = read_tap(milvus, tap, flt, ["query_id", "ts_ms", "vector", "text", "top_ids", "top_scores"])
    good, skipped = _usable(rows, "vector", dim, f"query window of {alias} ({tap}, model {model_id})")
    rows = sorted(good, key=lambda r: (r["ts_ms"], r["query_id"]))[-limit:]
    k = max((len(r["top_scores"]) for r in rows), default=0)
    scores = np.full((len(rows), k), np.nan, dtype=np.float32)
    for i, r in enumerate(rows):
        s = [float(x) for x in r["top_scores"]]
        scores[i, : len(s)] = s
    return Window(
        kind="queries",
        collection=collection,
        model_id=model_id,
        start_ms=int(start_ms),
        end_ms=int(end_ms),
        ids=tuple(r["query_id"] for r in rows),
        vectors=np.array([r["vector"] for r in rows], dtype=np.float32).reshape(len(rows), dim),
        timestamps_ms=np.array([r["ts_ms"] for r in rows], dtype=np.int64),
        texts=tuple(r.get("text") or "" for r in rows),
        top_ids=tuple(tuple(r["top_ids"]) for r in rows),
        top_scores=scores,
        meta={"alias": alias, "tap_collection": tap, "skipped_rows": skipped},
    )


def _usable(rows: list[dict[str, Any]], field: str, dim: int, what: str) -> tuple[list[dict[str, Any]], int]:
    """``rows`` whose ``field`` is a usable ``dim``-long embedding, and how many were left out (logged)."""
    shaped = [r for r in rows if _shaped(r.get(field), dim)]
    mask = usable_rows(np.array([r[field] for r in shaped], dtype=np.float64).reshape(len(shaped), dim))
    good = [r for r, ok in zip(shaped, mask.tolist(), strict=True) if ok]
    skipped = len(rows) - len(good)
    if skipped:
        log.warning(
            "%s: left out %d of %d row(s) whose vector is unusable (wrong length, NaN/inf, a value beyond +-%g, or a "
            "norm below %g such as all zeros); find what writes them",
            what,
            skipped,
            len(rows),
            MAX_VECTOR_VALUE,
            MIN_VECTOR_NORM,
        )
    return good, skipped


def _shaped(vector: Any, dim: int) -> bool:
    try:
        return np.asarray(vector, dtype=np.float64).shape == (dim,)
    except (TypeError, ValueError, OverflowError):
        return False


def distinct_queries(window: Window, span_s: float | None = None) -> Window:
    """The window with each distinct query vector once per ``span_s``-long piece (the whole window if None).

    A burst (one query repeated by a bot or a retry loop) is not a change of what users ask, but tests that treat
    rows as independent draws see it as one: on simulated traffic bursts alone paged several times a week
    (benchmarks/results/traffic.md). A reference spanning many windows is deduplicated window-long piece by
    piece, so popular queries keep the weight they have in one checked window.
    """
    if window.size == 0:
        return window
    ts = window.timestamps_ms
    piece = np.zeros(window.size, dtype=np.int64) if not span_s else (ts - ts.min()) // int(span_s * 1000)
    keys = np.ascontiguousarray(window.vectors).view(np.dtype((np.void, window.vectors.shape[1] * 4))).ravel()
    seen: set[tuple[int, Any]] = set()
    keep = []
    for i, (p, k) in enumerate(zip(piece.tolist(), keys.tolist(), strict=True)):
        if (p, k) not in seen:
            seen.add((p, k))
            keep.append(i)
    if len(keep) == window.size:
        return window
    idx = np.array(keep)
    return dataclasses.replace(
        window,
        ids=tuple(window.ids[i] for i in keep),
        vectors=window.vectors[idx],
        timestamps_ms=ts[idx],
        texts=tuple(window.texts[i] for i in keep) if window.texts else (),
        top_ids=tuple(window.top_ids[i] for i in keep) if window.top_ids else (),
        top_scores=None if window.top_scores is None else window.top_scores[idx],
        meta={**window.meta, "duplicates_removed": window.size - len(keep)},
    )
