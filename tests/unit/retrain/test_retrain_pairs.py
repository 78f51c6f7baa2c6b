import pytest

from retrain import (
    MAX_PAIR_WEIGHT,
    DataError,
    FeedbackRecord,
    PositionBias,
    build_pairs,
    with_explicit_negatives,
)

DOCS = {1: "passage one", 2: "passage two", 3: "passage three"}


def test_clicks_and_positives_become_deduplicated_weighted_pairs() -> None:
    recs = [
        FeedbackRecord("how to sort", 1, "click"),
        FeedbackRecord("how  to sort", 1, "click", ts_ms=5),
        FeedbackRecord("how to sort", 2, "click"),
        FeedbackRecord("how to sort", 3, "positive", 2.0),
    ]
    tp = build_pairs(recs, DOCS)
    assert sorted((p.query, p.positive_id, p.weight) for p in tp.pairs) == [
        ("how to sort", 1, 2.0),  # a repeated query's clicks add up
        ("how to sort", 2, 1.0),
        ("how to sort", 3, 2.0),
    ]
    assert tp.positives["how to sort"] == {1, 2, 3}


def test_the_same_events_in_any_order_give_the_same_pairs_in_the_same_order() -> None:
    """A database returns feedback in its own order (Milvus: by random primary key); training must not see it."""
    import random

    recs = [
        FeedbackRecord(f"query {i % 7}", 1 + i % 3, "click" if i % 4 else "positive", 0.1 * (1 + i % 5), ts_ms=i % 3)
        for i in range(60)
    ]
    first = build_pairs(recs, DOCS).pairs
    for seed in range(5):
        shuffled = recs[:]
        random.Random(seed).shuffle(shuffled)
        assert build_pairs(shuffled, DOCS).pairs == first
    assert [(p.query, p.positive_id) for p in first] == sorted((p.query, p.positive_id) for p in first)


def test_only_explicit_negatives_are_negatives_and_same_time_conflicts_are_dropped() -> None:
    recs = [
        FeedbackRecord("q", 1, "click"),
        FeedbackRecord("q", 2, "negative"),
        FeedbackRecord("q", 3, "positive", ts_ms=7),
        FeedbackRecord("q", 3, "negative", ts_ms=7),
    ]
    tp = build_pairs(recs, DOCS)
    assert [p.positive_id for p in tp.pairs] == [1]
    assert tp.negatives == {"q": frozenset({2})}  # 3 was judged both ways at once by one source: neither side


def test_skipped_results_above_a_click_are_not_negatives() -> None:
    # Ranks 1-7 were shown above the click at rank 8 and skipped: weak evidence, never a negative.
    tp = build_pairs([FeedbackRecord("q", 3, "click", rank=8)], DOCS)
    assert tp.negatives == {} and [(p.positive_id, p.weight) for p in tp.pairs] == [(3, 8.0)]


def test_a_click_is_weighted_by_the_rank_it_was_shown_at() -> None:
    recs = [
        FeedbackRecord("q", 1, "click", rank=1),
        FeedbackRecord("q", 2, "click", rank=8),
        FeedbackRecord("q", 3, "click", rank=None),  # the tapped row was pruned: weight 1
        FeedbackRecord("r", 1, "positive", rank=8),  # an explicit judgement is not a click: no position weight
    ]
    got = {(p.query, p.positive_id): p.weight for p in build_pairs(recs, DOCS).pairs}
    assert got == {("q", 1): 1.0, ("q", 2): 8.0, ("q", 3): 1.0, ("r", 1): 1.0}
    no_bias = build_pairs(recs, DOCS, position_bias=PositionBias(eta=0.0)).pairs
    assert {p.weight for p in no_bias} == {1.0}


def test_one_pairs_total_weight_is_capped() -> None:
    heavy = [FeedbackRecord("q", 1, "click", rank=5, ts_ms=t) for t in range(30)]  # one user, 30 deep clicks
    (pair,) = build_pairs(heavy, DOCS).pairs
    assert pair.weight == MAX_PAIR_WEIGHT == 10.0
    (pair,) = build_pairs(heavy, DOCS, max_pair_weight=4.0).pairs
    assert pair.weight == 4.0


def test_an_annotators_label_outranks_user_feedback_which_outranks_clicks() -> None:
    recs = [
        # A user clicked 1, an annotator said it is not relevant (earlier, even): the label wins.
        FeedbackRecord("q", 1, "click", rank=3, ts_ms=50),
        FeedbackRecord("q", 1, "negative", ts_ms=10, source="label"),
        # A user clicked 2 and later judged it not relevant explicitly: the explicit judgement wins.
        FeedbackRecord("q", 2, "click", ts_ms=60),
        FeedbackRecord("q", 2, "negative", ts_ms=20),
        # A user judged 3 not relevant, an annotator labelled it relevant: the label wins, at its own weight.
        FeedbackRecord("q", 3, "negative", ts_ms=90),
        FeedbackRecord("q", 3, "click", rank=4, ts_ms=95),
        FeedbackRecord("q", 3, "positive", 1.0, ts_ms=1, source="label"),
    ]
    tp = build_pairs(recs, DOCS)
    assert [(p.positive_id, p.weight) for p in tp.pairs] == [(3, 1.0)]
    assert tp.negatives == {"q": frozenset({1, 2})}


def test_within_one_source_the_latest_event_wins() -> None:
    recs = [
        FeedbackRecord("q", 1, "positive", ts_ms=1),
        FeedbackRecord("q", 1, "negative", ts_ms=2),  # changed their mind
        FeedbackRecord("q", 2, "negative", ts_ms=1),
        FeedbackRecord("q", 2, "positive", 3.0, ts_ms=2),
        FeedbackRecord("q", 2, "positive", 1.0, ts_ms=3),  # agrees with the one before: both count
        FeedbackRecord("q", 3, "negative", ts_ms=9, source="label"),
        FeedbackRecord("q", 3, "positive", ts_ms=4, source="label"),  # an older label, out of order: overruled
    ]
    tp = build_pairs(recs, DOCS)
    assert [(p.positive_id, p.weight) for p in tp.pairs] == [(2, 4.0)]
    assert tp.negatives == {"q": frozenset({1, 3})}


def test_an_unknown_source_is_rejected() -> None:
    with pytest.raises(DataError, match="source 'bot'"):
        build_pairs([FeedbackRecord("q", 1, "click", source="bot")], DOCS)  # type: ignore[arg-type]


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
