"""``epochs = "auto"``: a fine-tune scored after every epoch keeps its best epoch's weights and stops once an
epoch does not beat it; the whole choice (recipe, epochs, the retrained winner) repeats exactly for a seed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import retrain
from embguard.config.lifecycle import RetrainSettings
from embguard.models import loading as models
from embguard.training import autorecipe, recipes
from retrain import Pair, TrainConfig, TrainData

pytestmark = pytest.mark.integration  # real (tiny-model) training runs, seconds each

PAIRS = tuple(
    Pair(
        query=f"how do I {verb} a {noun}",
        positive=f"use {verb}_{noun}() to {verb} the {noun} quickly",
        positive_id=f"{verb}-{noun}",
    )
    for verb in ("open", "close", "sort", "parse", "copy", "hash", "split", "join")
    for noun in ("file", "list", "socket", "string", "path")
)
CORPUS = ([p.positive_id for p in PAIRS], [p.positive for p in PAIRS])


def _weights_hash(model_dir: Path) -> str:
    """Every weight file of the model (a fine-tune's, or an adapter's linear map beside its base)."""
    h = hashlib.sha256()
    files = sorted(p for p in model_dir.rglob("*") if p.suffix in (".safetensors", ".bin", ".npy", ".pt"))
    assert files, f"no weights in {model_dir}"
    for f in files:
        h.update(str(f.relative_to(model_dir)).encode() + f.read_bytes())
    return h.hexdigest()


def test_the_best_epochs_weights_are_kept_and_training_stops_after_patience(tiny_model: Path, tmp_path: Path) -> None:
    base = models.load(str(tiny_model))
    fit, val = autorecipe.validation_split(PAIRS, [], 0.25)
    vset = autorecipe.validation_set(base, val, CORPUS)
    config = TrainConfig(
        base_model=str(tiny_model), batch_size=8, learning_rate=3e-3, epochs=6.0, early_stopping_patience=1
    )
    res = retrain.train(config, TrainData(pairs=tuple(fit), validation=vset), tmp_path / "m")
    scores = list(res.validation_ndcg)
    assert 1 <= len(scores) <= 6 and res.best_epoch == scores.index(max(scores)) + 1
    if len(scores) < 6:  # it stopped early: the epoch after the best did not beat it
        assert len(scores) == res.best_epoch + 1 and scores[-1] <= max(scores)
    # The saved model is the best epoch's, not the last one's: it scores exactly what that epoch scored.
    saved = autorecipe.score(models.load(str(tmp_path / "m")), vset)
    assert saved == pytest.approx(max(scores), abs=1e-6)


def test_no_epoch_starts_that_would_end_past_the_time_budget(tiny_model: Path, tmp_path: Path) -> None:
    """``time_budget_s`` (``retrain.budget_s`` while choosing epochs): at an epoch's end, training stops when one
    more epoch at the pace so far would end past the budget; without it every epoch runs (patience 0)."""
    base = models.load(str(tiny_model))
    fit, val = autorecipe.validation_split(PAIRS, [], 0.25)
    vset = autorecipe.validation_set(base, val, CORPUS)
    data = TrainData(pairs=tuple(fit), validation=vset)
    config = TrainConfig(
        base_model=str(tiny_model), batch_size=8, learning_rate=3e-3, epochs=3.0, early_stopping_patience=0
    )
    free = retrain.train(config, data, tmp_path / "free")
    assert len(free.validation_ndcg) == 3 and free.stopped_by == ""
    tight = retrain.train(replace(config, time_budget_s=1e-3), data, tmp_path / "tight")
    assert tight.validation_ndcg == free.validation_ndcg[:1] and tight.stopped_by == "time_budget"
    assert tight.best_epoch == 1 and tight.epochs == pytest.approx(1.0)
    with pytest.raises(retrain.ConfigError, match=r"time_budget_s=-1: use 0 \(no limit\)"):
        replace(config, time_budget_s=-1)


def _choose(tiny_model: Path, work: Path) -> autorecipe.AutoChoice:
    base = models.load(str(tiny_model))
    rs = RetrainSettings(
        recipe="auto", auto_recipes=("adapter", "finetune"), batch_size=8, learning_rate=3e-3, max_epochs=3
    )

    def train_one(recipe: str, pairs: Sequence[Pair], out: Path, **kw: Any) -> recipes.Trained:
        return recipes.train(rs, recipe, base, pairs, out, checkpoint_dir=str(work / "ck" / out.name), **kw)

    extra = retrain.pseudo_pairs(
        [f"x{i}" for i in range(8)],
        [f"The {n} helper reads data quickly. It then writes the {n} back to disk in one pass." for n in range(8)],
        limit=8,
    )
    return autorecipe.choose(rs, base, PAIRS, [], CORPUS, work, train_one, lambda s: None, extra)


def test_the_recipe_and_epoch_choice_repeats_exactly_for_a_seed(tiny_model: Path, tmp_path: Path) -> None:
    a, b = _choose(tiny_model, tmp_path / "a"), _choose(tiny_model, tmp_path / "b")
    strip = {"train_seconds", "refit_seconds"}
    assert {k: v for k, v in a.to_dict().items() if k not in strip} == {
        k: v for k, v in b.to_dict().items() if k not in strip
    }
    assert a.chosen.recipe == b.chosen.recipe and a.best_epochs == b.best_epochs
    assert a.refit_pairs == len(PAIRS)  # the winner was trained again on every pair
    assert _weights_hash(a.chosen.path) == _weights_hash(b.chosen.path)
