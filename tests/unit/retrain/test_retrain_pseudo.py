"""Pseudo-queries: (first sentence, the rest) pairs for documents nobody searched, offline and seeded."""

from __future__ import annotations

import pytest

import retrain
from retrain import pseudo_pairs, pseudo_query

DOC = (
    "Return a new sorted list from the items in iterable. A custom key function can be supplied to customise the "
    "sort order, and the reverse flag can be set to request the result in descending order."
)


def test_the_first_sentence_is_the_query_and_never_part_of_the_positive() -> None:
    q, rest = pseudo_query(DOC) or ("", "")
    assert q == "Return a new sorted list from the items in iterable."
    assert rest.startswith("A custom key function") and q not in rest


@pytest.mark.parametrize(
    "text",
    [
        "One sentence only, however long it runs on and on without an end",
        "Short. Rest.",  # a rest too short to be a passage
        "Hi. " + "A rest that is long enough to be a passage of its own, surely, with words." * 2,  # query too short
        "",
    ],
)
def test_texts_without_a_sentence_and_a_rest_make_no_pair(text: str) -> None:
    assert pseudo_query(text) is None


def test_a_long_first_sentence_is_cut_to_a_query_length() -> None:
    long = " ".join(f"word{i}" for i in range(60)) + ". " + DOC
    q, _ = pseudo_query(long) or ("", "")
    assert len(q.split()) == retrain.pseudo.MAX_QUERY_WORDS


def test_pairs_skip_named_documents_respect_the_limit_and_do_not_depend_on_input_order() -> None:
    ids = list(range(40))
    texts = [f"Document {i} explains topic number {i} in one line. " + DOC for i in ids]
    pairs = pseudo_pairs(ids, texts, exclude={0, 1, 2}, limit=10, seed=3)
    assert len(pairs) == 10 and not {p.positive_id for p in pairs} & {0, 1, 2}
    assert all(p.query == f"Document {p.positive_id} explains topic number {p.positive_id} in one line." for p in pairs)
    again = pseudo_pairs(ids[::-1], texts[::-1], exclude={2, 1, 0}, limit=10, seed=3)
    assert again == pairs  # the order of the corpus read from Milvus does not change what is trained
    assert pseudo_pairs(ids, texts, exclude={0, 1, 2}, limit=10, seed=4) != pairs  # the seed draws them
    assert len(pseudo_pairs(ids, texts, limit=1000)) == 40 and pseudo_pairs(ids, texts, limit=0) == []


def test_bad_arguments_are_named() -> None:
    with pytest.raises(retrain.ConfigError, match="got 2 ids for 1 texts"):
        pseudo_pairs([1, 2], ["x"], limit=1)
    with pytest.raises(retrain.ConfigError, match="limit=-1 must be >= 0"):
        pseudo_pairs([1], ["x"], limit=-1)
