"""``[retrain] epochs = "auto"`` and ``recipe = "auto"``: choose on a validation split, then train the winner on all.

The validation queries are carved (seeded) from the *training* queries, after the gate's held-out queries were
split off, so choosing never looks at the gate's queries and the gate judges the winner as it would judge a single
setting. Each recipe (``auto_recipes``, cheapest first; or just ``recipe``) trains on the rest: a fine-tune for up
to ``max_epochs``, scored on the validation queries after every epoch and stopped once ``patience`` epochs in a
row do not beat the best (``epochs = "auto"``). The best recipe at its best epoch wins, and is trained again from
the base on *all* training pairs for that many epochs, so nothing the choice held back is lost to the candidate.
When the choice has used so much time that the retraining would end past ``budget_s``, the winner as chosen is
gated instead (and the report says so); the choice itself starts no epoch that would end past ``budget_s``. Once
``auto_budget_s`` of training has been spent no further recipe starts.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import retrain
from embguard.config.lifecycle import AUTO, RetrainSettings
from embguard.errors import TrainingError
from embguard.models import loading as models
from embguard.training.recipes import Trained

VALIDATION_SEED = 1  # the gate's split uses seed 0; a different draw keeps the two splits independent
VALIDATION_DOCS = 600  # documents the validation queries rank: their answers, the base's top hits, random others
VALIDATION_NEIGHBOURS = 10


class TrainOne(Protocol):
    def __call__(
        self,
        recipe: str,
        pairs: Sequence[retrain.Pair],
        out: Path,
        *,
        epochs: float,
        validation: retrain.ValidationSet | None = None,
    ) -> Trained: ...


@dataclass(frozen=True)
class AutoChoice:
    chosen: Trained
    validation_ndcg: dict[str, float]  # recipe (and "base") -> mean nDCG@10 on the validation queries, best epoch
    seconds: dict[str, float]  # recipe -> training wall time while choosing
    skipped: tuple[str, ...]  # recipes not started because the budget was spent
    validation_queries: tuple[str, ...]
    n_fit_pairs: int
    epochs: dict[str, list[float]]  # fine-tune recipe -> validation nDCG@10 after each epoch
    best_epochs: int  # the winner's epochs (0 for the adapter, whose epochs are adapter_epochs)
    refit_pairs: int  # pairs the winner was trained on again (0: not retrained, budget spent)
    refit_seconds: float
    stopped_by: dict[str, str] = field(default_factory=dict)  # fine-tune recipe -> "patience" / "time_budget" / ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.recipe,
            "validation_ndcg@10": self.validation_ndcg,
            "validation_ndcg@10_per_epoch": self.epochs,
            "epochs": self.best_epochs,
            "train_seconds": self.seconds,
            "skipped_over_budget": list(self.skipped),
            "validation_queries": len(self.validation_queries),
            "fit_pairs": self.n_fit_pairs,
            "refit_pairs": self.refit_pairs,
            "refit_seconds": self.refit_seconds,
            "stopped_by": self.stopped_by,
        }

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values()) + self.refit_seconds

    def summary(self) -> str:
        def tried(r: str) -> str:
            per_epoch = f", per epoch {' '.join(f'{x:.4f}' for x in self.epochs[r])}" if r in self.epochs else ""
            if self.stopped_by.get(r) == "time_budget":
                per_epoch += ", then stopped: one more epoch would pass retrain.budget_s"
            return f"{r} {self.validation_ndcg[r]:.4f} ({self.seconds[r]:.0f} s{per_epoch})"

        skipped = f"; not started (budget spent): {', '.join(self.skipped)}" if self.skipped else ""
        at = f" at {self.best_epochs} epoch(s)" if self.best_epochs else ""
        refit = (
            f"; trained again on all {self.refit_pairs} pairs in {self.refit_seconds:.0f} s"
            if self.refit_pairs
            else f"; NOT trained again on all pairs (retrain.budget_s spent): gated as chosen on {self.n_fit_pairs}"
        )
        return (
            f"chose {self.chosen.recipe}{at} on {len(self.validation_queries)} validation queries carved from the "
            f"training queries (base {self.validation_ndcg['base']:.4f}; "
            f"{', '.join(tried(r) for r in self.seconds)}){skipped}{refit}"
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
        raise TrainingError(f"retrain epochs/recipe = 'auto' cannot carve a validation split: {exc}") from None
    fit, val = retrain.split_pairs(pairs, split)
    retrain.assert_disjoint([p.query for p in val], held)
    return fit, val


def validation_set(
    base: models.EmbeddingModel, val: Sequence[retrain.Pair], corpus: Sequence[Any], seed: int = VALIDATION_SEED
) -> retrain.ValidationSet:
    """The validation queries over a pool small enough to re-encode after every epoch: their answers, the base
    model's nearest corpus documents (the hard part of ranking) and random others, at most ``VALIDATION_DOCS``."""
    ids, texts = list(corpus[0]), list(corpus[1])
    rel: dict[str, set[Any]] = {}
    text_of = dict(zip(ids, texts, strict=True))
    for p in val:
        key = p.positive_id if p.positive_id is not None else p.positive
        rel.setdefault(p.query, set()).add(key)
        text_of.setdefault(key, p.positive)
    queries = sorted(rel)
    pool: dict[Any, None] = dict.fromkeys(k for q in queries for k in sorted(rel[q], key=str))
    if len(corpus) > 2 and len(ids):
        near = retrain.ExactRetriever(ids, np.asarray(corpus[2]))
        for row in near.rank(base.encode_queries(queries), VALIDATION_NEIGHBOURS):
            for i in row:
                if len(pool) < VALIDATION_DOCS:
                    pool.setdefault(i)
    rest = [i for i in ids if i not in pool]
    rng = np.random.default_rng(seed)
    for j in rng.permutation(len(rest))[: max(0, VALIDATION_DOCS - len(pool))]:
        pool.setdefault(rest[int(j)])
    order = list(pool)
    index = {k: n for n, k in enumerate(order)}
    relevant = tuple(tuple(sorted(index[k] for k in rel[q])) for q in queries)
    return retrain.ValidationSet(tuple(queries), tuple(text_of[k] for k in order), relevant)


def score(m: models.EmbeddingModel, vset: retrain.ValidationSet, base_docs: np.ndarray | None = None) -> float:
    """Mean nDCG@10 of ``m`` on ``vset`` (``base_docs``: document vectors to reuse, for a query adapter)."""
    docs = base_docs if base_docs is not None else m.encode(list(vset.documents))
    return vset.ndcg(m.encode_queries(list(vset.queries)), docs)


def choose(
    rs: RetrainSettings,
    base: models.EmbeddingModel,
    pairs: Sequence[retrain.Pair],
    held_out: Iterable[str],
    corpus: Sequence[Any],
    work: Path,
    train_one: TrainOne,
    say: Callable[[str], None],
    extra: Sequence[retrain.Pair] = (),
) -> AutoChoice:
    """Choose the recipe and the epochs on a validation split of ``pairs``, then train the winner on all of them.

    ``corpus`` is (ids, texts[, base vectors]); ``extra`` pairs (pseudo-queries) are trained on by the fine-tune
    recipes, never validated on."""
    fit, val = validation_split(pairs, held_out, rs.validation_fraction)
    vset = validation_set(base, val, corpus)
    recipes = list(rs.auto_recipes) if rs.recipe == AUTO else [rs.recipe]
    max_epochs = float(rs.max_epochs) if rs.epochs == AUTO else float(rs.epochs)
    say(
        f"[retrain] choosing {'/'.join(recipes)} and epochs (up to {max_epochs:g}): {len(fit)} pairs to train on, "
        f"{len(vset.queries)} validation queries over {len(vset.documents)} passages"
    )
    base_docs = base.encode(list(vset.documents))
    ndcg = {"base": score(base, vset, base_docs)}
    seconds: dict[str, float] = {}
    per_epoch: dict[str, list[float]] = {}
    stopped_by: dict[str, str] = {}
    trained: list[Trained] = []
    skipped: list[str] = []
    for recipe in recipes:
        if trained and sum(seconds.values()) >= rs.auto_budget_s:
            skipped.append(recipe)
            continue
        if recipe == "adapter":
            t = train_one(recipe, fit, work / f"auto-{recipe}", epochs=rs.adapter_epochs)
            ndcg[recipe] = score(models.load(str(t.path), None, base_device(base)), vset, base_docs)
        else:
            t = train_one(recipe, [*fit, *extra], work / f"auto-{recipe}", epochs=max_epochs, validation=vset)
            per_epoch[recipe] = [float(x) for x in t.result.get("validation_ndcg", ())]
            if not per_epoch[recipe]:
                raise TrainingError(f"the {recipe} run reported no validation score; nothing was chosen")
            ndcg[recipe] = max(per_epoch[recipe])
            stopped_by[recipe] = str(t.result.get("stopped_by", ""))
        trained.append(t)
        seconds[recipe] = t.seconds
        say(f"[retrain] {recipe}: validation nDCG@10 {ndcg[recipe]:.4f} (base {ndcg['base']:.4f}), {t.seconds:.0f} s")
    best = max(trained, key=lambda t: ndcg[t.recipe])
    for t in trained:
        if t is not best:
            shutil.rmtree(t.path, ignore_errors=True)
    epochs = int(best.result.get("best_epoch", 0)) if best.recipe != "adapter" else 0
    chosen, refit_pairs, refit_s = _refit(rs, best, epochs, pairs, extra, fit, work, train_one, say, seconds)
    return AutoChoice(
        chosen,
        ndcg,
        seconds,
        tuple(skipped),
        vset.queries,
        len(fit),
        per_epoch,
        epochs,
        refit_pairs,
        refit_s,
        stopped_by,
    )


def _refit(
    rs: RetrainSettings,
    best: Trained,
    epochs: int,
    pairs: Sequence[retrain.Pair],
    extra: Sequence[retrain.Pair],
    fit: Sequence[retrain.Pair],
    work: Path,
    train_one: TrainOne,
    say: Callable[[str], None],
    seconds: dict[str, float],
) -> tuple[Trained, int, float]:
    """The winner trained again on all pairs, or the winner as chosen when that would overrun ``budget_s``."""
    spent = sum(seconds.values())
    if best.recipe == "adapter":
        estimate = best.seconds * len(pairs) / max(1, len(fit))
    else:
        run_epochs = max(1, len(best.result.get("validation_ndcg", ())))
        estimate = best.seconds / run_epochs * epochs * (len(pairs) + len(extra)) / max(1, len(fit) + len(extra))
    if spent + estimate > rs.budget_s:
        say(
            f"[retrain] not training {best.recipe} again on all {len(pairs)} pairs: about {estimate:.0f} s more after "
            f"{spent:.0f} s would pass retrain.budget_s = {rs.budget_s:g}; gating it as chosen"
        )
        return best, 0, 0.0
    out = work / f"final-{best.recipe}"
    if best.recipe == "adapter":
        final = train_one(best.recipe, pairs, out, epochs=rs.adapter_epochs)
    else:
        final = train_one(best.recipe, [*pairs, *extra], out, epochs=float(epochs))
    shutil.rmtree(best.path, ignore_errors=True)
    return final, len(pairs), final.seconds


def base_device(m: models.EmbeddingModel) -> str:
    return str(getattr(m.sentence_transformer, "device", "cpu"))
