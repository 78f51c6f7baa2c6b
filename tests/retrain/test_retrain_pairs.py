import pytest

from retrain import DataError, FeedbackRecord, build_pairs, with_explicit_negatives

DOCS = {1: "passage one", 2: "passage two", 3: "passage three"}


def test_clicks_and_positives_become_deduplicated_weighted_pairs() -> None:
    recs = [
        FeedbackRecord("how to sort", 1, "click"),
        FeedbackRecord("how  to sort", 1, "positive", 2.0),
        FeedbackRecord("how to sort", 2, "click"),
    ]
    tp = build_pairs(recs, DOCS)
    assert sorted((p.query, p.positive_id, p.weight) for p in tp.pairs) == [
        ("how to sort", 1, 3.0),
        ("how to sort", 2, 1.0),
    ]
    assert tp.positives["how to sort"] == {1, 2}


def test_only_explicit_negatives_are_negatives_and_conflicts_are_dropped() -> None:
    recs = [
        FeedbackRecord("q", 1, "click"),
        FeedbackRecord("q", 2, "negative"),
        FeedbackRecord("q", 3, "click"),
        FeedbackRecord("q", 3, "negative"),
    ]
    tp = build_pairs(recs, DOCS)
    assert [p.positive_id for p in tp.pairs] == [1]
    assert tp.negatives == {"q": frozenset({2})}  # 3 was both clicked and rejected: neither side


def test_missing_docs_are_reported_not_invented() -> None:
    tp = build_pairs([FeedbackRecord("q", 99, "click")], lambda d: DOCS.get(d))
    assert tp.pairs == () and tp.missing_doc_ids == (99,)


def test_unknown_signal_is_rejected() -> None:
    with pytest.raises(DataError, match="skip"):
        build_pairs([FeedbackRecord("q", 1, "skip")], DOCS)  # type: ignore[arg-type]


def test_explicit_negatives_become_triplets() -> None:
    recs = [FeedbackRecord("q", 1, "click"), FeedbackRecord("q", 2, "negative"), FeedbackRecord("r", 3, "click")]
    out = with_explicit_negatives(build_pairs(recs, DOCS), DOCS)
    assert sorted((p.query, p.positive_id, p.negative_id) for p in out) == [("q", 1, 2), ("r", 3, None)]
