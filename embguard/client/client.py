"""``embguard.Client``: the application-side plugin, a thin facade over Milvus that the app searches through.

What it adds to a plain ``MilvusClient``:

- **The right model for every query.** Each search resolves the alias to its concrete collection, embeds
  the query with the model recorded on *that* collection (``embguard.model_id`` property) and searches
  the concrete collection, not the alias. An alias switch between two searches is therefore never a
  mismatch: a query is only ever searched against vectors made by the model that embedded it.
- **Dual writes.** While a reindex runs, the serving collection carries ``embguard.dual_write_to``; every
  insert/upsert/delete then also goes to the new collection, embedded with the new collection's model.
- **The query tap and the feedback log** (see ``tap.py``), the raw material of drift checks and retraining.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embguard.client.inputs import (
    ClientMetrics,
    check_documents,
    check_feedback,
    check_feedback_doc,
    check_texts,
    check_vectors,
)
from embguard.client.recorder import Recorder
from embguard.client.resolver import Resolver
from embguard.client.tap import ensure_feedback_collection, feedback_row, new_id
from embguard.config.loader import load as load_settings
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import FeedbackError, InvalidInput, MilvusError
from embguard.milvus.filters import check_ids
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import DUAL_WRITE_PROPERTY, FEEDBACK_COLLECTION
from embguard.milvus.overlap import write_overlapped
from embguard.models import loading as models


@dataclass(frozen=True)
class Hit:
    id: int | str
    score: float
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResponse:
    """One entry per query: ``query_ids[i]`` and ``hits[i]`` belong to query ``i``."""

    query_ids: tuple[str, ...]
    hits: tuple[tuple[Hit, ...], ...]
    collection: str
    model_id: str


class Client:
    """Search, write and leave feedback through embguard. Thread-safe; call ``close()`` (or use ``with``)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        uri: str | None = None,
        query_rate: float | None = None,
        seed: int | None = None,
        registry: Any = None,
        recent_queries: int = 10_000,
    ):
        settings = settings or load_settings()
        # An explicit uri replaces milvus.uri through the settings' own validation: credentials inside it move to
        # milvus.user/password, so the URI kept here (and printed in every Milvus error) never holds them.
        self.settings = settings.with_milvus_uri(uri) if uri is not None else settings
        self._uri = self.settings.milvus_uri
        self._milvus = Milvus.connect(self.settings)
        s = self.settings.sampling
        self._resolver = Resolver(self.settings, self._milvus)
        self._feedback_ready = False
        self._metrics = ClientMetrics(registry) if registry is not None else None
        self._recorder = Recorder(
            lambda: Milvus.connect(self.settings),
            rate=s.query_rate if query_rate is None else query_rate,
            seed=seed,
            store_text=s.store_query_text,
            buffer_size=s.tap_buffer_size,
            flush_interval_s=s.tap_flush_interval_s,
            recent_max=recent_queries,
            metrics=self._metrics,
        )
        self.tap_stats = self._recorder.stats

    # --- lifecycle ----------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"Client(uri={self._uri!r})"

    def close(self) -> None:
        """Flush the tap (bounded wait) and close connections."""
        self._recorder.close()
        self._milvus.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def milvus(self) -> Milvus:
        return self._milvus

    def flush_tap(self) -> int:
        """Write buffered tap rows now (the background thread does this every flush interval)."""
        return self._recorder.flush()

    def create_collection(self, name: str, model: str = "default", *, index_type: str | None = None) -> str:
        """Create the managed collection ``name`` (``name__v<NNNN>`` for ``model``, ``name__v0000`` for the default
        model; the alias; the model id) and return the concrete collection. ``[[collections]]`` settings for
        ``name`` apply when present."""
        from embguard.milvus import managed

        return managed.create(self.settings, self._milvus, name, model, index_type=index_type).collection

    # --- model resolution -----------------------------------------------------------------------------------

    def _spec(self, alias: str) -> CollectionSettings:
        return self.settings.find_collection(alias) or CollectionSettings(name=alias)

    def model_id_of(self, collection: str) -> str:
        """The model id a concrete collection records (cached: a collection's model never changes)."""
        return self._resolver.model_id_of(collection)

    def model_for(self, collection: str) -> models.EmbeddingModel:
        return self._resolver.model_for(collection)

    # --- search -----------------------------------------------------------------------------------------------

    def resolve(self, alias: str) -> str:
        """The collection behind ``alias`` for a search, reused for ``milvus.alias_cache_s`` (see ``resolver``)."""
        return self._resolver.resolve(alias)

    def search(
        self,
        alias: str,
        texts: Sequence[str] | None = None,
        *,
        vectors: np.ndarray | None = None,
        limit: int = 10,
        filter: str = "",
        output_fields: Sequence[str] | None = None,
        search_params: Mapping[str, Any] | None = None,
        consistency_level: str | None = None,
    ) -> SearchResponse:
        """Embed ``texts`` with the model of the collection behind ``alias`` (or take ``vectors``) and search.

        ``consistency_level="Strong"`` makes the search see writes made just before it (a Milvus server's
        default, Bounded, may not; Lite always does).
        """
        if (texts is None) == (vectors is None):
            raise InvalidInput("search() takes either texts or vectors, not both and not neither")
        if texts is not None:
            texts = check_texts(texts)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 16384:
            raise InvalidInput(f"search limit {limit!r} must be an integer from 1 to 16384")
        spec = self._spec(alias)
        collection = self.resolve(alias)
        model = self.model_for(collection)
        if texts is not None:
            qv = model.encode_queries(list(texts), batch_size=self.settings.model.batch_size)
        else:
            qv = check_vectors(vectors, model.dimension, f"search vectors for {alias!r} (model {model.model_id})")
        # Asking for no fields makes Milvus Lite return every field, vectors included: ask for the key only.
        fields = list(output_fields) if output_fields else [spec.id_field]
        raw = self._milvus.search(
            collection,
            qv,
            limit=limit,
            anns_field=spec.vector_field,
            filter=filter,
            output_fields=fields,
            search_params=search_params,
            consistency_level=consistency_level,
        )
        qids = tuple(new_id() for _ in range(len(qv)))
        self._recorder.searched(alias, collection, model.model_id, qids, texts, qv, raw)
        hits = tuple(tuple(Hit(h["id"], float(h["distance"]), dict(h.get("entity") or {})) for h in row) for row in raw)
        return SearchResponse(qids, hits, collection, model.model_id)

    # --- feedback ---------------------------------------------------------------------------------------------

    def feedback(
        self,
        query_id: str,
        doc_id: int | str,
        signal: str = "click",
        weight: float = 1.0,
        query_text: str | None = None,
    ) -> str:
        """Record that the user clicked (or judged) ``doc_id`` for ``query_id``. Returns the feedback id.

        Written synchronously, so a label is never silently lost: a failure raises ``FeedbackError`` and the
        caller may retry. The query is force-tapped if it was not sampled, so its vector is on record.
        """
        check_feedback(signal, weight, query_text)
        recent = self._recorder.recent(query_id)
        if recent is None:
            raise FeedbackError(
                f"query_id {query_id!r:.80} is unknown to this client (feedback must come from the process that "
                f"ran the search, within its last {self._recorder.recent_max} queries)"
            )
        check_feedback_doc(self._milvus, recent.collection, recent.alias, recent.hits, doc_id)
        text = query_text if query_text is not None else (recent.text or "")
        row = feedback_row(
            query_id=query_id,
            doc_id=doc_id,
            alias=recent.alias,
            collection=recent.collection,
            model_id=recent.model_id,
            signal=signal,
            weight=weight,
            query_text=text,
        )
        try:
            if not self._feedback_ready:
                ensure_feedback_collection(self._milvus)
                self._feedback_ready = True
            self._milvus.insert(FEEDBACK_COLLECTION, [row])
        except MilvusError as exc:
            raise FeedbackError(f"feedback for query {query_id!r} on doc {doc_id!r} was not recorded: {exc}") from None
        self._recorder.force_tap(query_id, recent)
        if self._metrics:
            self._metrics.feedback(signal)
        return str(row["feedback_id"])

    # --- writes -----------------------------------------------------------------------------------------------

    def _targets(self, alias: str) -> list[str]:
        # Fresh, and as one state: a dual-write mark must be seen by the next write, even one racing a switch.
        source, props = self._milvus.serving(alias)
        if MODEL_ID_PROPERTY in props:
            self._resolver.remember(source, props[MODEL_ID_PROPERTY])
        targets = [source]
        extra = props.get(DUAL_WRITE_PROPERTY)
        if extra and extra != source:
            targets.append(extra)
        return targets

    def insert(self, alias: str, documents: Sequence[Mapping[str, Any]]) -> int:
        """Add or replace documents by id (the same as ``upsert``).

        A document id is a key on every backend: Milvus Lite replaces a row inserted again with the same
        id, while a Milvus server would keep both, and duplicates break counts, reindexing and feedback.
        """
        return self.upsert(alias, documents)

    def upsert(self, alias: str, documents: Sequence[Mapping[str, Any]]) -> int:
        if isinstance(documents, (str, bytes, Mapping)) or not isinstance(documents, Sequence):
            raise InvalidInput(f"documents must be a list of mappings, got {type(documents).__name__}")
        if not documents:
            return 0
        spec = self._spec(alias)
        counts = []
        for collection in self._targets(alias):  # the serving collection, then a dual-write target
            # Every document is checked before the first is written: a bad one is refused with nothing written.
            check_documents(spec, documents, self._milvus.primary_key(collection)[1])
            counts.append(self._write_overlapped(spec, collection, documents))
        return counts[0]

    def _write_overlapped(self, spec: CollectionSettings, collection: str, docs: Sequence[Mapping[str, Any]]) -> int:
        """Encode chunk i+1 while chunk i is written (one writer thread; the encoders and gRPC release the GIL).

        A failure stops at the chunk it hit and raises; chunks before it are written, and since rows are upserted
        by id, calling again with the same documents finishes the job without duplicates."""
        model, batch = self.model_for(collection), self.settings.model.batch_size
        size = batch * 8
        text_field = spec.require_text_field()
        return write_overlapped(
            (docs[i : i + size] for i in range(0, len(docs), size)),
            lambda chunk: model.embed_rows(chunk, text_field, spec.vector_field, batch),
            lambda rows: self._milvus.upsert(collection, rows),
            name="embguard-insert-write",
        )

    def delete(self, alias: str, ids: Sequence[int | str]) -> None:
        """Delete documents by id; ids are checked against the key's type first, so none can widen it."""
        targets = self._targets(alias)
        check_ids(ids, self._milvus.primary_key(targets[0])[1], "delete ids")
        for collection in targets:
            self._milvus.delete(collection, ids=list(ids))
