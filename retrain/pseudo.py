"""Pseudo-queries: training pairs for documents nobody has searched yet, made from the document text alone.

Feedback only covers documents users already found, so the model adapts to the part of the corpus the live
model serves well. A document's first sentence reads like a summary of it, which is what a query is: the pair
(first sentence, the rest of the document) is the *inverse cloze task* (Lee et al. 2019) with the sentence always
removed, so the model cannot learn to match a passage by copying words it contains. Offline, seeded, no
generator model: the only input is the text that is indexed anyway.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

from .errors import ConfigError
from .pairs import Pair
from .protocols import DocId

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z0-9(\"'`])")
MIN_QUERY_CHARS = 12
MIN_REST_CHARS = 60
MAX_QUERY_WORDS = 24


def pseudo_query(text: str) -> tuple[str, str] | None:
    """(first sentence, rest of the text), or None when the text has no usable sentence plus a rest."""
    text = " ".join(text.split())
    parts = _SENTENCE_END.split(text, maxsplit=1)
    if len(parts) < 2:
        return None
    query, rest = parts[0].strip(), parts[1].strip()
    words = query.split()
    if len(words) > MAX_QUERY_WORDS:
        query = " ".join(words[:MAX_QUERY_WORDS])
    if len(query) < MIN_QUERY_CHARS or len(rest) < MIN_REST_CHARS:
        return None
    return query, rest


def pseudo_pairs(
    doc_ids: Sequence[DocId],
    texts: Sequence[str],
    *,
    exclude: Iterable[DocId] = (),
    limit: int,
    seed: int = 0,
) -> list[Pair]:
    """Up to ``limit`` pseudo-query pairs over the documents not in ``exclude`` (those users searched, and those
    held out for judging), drawn seeded; sorted by (query, document) so the order never depends on the input's."""
    if len(doc_ids) != len(texts):
        raise ConfigError(f"pseudo_pairs got {len(doc_ids)} ids for {len(texts)} texts; pass one id per text")
    if limit < 0:
        raise ConfigError(f"pseudo_pairs limit={limit} must be >= 0 (0 makes none)")
    skip = set(exclude)
    made: dict[str, Pair] = {}
    for i, text in sorted(zip(doc_ids, texts, strict=True), key=lambda x: str(x[0])):
        if i in skip or not text:
            continue
        qr = pseudo_query(text)
        if qr is not None and qr[0] not in made:
            made[qr[0]] = Pair(query=qr[0], positive=qr[1], positive_id=i)
    pairs = list(made.values())
    if len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return sorted(pairs, key=lambda p: (p.query, str(p.positive_id)))
