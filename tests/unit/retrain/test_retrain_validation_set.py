"""The validation set a fine-tune is scored on after every epoch travels to the training child intact, and a
malformed one is refused before any training starts."""

from __future__ import annotations

import pytest

import retrain
from retrain import Pair, TrainData, TrainResult, ValidationSet


def test_it_round_trips_through_the_training_job_file() -> None:
    vset = ValidationSet(("q1", "q2"), ("d0", "d1", "d2"), ((0,), (1, 2)))
    data = TrainData(pairs=(Pair("a", "b"),), validation=vset)
    assert TrainData.from_dict(data.to_dict()) == data
    assert TrainData.from_dict(TrainData(pairs=(Pair("a", "b"),)).to_dict()).validation is None
    res = TrainResult("m", "b", 3, 2.0, 1.0, 0.1, (0.1,), 1, 0, 0, None, validation_ndcg=(0.5, 0.6), best_epoch=2)
    assert TrainResult.from_dict(res.to_dict()) == res


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((("q",), ("d",), ()), "1 queries but 0 relevance rows"),
        (((), ("d",), ()), "at least one query"),
        ((("q",), ("d",), ((),)), "each with at least one relevant document"),
        ((("q",), ("d",), ((3,),)), r"outside 0\.\.0"),
    ],
)
def test_a_malformed_set_is_refused_by_name(args: tuple, match: str) -> None:
    with pytest.raises(retrain.ConfigError, match=match):
        ValidationSet(*args)


def test_patience_must_not_be_negative() -> None:
    with pytest.raises(retrain.ConfigError, match="early_stopping_patience=-1"):
        retrain.TrainConfig(base_model="x", early_stopping_patience=-1)
