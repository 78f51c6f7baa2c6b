"""Every `[retrain] recipe` the product offers trains and loads on a tiny local model, and a recipe's missing
inputs are named before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import retrain
from embguard.config.lifecycle import RECIPES, RetrainSettings
from embguard.models import loading as models
from embguard.training import autorecipe, recipes
from embguard.training.recipes import train_config, train_data
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


FINETUNES = tuple(r for r in RECIPES if r != "adapter")  # the adapter trains in-process: its own test below


@pytest.mark.integration  # a real (tiny-model) training run per recipe, a few seconds each
@pytest.mark.parametrize("recipe", FINETUNES)
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


@pytest.mark.integration
def test_matryoshka_served_at_a_prefix_dimension(tiny_model: Path, tmp_path: Path) -> None:
    """matryoshka_serve_dim: the saved model outputs the re-normalised prefix, so the swap builds the new
    collection at that dimension; a dimension that was not trained is refused up front."""
    base = models.load(str(tiny_model))
    rs = RetrainSettings(recipe="matryoshka", batch_size=8, matryoshka_dims=(16,), matryoshka_serve_dim=16)
    trained = recipes.train(
        rs, "matryoshka", base, PAIRS, tmp_path / "m", checkpoint_dir=str(tmp_path / "ck"), max_steps=2
    )
    assert trained.served_dim == 16 and trained.reindex
    served = models.load(str(trained.path))
    assert served.dimension == 16
    texts = [p.positive for p in PAIRS[:5]]
    v = served.encode(texts)
    assert v.shape == (5, 16) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="matryoshka_serve_dim = 24 is not one of"):
        RetrainSettings(recipe="matryoshka", matryoshka_dims=(16,), matryoshka_serve_dim=24)


@pytest.mark.integration
def test_auto_trains_each_recipe_and_keeps_the_best_on_validation(tiny_model: Path, tmp_path: Path) -> None:
    base = models.load(str(tiny_model))
    rs = RetrainSettings(
        recipe="auto", batch_size=8, adapter_epochs=20, auto_recipes=("adapter", "finetune"), max_epochs=2
    )
    said: list[str] = []

    def train_one(recipe: str, pairs: Sequence[Pair], out: Path, **kw: Any) -> recipes.Trained:
        return recipes.train(rs, recipe, base, pairs, out, checkpoint_dir=str(tmp_path / "ck" / out.name), **kw)

    corpus = ([f"d{i}" for i in range(len(DOCS))], list(DOCS))
    choice = autorecipe.choose(rs, base, PAIRS, [], corpus, tmp_path / "auto", train_one, said.append)
    assert set(choice.seconds) == {"adapter", "finetune"} and not choice.skipped
    best = max(("adapter", "finetune"), key=lambda r: choice.validation_ndcg[r])
    assert choice.chosen.recipe == best and choice.chosen.path.is_dir()
    # The fine-tune was scored after each epoch it ran, and its score is its best epoch's.
    assert 1 <= len(choice.epochs["finetune"]) <= 2
    assert choice.validation_ndcg["finetune"] == max(choice.epochs["finetune"])
    # The winner was trained again on all pairs; the choosing runs are gone.
    assert choice.refit_pairs == len(PAIRS) and choice.chosen.path.name == f"final-{best}"
    assert not (tmp_path / "auto" / "auto-adapter").exists() and not (tmp_path / "auto" / "auto-finetune").exists()
    assert f"chose {best}" in choice.summary() and choice.to_dict()["validation_queries"] == len(
        choice.validation_queries
    )
    # A spent budget starts nothing after the first recipe, and a spent retrain.budget_s gates the winner as chosen.
    tight = rs.model_copy(update={"auto_budget_s": 0, "budget_s": 0})
    choice = autorecipe.choose(tight, base, PAIRS, [], corpus, tmp_path / "auto2", train_one, said.append)
    assert list(choice.seconds) == ["adapter"] and choice.skipped == ("finetune",)
    assert choice.refit_pairs == 0 and choice.chosen.path.name == "auto-adapter"
    assert "NOT trained again on all pairs" in choice.summary()
