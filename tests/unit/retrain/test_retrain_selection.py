import numpy as np
import pytest

from retrain import (
    ConfigError,
    DataError,
    DiversitySelection,
    MarginSelection,
    MixedSelection,
    NoveltySelection,
    Pool,
    RandomSelection,
    k_center_greedy,
)


def _points(n: int = 300, d: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_k_center_every_pick_maximises_the_min_distance_at_its_step() -> None:
    x = _points()
    chosen = k_center_greedy(x, 25, np.random.default_rng(1))
    assert len(set(chosen.tolist())) == 25
    for step in range(1, len(chosen)):
        prev = x[chosen[:step]]
        d = np.linalg.norm(x[:, None, :] - prev[None, :, :], axis=2).min(axis=1)
        assert d[chosen[step]] == pytest.approx(d.max(), rel=1e-4)


def test_k_center_respects_already_labelled_points() -> None:
    x = _points(100)
    initial = [0, 5, 9]
    chosen = k_center_greedy(x, 10, np.random.default_rng(0), initial=initial)
    assert not set(chosen.tolist()) & set(initial)
    d = np.linalg.norm(x[:, None] - x[initial][None], axis=2).min(axis=1)
    assert d[chosen[0]] == pytest.approx(d.max(), rel=1e-4)


def test_k_center_spreads_over_clusters_better_than_random() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 4)) * 20
    x = np.concatenate([c + rng.normal(size=(200, 4)) for c in centers]).astype(np.float32)
    picked = k_center_greedy(x, 5, rng)
    assert len({int(i) // 200 for i in picked}) == 5


def test_score_strategies_pick_the_extremes() -> None:
    pool = Pool(novelty=np.array([0.1, 0.9, 0.5, 0.95]), margin=np.array([0.3, 0.01, 0.2, 0.5]))
    rng = np.random.default_rng(0)
    assert NoveltySelection().select(pool, 2, rng).tolist() == [3, 1]
    assert MarginSelection().select(pool, 2, rng).tolist() == [1, 2]
    assert sorted(RandomSelection().select(pool, 4, rng).tolist()) == [0, 1, 2, 3]
    with pytest.raises(DataError, match="embeddings"):
        DiversitySelection().select(pool, 2, rng)
    with pytest.raises(ConfigError, match="budget"):
        RandomSelection().select(pool, -1, rng)


def test_mixed_selection_fills_the_budget_without_duplicates_in_weight_proportion() -> None:
    n = 200
    rng = np.random.default_rng(0)
    pool = Pool(embeddings=_points(n), novelty=rng.random(n), margin=rng.random(n))
    mix = MixedSelection([(NoveltySelection(), 3.0), (MarginSelection(), 1.0)])
    got = mix.select(pool, 40, np.random.default_rng(0))
    assert len(got) == 40 and len(set(got.tolist())) == 40
    top_novel = set(np.argsort(-pool.novelty)[:40].tolist())
    from_novel = len(set(got.tolist()) & top_novel)
    assert 25 <= from_novel <= 35  # ~3/4 of the picks come from the weight-3 strategy
    # Two identical strategies overlap completely: the rest is filled at random, still no duplicates.
    same = MixedSelection([(NoveltySelection(), 1.0), (NoveltySelection(), 1.0)]).select(pool, 30, rng)
    assert len(set(same.tolist())) == 30
    assert len(mix.select(pool, 1000, rng)) == n


def test_misses_come_first_for_annotators_then_deep_clicks_then_the_rest() -> None:
    from retrain import MissSelection, Pool

    # 0: clicked at 1; 1: no click, top-1 0.8; 2: clicked at 7; 3: no click, top-1 0.3; 4: clicked at 4; 5: at 2
    rank = np.array([1, 0, 7, 0, 4, 2])
    top1 = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.9])
    order = MissSelection().select(Pool(click_rank=rank, top1=top1), 6, np.random.default_rng(0))
    assert list(order[:4]) == [3, 1, 2, 4]  # unclicked (least sure first), then the deepest clicks
    assert set(order[4:]) == {0, 5} and len(set(order)) == 6
    assert list(MissSelection().select(Pool(click_rank=rank, top1=top1), 2, np.random.default_rng(1))) == [3, 1]
    with pytest.raises(Exception, match="misses selection needs Pool.click_rank"):
        MissSelection().select(Pool(size=3), 2, np.random.default_rng(0))
