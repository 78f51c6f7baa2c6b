"""Every `[retrain] recipe` the product offers trains and loads on a tiny local model, and a recipe's missing
inputs are named before anything runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embguard.cli.model_actions import with_recipe
from embguard.config import loader as config
from embguard.config.lifecycle import RetrainSettings
from embguard.errors import ConfigError, TrainingError
from embguard.models import loading as models
from embguard.training import recipes
from embguard.training.recipes import train_data
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


def _settings(recipe: str, tiny_model: Path) -> RetrainSettings:
    teacher = str(tiny_model) if recipe == "distill" else ""
    return RetrainSettings(
        recipe=recipe, teacher_model=teacher, batch_size=8, learning_rate=1e-3, matryoshka_dims=(16,), tsdae_epochs=1.0
    )


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


def test_the_adapter_recipe_changes_queries_and_keeps_documents_bit_for_bit(tiny_model: Path, tmp_path: Path) -> None:
    base = models.load(str(tiny_model))
    trained = recipes.train(
        RetrainSettings(recipe="adapter", batch_size=8, adapter_epochs=20),
        "adapter",
        base,
        PAIRS,
        tmp_path / "a",
        checkpoint_dir=str(tmp_path / "ck"),
    )
    assert trained.documents_as == base.model_id and not trained.reindex and trained.result["pairs"] == len(PAIRS)
    cand = models.load(str(trained.path))
    assert cand.model_id != base.model_id and cand.dimension == base.dimension
    texts = [p.positive for p in PAIRS]
    np.testing.assert_array_equal(cand.encode(texts), base.encode(texts))  # the serving vectors stay valid
    queries = [p.query for p in PAIRS]
    cq, bq = cand.encode_queries(queries), base.encode_queries(queries)
    assert np.abs(cq - bq).max() > 1e-3 and np.allclose(np.linalg.norm(cq, axis=1), 1, atol=1e-5)
    # It learned the pairs: each query's own passage ranks higher among the passages than with the base model.
    docs = base.encode(texts)

    def own_rank(q: np.ndarray) -> float:
        return float((np.argsort(-(q @ docs.T), axis=1) == np.arange(len(PAIRS))[:, None]).argmax(1).mean())

    assert own_rank(cq) < own_rank(bq)
    # An adapter on the adapter stacks on the query route and still embeds documents as the first base did.
    again = recipes.train(
        RetrainSettings(recipe="adapter", batch_size=8),
        "adapter",
        cand,
        PAIRS,
        tmp_path / "b",
        checkpoint_dir=str(tmp_path / "ck"),
    )
    np.testing.assert_array_equal(models.load(str(again.path)).encode(texts), base.encode(texts))
