"""What the application hands ``embguard.Client`` is checked here, before anything reaches Milvus or the
model: a bad value raises :class:`embguard.errors.InvalidInput` naming it, and nothing is written. Also the
client's own Prometheus counters (pass ``registry=`` to ``Client``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from embguard.client.tap import _MAX_TEXT, SIGNALS, vector_problem
from embguard.config.bounds import weight_problem
from embguard.config.settings import CollectionSettings
from embguard.errors import ConfigError, FeedbackError, InvalidFeedback, InvalidInput, MilvusError
from embguard.milvus.filters import check_ids, check_utf8, surrogate_at

if TYPE_CHECKING:
    from embguard.milvus.milvus import Milvus

TEXT_LIMIT = 65535


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InvalidInput("search(texts=...) takes a list of strings; wrap a single query in a list")
    if not texts:
        raise InvalidInput("search(texts=[]) has no query; pass at least one string")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise InvalidInput(f"search texts at positions {bad[:10]} are not strings")
    too_long = [i for i, t in enumerate(texts) if len(t) > _MAX_TEXT]
    if too_long:
        raise InvalidInput(f"search texts at positions {too_long[:10]} are longer than {_MAX_TEXT} characters")
    for i, t in enumerate(texts):
        check_utf8(t, f"search text at position {i}")
    return list(texts)


def check_vectors(vectors: Any, dim: int, what: str) -> np.ndarray:
    """``vectors`` as float32 (n, dim), every row a usable embedding: finite, within +-MAX_VECTOR_VALUE (checked
    before the cast, so a value float32 cannot hold is named, not turned into inf) and not all zeros."""
    try:
        wide = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(f"{what} must be numbers, shape (n, {dim})") from None
    if wide.ndim != 2 or wide.shape[0] == 0 or wide.shape[1] != dim:
        raise InvalidInput(f"{what} must have shape (n, {dim}) with n >= 1; got {wide.shape}")
    for i, row in enumerate(wide):
        problem = vector_problem(row)
        if problem is not None:
            raise InvalidInput(
                f"{what}: the vector at position {i} {problem}; pass the embedding itself (finite values, not all "
                "zeros, as the model outputs it); nothing was searched"
            )
    return wide.astype(np.float32)


def check_documents(spec: CollectionSettings, documents: Sequence[Any], int_keys: bool) -> None:
    """Every document has a valid id and a string text within the VARCHAR limit; else nothing is written."""
    if not spec.text_field:
        raise ConfigError(
            f"collection {spec.name!r} has no text_field configured; embguard.Client embeds text "
            "and keeps it so the collection can be re-embedded later"
        )
    bad = [
        i
        for i, d in enumerate(documents)
        if not isinstance(d, Mapping) or spec.id_field not in d or not isinstance(d.get(spec.text_field), str)
    ]
    if bad:
        raise InvalidInput(
            f"documents at positions {bad[:10]} lack {spec.id_field!r} or a string "
            f"{spec.text_field!r}; every document needs both; nothing was written"
        )
    check_ids([d[spec.id_field] for d in documents], int_keys, f"documents' {spec.id_field!r}")
    for i, d in enumerate(documents):
        for key, value in d.items():
            at = surrogate_at(value)
            if at is not None:
                raise InvalidInput(
                    f"document at position {i}: field {key!r}{at} is not valid UTF-8 text (it holds a lone "
                    "surrogate, usually from bytes decoded with errors='surrogateescape' or a broken '\\ud800' "
                    "escape); decode the source with errors='replace' or drop the character; nothing was written"
                )
    long = [i for i, d in enumerate(documents) if len(d[spec.text_field]) > TEXT_LIMIT]
    if long:
        raise InvalidInput(
            f"documents at positions {long[:10]} have {spec.text_field!r} longer than "
            f"{TEXT_LIMIT} characters (the collection's VARCHAR limit); split them"
        )


def check_feedback(signal: Any, weight: Any, query_text: Any) -> None:
    if not isinstance(signal, str) or signal not in SIGNALS:
        raise InvalidFeedback(
            f"feedback signal {signal!r:.80} is not one of {', '.join(SIGNALS)}; nothing was recorded"
        )
    problem = weight_problem(weight)
    if problem is not None:
        raise InvalidFeedback(f"feedback {problem}; nothing was recorded")
    if query_text is not None and not isinstance(query_text, str):
        raise InvalidFeedback(f"feedback query_text must be a string, got {type(query_text).__name__}")
    if query_text is not None:
        try:
            check_utf8(query_text, "feedback query_text")
        except InvalidInput as exc:
            raise InvalidFeedback(f"{exc}; nothing was recorded") from None


def check_feedback_doc(milvus: Milvus, collection: str, alias: str, hits: Sequence[Any], doc_id: Any) -> None:
    """A label must name a document that exists: one poison row would break every retrain after it."""
    try:
        (doc,) = check_ids([doc_id], milvus.primary_key(collection)[1], "feedback doc_id")
    except (InvalidInput, ValueError) as exc:
        raise InvalidFeedback(f"{exc}; nothing was recorded") from None
    if any(h["id"] == doc for h in hits):
        return
    try:
        found = milvus.query(collection, ids=[doc], output_fields=[])
    except MilvusError as exc:
        raise FeedbackError(f"feedback on doc {doc!r} was not recorded: {exc}") from None
    if not found:
        raise InvalidFeedback(
            f"feedback doc_id {doc!r} is not a document of {alias!r} ({collection}); nothing was recorded"
        )


class ClientMetrics:
    """Prometheus counters for the application process (pass ``registry=`` to ``Client``)."""

    def __init__(self, registry: Any):
        from prometheus_client import Counter

        self._searches = Counter(
            "embguard_client_searches_total", "Queries searched through embguard.Client", registry=registry
        )
        self._tap = Counter("embguard_tap_rows_total", "Query tap rows by outcome", ["outcome"], registry=registry)
        self._feedback = Counter("embguard_client_feedback_total", "Feedback recorded", ["signal"], registry=registry)
        for outcome in ("sampled", "written", "dropped_buffer_full", "dropped_write_error"):
            self._tap.labels(outcome)
        for signal in SIGNALS:
            self._feedback.labels(signal)

    def searched(self, n: int, sampled: int) -> None:
        self._searches.inc(n)
        if sampled:
            self._tap.labels("sampled").inc(sampled)

    def written(self, n: int) -> None:
        self._tap.labels("written").inc(n)

    def dropped(self, reason: str, n: int) -> None:
        self._tap.labels(f"dropped_{reason}").inc(n)

    def feedback(self, signal: str) -> None:
        self._feedback.labels(signal).inc()
