"""``[retrain] recipe = "auto"``: train several recipes and keep the one that ranks a validation split best.

The validation queries are carved (seeded) from the *training* queries, after the gate's held-out queries were
split off, so choosing the recipe never looks at the gate's queries and the gate judges the winner as it would
judge a single recipe. Every candidate trains on the rest. Recipes run in ``auto_recipes`` order (cheapest
first); once ``auto_budget_s`` of training has been spent no further recipe starts (the first always runs).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import retrain
from embguard.config.lifecycle import RetrainSettings
from embguard.errors import TrainingError
from embguard.models import loading as models
from embguard.training.recipes import Trained

VALIDATION_SEED = 1  # the gate's split uses seed 0; a different draw keeps the two splits independent

TrainOne = Callable[[str, Sequence[retrain.Pair], Path], Trained]


@dataclass(frozen=True)
class AutoChoice:
    chosen: Trained
    validation_ndcg: dict[str, float]  # recipe (and "base") -> mean nDCG@10 on the validation queries
    seconds: dict[str, float]  # recipe -> training wall time
    skipped: tuple[str, ...]  # recipes not started because the budget was spent
    validation_queries: tuple[str, ...]
    n_fit_pairs: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.recipe,
            "validation_ndcg@10": self.validation_ndcg,
            "train_seconds": self.seconds,
            "skipped_over_budget": list(self.skipped),
            "validation_queries": len(self.validation_queries),
            "fit_pairs": self.n_fit_pairs,
        }

    def summary(self) -> str:
        tried = ", ".join(f"{r} {self.validation_ndcg[r]:.4f} ({self.seconds[r]:.0f} s)" for r in self.seconds)
        skipped = f"; not started (budget spent): {', '.join(self.skipped)}" if self.skipped else ""
        return (
            f"auto chose {self.chosen.recipe} on {len(self.validation_queries)} validation queries carved from the "
            f"training queries (base {self.validation_ndcg['base']:.4f}; {tried}){skipped}"
        )


def validation_split(
    pairs: Sequence[retrain.Pair], held_out: Iterable[str], fraction: float
) -> tuple[tuple[retrain.Pair, ...], tuple[retrain.Pair, ...]]:
    """(pairs to train on, validation pairs): disjoint by query from each other and from ``held_out``."""
    held = list(held_out)
    retrain.assert_disjoint([p.query for p in pairs], held)  # the gate's split already guarantees it
    try:
        split = retrain.split_queries([p.query for p in pairs], held_out_fraction=fraction, seed=VALIDATION_SEED)
    except retrain.RetrainError as exc:
        raise TrainingError(f"retrain.recipe = 'auto' cannot carve a validation split: {exc}") from None
    fit, val = retrain.split_pairs(pairs, split)
    retrain.assert_disjoint([p.query for p in val], held)
    return fit, val


def choose(
    rs: RetrainSettings,
    base: models.EmbeddingModel,
    pairs: Sequence[retrain.Pair],
    held_out: Iterable[str],
    corpus: tuple[Sequence[Any], Sequence[str]],
    work: Path,
    train_one: TrainOne,
    say: Callable[[str], None],
) -> AutoChoice:
    """Train each of ``rs.auto_recipes`` on ``pairs`` minus a validation split; keep the best."""
    fit, val = validation_split(pairs, held_out, rs.validation_fraction)
    val_rel: dict[str, set[Any]] = {}
    texts = dict(zip(corpus[0], corpus[1], strict=True))
    for p in val:
        key = p.positive_id if p.positive_id is not None else p.positive
        val_rel.setdefault(p.query, set()).add(key)
        texts.setdefault(key, p.positive)
    queries = sorted(val_rel)
    ids, docs = list(texts), list(texts.values())
    rel = [val_rel[q] for q in queries]

    base_docs = base.encode(docs)

    def score(m: models.EmbeddingModel, documents_as: str = "") -> float:
        # A candidate that embeds documents as the base does (a query adapter) reuses the base's vectors.
        vecs = base_docs if documents_as == base.model_id else m.encode(docs)
        s = retrain.evaluate_embeddings(m.encode_queries(queries), vecs, ids, rel)
        return float(np.mean(s.scores["ndcg@10"]))

    say(f"[retrain] auto: {len(fit)} pairs to train on, {len(queries)} validation queries, over {len(docs)} passages")
    ndcg = {"base": score(base, base.model_id)}
    seconds: dict[str, float] = {}
    trained: list[Trained] = []
    skipped: list[str] = []
    for recipe in rs.auto_recipes:
        if trained and sum(seconds.values()) >= rs.auto_budget_s:
            skipped.append(recipe)
            continue
        t = train_one(recipe, fit, work / f"auto-{recipe}")
        trained.append(t)
        seconds[recipe] = t.seconds
        ndcg[recipe] = score(models.load(str(t.path), None, base_device(base)), t.documents_as)
        say(
            f"[retrain] auto: {recipe} validation nDCG@10 {ndcg[recipe]:.4f} (base {ndcg['base']:.4f}), "
            f"{t.seconds:.0f} s"
        )
    best = max(trained, key=lambda t: ndcg[t.recipe])
    for t in trained:
        if t is not best:
            shutil.rmtree(t.path, ignore_errors=True)
    return AutoChoice(best, ndcg, seconds, tuple(skipped), tuple(queries), len(fit))


def base_device(m: models.EmbeddingModel) -> str:
    return str(getattr(m.sentence_transformer, "device", "cpu"))
