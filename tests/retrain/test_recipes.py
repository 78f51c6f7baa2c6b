"""Every `[retrain] recipe` the product offers trains and loads on a tiny local model, and a recipe's missing
inputs are named before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import retrain
from embguard import config
from embguard.errors import ConfigError, TrainingError
from embguard.modelcommands import with_recipe
from embguard.opsettings import RECIPES, RetrainSettings
from embguard.recipes import train_config, train_data
from retrain import Pair

PAIRS = tuple(
    Pair(
        query=f"how do I {verb} a {noun}",
        positive=f"use {verb}_{noun}() to {verb} the {noun} quickly",
        negative=f"the {noun} module has no {verb} function",  # as mined hard negatives would be
    )
    for verb in ("open", "close", "sort", "parse", "copy", "hash")
    for noun in ("file", "list", "socket", "string", "path")
)
DOCS = tuple(f"{p.positive} and more words about the standard library" for p in PAIRS)


def _settings(recipe: str, tiny_model: Path) -> RetrainSettings:
    teacher = str(tiny_model) if recipe == "distill" else ""
    return RetrainSettings(
        recipe=recipe, teacher_model=teacher, batch_size=8, learning_rate=1e-3, matryoshka_dims=(16,), tsdae_epochs=1.0
    )


@pytest.mark.integration  # a real (tiny-model) training run per recipe, a few seconds each
@pytest.mark.parametrize("recipe", RECIPES)
def test_each_recipe_trains_and_loads(recipe: str, tiny_model: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    rs = _settings(recipe, tiny_model)
    dim = SentenceTransformer(str(tiny_model), device="cpu").get_embedding_dimension()
    cfg = train_config(rs, base_model=str(tiny_model), base_dim=dim, checkpoint_dir=str(tmp_path / "ck"), max_steps=2)
    assert cfg.loss == ("margin_mse" if recipe == "distill" else "mnrl")
    assert cfg.matryoshka_dims == ((dim, 16) if recipe == "matryoshka" else ())
    assert (cfg.tsdae_epochs > 0) == (recipe == "domain_adapt")
    res = retrain.train(cfg, train_data(rs, PAIRS, DOCS), tmp_path / "m")
    assert res.steps == 2 and (res.tsdae_steps > 0) == (recipe == "domain_adapt")
    vectors = SentenceTransformer(str(tmp_path / "m"), device="cpu").encode(["how do I sort a list"])
    assert vectors.shape == (1, dim) and np.isfinite(vectors).all()


def test_a_recipes_missing_inputs_are_named(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="teacher_model"):
        RetrainSettings(recipe="distill")
    with pytest.raises(ValueError, match="hard_negatives"):
        RetrainSettings(recipe="distill", teacher_model="/t", hard_negatives=False)
    with pytest.raises(TrainingError, match="triplets"):
        train_data(_settings("distill", tiny_model), [Pair(query="q", positive="p")])
    with pytest.raises(TrainingError, match="documents"):
        train_data(_settings("domain_adapt", tiny_model), PAIRS, ())
    settings = config.load(None, environ={})
    assert with_recipe(settings, None) is settings
    assert with_recipe(settings, "matryoshka").retrain.recipe == "matryoshka"
    with pytest.raises(ConfigError, match=r"--recipe distill: retrain.recipe = 'distill' needs retrain.teacher_model"):
        with_recipe(settings, "distill")
