import pytest

from retrain import (
    LeakageError,
    Pair,
    QuerySplit,
    assert_disjoint,
    split_pairs,
    split_queries,
    split_queries_stratified,
)


def test_split_is_seeded_disjoint_and_covers_all_distinct_queries() -> None:
    qs = [f"query {i}" for i in range(100)] + ["Query 3", "query  4"]
    a, b = split_queries(qs, 0.3, seed=7), split_queries(qs, 0.3, seed=7)
    assert a == b
    assert len(a.held_out) == 30 and len(a.train) == 70
    assert not {q.lower() for q in a.train} & {q.lower() for q in a.held_out}
    assert split_queries(qs, 0.3, seed=8) != a


def test_leakage_is_detected_case_and_space_insensitively() -> None:
    with pytest.raises(LeakageError, match="held-out"):
        assert_disjoint(["How to sort"], ["how  to SORT"])
    with pytest.raises(LeakageError):
        QuerySplit(train=("a", "b"), held_out=("b",))


def test_split_pairs_never_puts_a_held_out_query_in_training() -> None:
    pairs = [Pair(query=f"q{i % 20}", positive=f"p{i}") for i in range(60)]
    split = split_queries([p.query for p in pairs], 0.25, seed=0)
    train, test = split_pairs(pairs, split)
    assert {p.query for p in train}.isdisjoint({p.query for p in test})
    assert len(train) + len(test) == 60 and {p.query for p in test} == set(split.held_out)


def test_bad_fraction_is_rejected() -> None:
    with pytest.raises(ValueError, match="held_out_fraction"):
        split_queries(["a", "b"], 1.5)


def test_a_stratified_split_holds_out_every_stratum_in_proportion_and_stays_disjoint() -> None:
    clicked = [f"clicked {i}" for i in range(90)]
    labelled = [f"labelled {i}" for i in range(10)] + ["CLICKED 5"]  # also clicked: counted once
    split = split_queries_stratified({"clicked": clicked, "labelled": labelled}, 0.2, seed=0)
    held = set(split.held_out)
    assert sum(q.startswith("clicked") for q in held) == 18 and sum(q.startswith("labelled") for q in held) == 2
    assert len(split.train) + len(held) == 100 and not held & set(split.train)
    # Unstratified, 10 labelled queries in 100 are held out 0-5 times depending on the seed; never here.
    assert split == split_queries_stratified({"clicked": clicked, "labelled": labelled}, 0.2, seed=0)
    assert split_queries_stratified({"clicked": clicked, "labelled": ["only one"]}, 0.2).train[-1] == "only one"
