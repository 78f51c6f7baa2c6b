from dataclasses import replace
from pathlib import Path

from retrain import (
    Pair,
    TrainConfig,
    TrainData,
)


def test_the_trainer_repeats_a_pair_by_its_weight(tiny_model: Path) -> None:
    from retrain.finetune import _datasets, load_model, repeat_by_weight

    model = load_model(tiny_model)
    config = TrainConfig(base_model=str(tiny_model))
    plain = [Pair("q1", "p1"), Pair("q2", "p2", weight=1.4), Pair("q3", "p3", weight=0.2)]
    ds, _ = _datasets(model, config, TrainData(pairs=tuple(plain)))
    assert ds["anchor"] == ["q1", "q2", "q3"]  # every weight rounds to 1: the data set is what it always was
    heavy = [Pair("q1", "p1"), Pair("q2", "p2", weight=2.0), Pair("q3", "p3", "n3", weight=8.0)]
    task, _ = _datasets(model, config, TrainData(pairs=tuple(heavy)))
    assert task["task"]["anchor"] == ["q1", "q2", "q2"]
    assert task["task_hard"]["anchor"] == ["q3"] * 3  # capped at 3 copies
    assert [p.query for p in repeat_by_weight(heavy, max_copies=5)] == ["q1", "q2", "q2"] + ["q3"] * 5
    assert [p.query for p in repeat_by_weight([Pair("q", "p", weight=2.5)])] == ["q"] * 3  # half rounds up


def test_weights_change_what_an_epoch_sees_not_what_it_costs(tiny_model: Path) -> None:
    from retrain.finetune import _datasets, load_model, step_budget

    model = load_model(tiny_model)
    config = TrainConfig(base_model=str(tiny_model), batch_size=2, epochs=2.0)
    plain = TrainData(pairs=tuple(Pair(f"q{i}", f"p{i}") for i in range(6)))
    assert step_budget(config, plain, _datasets(model, config, plain)[0]) == -1  # the trainer's own epochs
    heavy = TrainData(pairs=tuple(Pair(f"q{i}", f"p{i}", weight=3.0 if i < 2 else 1.0) for i in range(6)))
    ds, _ = _datasets(model, config, heavy)
    assert len(ds) == 10  # two pairs tripled ...
    assert step_budget(config, heavy, ds) == 6  # ... but 2 epochs still cost 6 rows x 2 / batch 2 = 6 steps
    assert step_budget(replace(config, max_steps=4), heavy, ds) == 4  # an explicit cap wins
