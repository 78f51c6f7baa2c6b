import random

import pytest

from retrain import ConfigError, PositionBias, click_weight, examination_propensity


def test_a_rank_1_click_weighs_1_and_deeper_clicks_weigh_more() -> None:
    assert click_weight(1) == 1.0
    assert click_weight(8) == pytest.approx(8.0)  # eta = 1: examined 1/8 as often, so 8 times the evidence
    assert click_weight(8) > click_weight(2) > click_weight(1)
    assert [examination_propensity(r) for r in (1, 2, 4)] == [1.0, 0.5, 0.25]


def test_weights_are_capped_and_an_unknown_rank_weighs_1() -> None:
    assert click_weight(10) == 10.0 and click_weight(50) == 10.0 and click_weight(1000, cap=3.0) == 3.0
    assert click_weight(None) == 1.0


def test_eta_sets_how_fast_examination_falls() -> None:
    assert PositionBias(eta=0.0).weight(8) == 1.0  # no position bias: every click is the same evidence
    assert PositionBias(eta=2.0).weight(3) == pytest.approx(9.0)
    assert PositionBias(eta=0.5).weight(4) == pytest.approx(2.0)


@pytest.mark.parametrize("rank", [0, -1, 1.5, True, None])
def test_a_rank_is_a_positive_integer(rank: object) -> None:
    with pytest.raises(ValueError, match="rank must be an integer >= 1"):
        examination_propensity(rank)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [{"eta": -1.0}, {"eta": float("nan")}, {"cap": 0.5}, {"cap": float("inf")}])
def test_bad_model_parameters_are_named(kw: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=next(iter(kw))):
        PositionBias(**kw)


def test_the_weights_undo_the_bias_of_position_biased_clicks() -> None:
    # Users examine rank r with probability 1/r and click a relevant result they examine; weighting every click
    # by its inverse propensity recovers the same total evidence per relevant result at every rank.
    rng = random.Random(0)
    n = 20000
    for rank in (1, 3, 6):
        clicks = sum(rng.random() < examination_propensity(rank) for _ in range(n))
        assert clicks * click_weight(rank) / n == pytest.approx(1.0, abs=0.05)
