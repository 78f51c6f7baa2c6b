"""Every `[retrain] recipe` the product offers trains and loads on a tiny local model, and a recipe's missing
inputs are named before anything runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import retrain
from embguard import autorecipe, config, recipes
from embguard import model as models
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


def test_the_auto_validation_split_is_disjoint_from_the_gate_and_from_training() -> None:
    held = [f"how do I open a {n}" for n in ("file", "list")]
    pairs = tuple(p for p in PAIRS if p.query not in held)
    fit, val = autorecipe.validation_split(pairs, held, 0.2)
    retrain.assert_disjoint([p.query for p in fit], [p.query for p in val])
    retrain.assert_disjoint([p.query for p in val], held)
    assert {p.query for p in fit} | {p.query for p in val} == {p.query for p in pairs} and val
    with pytest.raises(retrain.LeakageError):  # training pairs that leak a gate query are refused
        autorecipe.validation_split(PAIRS, held, 0.2)


@pytest.mark.integration
def test_auto_trains_each_recipe_and_keeps_the_best_on_validation(tiny_model: Path, tmp_path: Path) -> None:
    base = models.load(str(tiny_model))
    rs = RetrainSettings(recipe="auto", batch_size=8, adapter_epochs=20, auto_recipes=("adapter", "finetune"))
    said: list[str] = []

    def train_one(recipe: str, pairs: Sequence[Pair], out: Path) -> recipes.Trained:
        return recipes.train(rs, recipe, base, pairs, out, checkpoint_dir=str(tmp_path / "ck"), max_steps=2)

    corpus = ([f"d{i}" for i in range(len(DOCS))], list(DOCS))
    choice = autorecipe.choose(rs, base, PAIRS, [], corpus, tmp_path / "auto", train_one, said.append)
    assert set(choice.seconds) == {"adapter", "finetune"} and not choice.skipped
    best = max(("adapter", "finetune"), key=lambda r: choice.validation_ndcg[r])
    assert choice.chosen.recipe == best and choice.chosen.path.is_dir()
    assert not (tmp_path / "auto" / f"auto-{'finetune' if best == 'adapter' else 'adapter'}").exists()
    assert f"auto chose {best}" in choice.summary() and choice.to_dict()["validation_queries"] == len(
        choice.validation_queries
    )
    # A spent budget starts nothing after the first recipe.
    tight = rs.model_copy(update={"auto_budget_s": 0})
    choice = autorecipe.choose(tight, base, PAIRS, [], corpus, tmp_path / "auto2", train_one, said.append)
    assert list(choice.seconds) == ["adapter"] and choice.skipped == ("finetune",)
