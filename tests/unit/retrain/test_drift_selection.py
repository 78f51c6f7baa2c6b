from collections.abc import Callable

import numpy as np
import pytest

from retrain import (
    NO_CLUSTER,
    ConfigError,
    DataError,
    DiversitySelection,
    DriftSelection,
    DriftSignals,
    MarginSelection,
    MixedSelection,
    NoveltySelection,
    Pool,
    RandomSelection,
    select_drift,
)
from retrain.selection import SelectionStrategy


def _signals(n: int = 200, seed: int = 0) -> DriftSignals:
    """Queries 0-59 are the drift: flagged, in three clusters of 20; the rest is in-distribution."""
    rng = np.random.default_rng(seed)
    flag = np.zeros(n, dtype=bool)
    flag[:60] = True
    cluster = np.full(n, NO_CLUSTER, dtype=np.int64)
    cluster[:60] = np.repeat([0, 1, 2], 20)
    return DriftSignals(
        ood_score=rng.random(n) + flag, ood_flag=flag, cluster=cluster, top1=rng.random(n), clicked=rng.random(n) < 0.5
    )


def _pool(n: int = 200) -> Pool:
    rng = np.random.default_rng(1)
    return Pool(embeddings=rng.normal(size=(n, 8)).astype(np.float32), novelty=rng.random(n), margin=rng.random(n))


STRATEGIES: dict[str, Callable[[], SelectionStrategy]] = {
    "random": RandomSelection,
    "novelty": NoveltySelection,
    "margin": MarginSelection,
    "diversity": DiversitySelection,
    "mixed": lambda: MixedSelection([(DiversitySelection(), 1.0), (MarginSelection(), 1.0)]),
    "drift": lambda: DriftSelection(_signals()),
    "drift-random-within": lambda: DriftSelection(_signals(), prefer_failures=False),
    "drift-share-1": lambda: DriftSelection(_signals(), drift_share=1.0),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@pytest.mark.parametrize("budget", [0, 1, 37, 200, 500])
def test_every_strategy_returns_distinct_in_range_indices_within_budget_deterministically(
    name: str, budget: int
) -> None:
    strategy = STRATEGIES[name]()
    pool = _pool()
    got = strategy.select(pool, budget, np.random.default_rng(7))
    again = strategy.select(pool, budget, np.random.default_rng(7))
    assert got.dtype.kind == "i"
    assert len(got) == min(budget, len(pool))
    assert len(set(got.tolist())) == len(got)
    assert ((got >= 0) & (got < len(pool))).all()
    assert got.tolist() == again.tolist()
    with pytest.raises(ConfigError, match="budget"):
        strategy.select(pool, -1, np.random.default_rng(0))


def test_drift_spends_its_share_on_flagged_queries_and_the_rest_elsewhere() -> None:
    got = select_drift(_signals(), 50, np.random.default_rng(0))
    in_drift = got < 60
    assert in_drift.sum() == 40  # 80% of 50
    assert in_drift[:40].all()  # most wanted first: the drift picks lead
    assert not in_drift[40:].any()  # the random remainder comes from untargeted queries
    only = select_drift(_signals(), 50, np.random.default_rng(0), drift_share=1.0)
    assert (only < 60).all()


def test_drift_picks_spread_evenly_over_the_drifted_clusters() -> None:
    s = _signals()
    got = select_drift(s, 30, np.random.default_rng(3), drift_share=1.0)
    assert s.cluster is not None
    counts = np.bincount(s.cluster[got], minlength=3)
    assert counts.tolist() == [10, 10, 10]
    # Round-robin: every block of three consecutive picks covers the three clusters.
    assert all(len(set(s.cluster[got[i : i + 3]].tolist())) == 3 for i in range(0, 30, 3))


def test_uneven_clusters_small_ones_are_exhausted_then_the_big_one_continues() -> None:
    cluster = np.array([0] * 50 + [1] * 3 + [NO_CLUSTER] * 47, dtype=np.int64)
    got = select_drift(DriftSignals(cluster=cluster), 20, np.random.default_rng(0), drift_share=1.0)
    assert sorted(cluster[got].tolist()).count(1) == 3
    assert (cluster[got] != NO_CLUSTER).all()


def test_prefer_failures_puts_unclicked_low_top1_queries_first_within_a_cluster() -> None:
    n = 40
    cluster = np.zeros(n, dtype=np.int64)
    clicked = np.arange(n) % 2 == 0  # odd indices unclicked
    top1 = np.linspace(0.9, 0.1, n)  # later indices have lower top-1
    s = DriftSignals(cluster=cluster, clicked=clicked, top1=top1)
    got = select_drift(s, 10, np.random.default_rng(0), drift_share=1.0)
    assert got.tolist() == [39, 37, 35, 33, 31, 29, 27, 25, 23, 21]
    off = select_drift(s, 10, np.random.default_rng(0), drift_share=1.0, prefer_failures=False)
    assert off.tolist() != got.tolist()


def test_signals_that_target_a_query_ood_threshold_and_top1_floor_but_not_clicks_alone() -> None:
    s = DriftSignals(
        ood_score=np.array([0.1, 0.9, 0.2, 0.2]),
        ood_threshold=0.5,
        top1=np.array([0.8, 0.8, 0.3, 0.8]),
        top1_floor=0.5,
        clicked=np.array([True, True, True, False]),
    )
    assert s.targeted().tolist() == [False, True, True, False]


def test_nothing_flagged_falls_back_to_random_selection() -> None:
    n = 100
    s = DriftSignals(ood_flag=np.zeros(n, dtype=bool), cluster=np.full(n, NO_CLUSTER, dtype=np.int64))
    got = select_drift(s, 30, np.random.default_rng(5))
    assert len(set(got.tolist())) == 30
    assert got.tolist() == DriftSelection(s).select(Pool(size=n), 30, np.random.default_rng(5)).tolist()
    assert len(select_drift(DriftSignals(size=n), 30, np.random.default_rng(0))) == 30


def test_few_untargeted_queries_budget_is_topped_up_from_leftover_drift() -> None:
    flag = np.ones(10, dtype=bool)
    flag[:2] = False
    got = select_drift(DriftSignals(ood_flag=flag), 9, np.random.default_rng(0), drift_share=0.5)
    assert len(got) == 9 and len(set(got.tolist())) == 9
    assert {0, 1} <= set(got.tolist())


def test_length_mismatch_names_the_fields_and_the_fix() -> None:
    with pytest.raises(DataError, match=r"ood_flag=5.*cluster=4.*one value per pool query"):
        DriftSignals(ood_flag=np.ones(5, dtype=bool), cluster=np.zeros(4, dtype=np.int64))
    with pytest.raises(DataError, match=r"pool has 3 queries but DriftSignals has 5"):
        DriftSelection(DriftSignals(size=5)).select(Pool(size=3), 2, np.random.default_rng(0))


def test_bad_values_name_the_field() -> None:
    with pytest.raises(DataError, match=r"DriftSignals.cluster must be a 1-D integer array"):
        DriftSignals(cluster=np.array([0.5, 1.0]))
    with pytest.raises(DataError, match=r"DriftSignals.ood_flag must hold booleans"):
        DriftSignals(ood_flag=np.array([0, 2]))
    with pytest.raises(DataError, match=r"DriftSignals.top1 has 1 NaN"):
        DriftSignals(top1=np.array([0.5, np.nan]))
    with pytest.raises(DataError, match=r"ood_threshold is set but ood_score is missing"):
        DriftSignals(ood_flag=np.ones(2, dtype=bool), ood_threshold=0.3)
    with pytest.raises(DataError, match=r"top1_floor is set but top1 is missing"):
        DriftSignals(size=2, top1_floor=0.3)
    with pytest.raises(DataError, match=r"no arrays and no size"):
        DriftSignals()


def test_negative_budget_and_bad_share_are_config_errors() -> None:
    s = DriftSignals(size=4)
    with pytest.raises(ConfigError, match=r"budget=-1 is negative"):
        select_drift(s, -1, np.random.default_rng(0))
    with pytest.raises(ConfigError, match=r"drift_share=1.5 must lie in \[0, 1\]"):
        select_drift(s, 2, np.random.default_rng(0), drift_share=1.5)
    with pytest.raises(ConfigError, match=r"drift_share=-0.1"):
        DriftSelection(s, drift_share=-0.1)


def test_drift_selection_composes_with_mixed_selection() -> None:
    mix = MixedSelection([(DriftSelection(_signals()), 1.0), (MarginSelection(), 1.0)])
    got = mix.select(_pool(), 40, np.random.default_rng(0))
    assert len(set(got.tolist())) == 40
