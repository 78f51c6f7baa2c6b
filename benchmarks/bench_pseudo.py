"""Do pseudo-queries help? Per-epoch nDCG@10 on the queries no user searched, offline, for each way of making them.

    .venv/bin/python benchmarks/bench_pseudo.py --pseudo none            # clicks alone
    .venv/bin/python benchmarks/bench_pseudo.py --pseudo rest            # the product's: first sentence -> the rest
    .venv/bin/python benchmarks/bench_pseudo.py --pseudo rest --neg      # ... with mined hard negatives
    .venv/bin/python benchmarks/bench_pseudo.py --pseudo ict             # up to 3 sentences per document -> the rest
    (--corpus stdlib for the stdlib docs; the default is the Debian corpus as bench_product.py draws it)

The product path's protocol without Milvus (exact cosine over every passage, as the FLAT index ranks): users search
the non-held-out queries with the base model and click when the answer is in the top 10; 30% of the clicked queries
are the gate's and never trained on, 20% of the rest are the validation split; hard negatives are mined as
``embguard retrain`` mines them; pseudo-queries come from the documents no click names (100 kept aside as a pseudo
validation set). One fine-tune of ``--epochs`` (4, one linear schedule), scored after every epoch on four query
sets: ``oracle`` (the held-out queries no user searched, over all passages: what bench_product.py judges), ``val``
(the clicked validation split), ``pval`` (the pseudo-queries kept aside) and ``gate`` (the gate's clicked queries).
Prints ``EPOCH n {...}`` lines; the results are quoted in benchmarks/results/product.md (issue #28).

The same harness ablates the training itself, with the product's pseudo-queries on:

    .venv/bin/python benchmarks/bench_pseudo.py --epochs 3 --loss gist   # GISTEmbed, the base model as the guide
    .venv/bin/python benchmarks/bench_pseudo.py --epochs 3 --loss gte    # MNRL over all four GTE directions
    .venv/bin/python benchmarks/bench_pseudo.py --epochs 3 --loss hib9   # MNRL, in-batch hardness weighting 9
    .venv/bin/python benchmarks/bench_pseudo.py --epochs 3 --loss hneg5  # MNRL, mined-negative hardness weighting 5
    .venv/bin/python benchmarks/bench_pseudo.py --epochs 3 --all-clicks  # the gate's and validation's clicks too

``--all-clicks`` trains on every clicked query (what a loop without a gate could use), ``--draw`` draws other
passages and users, ``--seed`` changes only the training order.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_product import draw

import retrain
from embguard.models import loading as models
from retrain import finetune
from retrain.config import TrainConfig, TrainData, ValidationSet
from retrain.evaluate import evaluate_embeddings
from retrain.pseudo import _SENTENCE_END, MAX_QUERY_WORDS, MIN_QUERY_CHARS, MIN_REST_CHARS

SCRATCH = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-pseudo"
LOSSES = ("mnrl", "gist", "gte", "hib9", "hneg5")


def sentence_pairs(ids: list[Any], texts: list[str], named: set[Any], per_doc: int) -> list[retrain.Pair]:
    """ICT with up to ``per_doc`` sentences of each document as queries, each paired with the rest of it."""
    made = []
    for i, t in sorted(zip(ids, texts, strict=True), key=lambda x: str(x[0])):
        if i in named:
            continue
        sents = [s.strip() for s in _SENTENCE_END.split(" ".join(t.split())) if s.strip()]
        for k in range(min(per_doc, len(sents)) if len(sents) > 1 else 0):
            q = " ".join(sents[k].split()[:MAX_QUERY_WORDS])
            rest = " ".join(sents[:k] + sents[k + 1 :])
            if len(q) >= MIN_QUERY_CHARS and len(rest) >= MIN_REST_CHARS:
                made.append(retrain.Pair(query=q, positive=rest, positive_id=i))
    return made


def use_loss(name: str) -> None:
    """Train with ``name`` instead of the product's MNRL: every variant is the installed sentence-transformers loss,
    put in place of the one ``retrain.finetune`` builds (ablation only; the product keeps MNRL, see the results)."""
    if name == "mnrl":
        return
    from sentence_transformers.sentence_transformer import losses

    def loss(model: Any, config: TrainConfig) -> Any:
        if name == "gist":
            guide = finetune.load_model(config.base_model, config.max_seq_length)
            return losses.GISTEmbedLoss(model, guide)
        if name == "gte":
            directions = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
            return losses.MultipleNegativesRankingLoss(model, directions=directions, partition_mode="joint")
        mode = "in_batch_negatives" if name == "hib9" else "hard_negatives"
        return losses.MultipleNegativesRankingLoss(model, hardness_mode=mode, hardness_strength=float(name[-1]))

    finetune._base_loss = loss  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", choices=("debian", "stdlib"), default="debian")
    ap.add_argument("--pseudo", choices=("none", "rest", "ict"), default="rest")
    ap.add_argument("--neg", action="store_true", help="mine hard negatives for the pseudo-queries too")
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--loss", choices=LOSSES, default="mnrl")
    ap.add_argument("--all-clicks", action="store_true", help="also train on the gate's and validation's clicks")
    ap.add_argument("--seed", type=int, default=42, help="training seed")
    ap.add_argument("--draw", type=int, default=0, help="seed of the corpus draw and of the users' queries")
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    SCRATCH.mkdir(exist_ok=True)
    corpus, held, users, _ = draw(a.corpus, a.draw)
    base = models.load()
    ids, texts = [p.id for p in corpus], [p.text[:1000] for p in corpus]
    text_of = dict(zip(ids, texts, strict=True))
    cache = SCRATCH / f"base_docs_{a.corpus}_{a.draw}.npy"
    docs = np.load(cache) if cache.exists() else base.encode(texts)
    np.save(cache, docs)
    ranker = retrain.ExactRetriever(ids, docs)
    top = ranker.rank(base.encode_queries([p.query for p in users]), 10)
    clicked = [p for p, t in zip(users, top, strict=True) if p.id in t]
    pairs = [retrain.Pair(query=p.query, positive=text_of[p.id], positive_id=p.id) for p in clicked]
    train_pairs, gate_pairs = retrain.split_pairs(
        pairs, retrain.split_queries([p.query for p in clicked], held_out_fraction=0.3, seed=0)
    )
    known = {p.query: frozenset({p.positive_id}) for p in pairs}
    mined = retrain.mine_hard_negatives(train_pairs, base, ranker, text_of, known)
    fit, val = retrain.split_pairs(
        mined, retrain.split_queries([p.query for p in mined], held_out_fraction=0.2, seed=1)
    )
    named = {p.id for p in clicked}
    if a.pseudo == "none":
        pseudo: list[retrain.Pair] = []
    elif a.pseudo == "rest":
        pseudo = retrain.pseudo_pairs(ids, texts, exclude=named, limit=10**6, seed=0)
    else:
        pseudo = sentence_pairs(ids, texts, named, per_doc=3)
    random.Random(2).shuffle(pseudo)
    pval, ptrain = pseudo[:100], pseudo[100:]
    if a.corpus == "stdlib":  # as the product: no more pseudo-queries than feedback pairs
        ptrain = ptrain[: len(fit)]
    if a.neg:
        ptrain = retrain.mine_hard_negatives(
            ptrain, base, ranker, text_of, {p.query: frozenset({p.positive_id}) for p in ptrain}
        )
    if a.all_clicks:
        fit = [*fit, *val, *retrain.mine_hard_negatives(gate_pairs, base, ranker, text_of, known)]
    held_ids = {p.id for p in held}
    print(
        f"clicked {len(clicked)}; training pairs {len(fit)} + {len(ptrain)} pseudo ({len(pseudo)} made; "
        f"{sum(p.positive_id in held_ids for p in ptrain)} for documents of held-out queries)",
        flush=True,
    )
    groups = {
        "oracle": [(p.query, p.id) for p in held],
        "val": [(p.query, p.positive_id) for p in val],
        "pval": [(p.query, p.positive_id) for p in pval],
        "gate": [(p.query, p.positive_id) for p in gate_pairs],
    }
    index = {i: n for n, i in enumerate(ids)}
    queries: list[str] = []
    relevant: list[tuple[int, ...]] = []
    names: list[str] = []
    for g, items in groups.items():
        seen: set[str] = set()
        for q, d in items:
            if q not in seen:
                seen.add(q)
                queries.append(q)
                relevant.append((index[d],))
                names.append(g)
    vset = ValidationSet(tuple(queries), tuple(texts), tuple(relevant))
    group_of = np.array(names)
    rows: list[dict[str, float]] = []

    def per_group(self: ValidationSet, query_vecs: Any, doc_vecs: Any) -> float:
        rel = [set(r) for r in self.relevant]
        s = np.array(evaluate_embeddings(query_vecs, doc_vecs, list(range(len(self.documents))), rel).scores["ndcg@10"])
        row = {g: round(100 * float(s[group_of == g].mean()), 2) for g in groups if (group_of == g).any()}
        rows.append(row)
        print("EPOCH" if len(rows) > 1 else "BASE", len(rows) - 1, row, time.strftime("%H:%M:%S"), flush=True)
        return float(s[group_of == "oracle"].mean())  # stops nothing: patience 0

    ValidationSet.ndcg = per_group  # type: ignore[method-assign]  # every query set, scored in one pass per epoch
    vset.ndcg(base.encode_queries(queries), docs)
    config = TrainConfig(
        base_model=str(models.default_model_path()),
        epochs=a.epochs,
        batch_size=32,
        learning_rate=a.lr,
        max_seq_length=a.max_seq_length,
        early_stopping_patience=0,
        seed=a.seed,
    )
    use_loss(a.loss)
    t = time.time()
    finetune.train(
        config, TrainData(pairs=(*fit, *ptrain), validation=vset), SCRATCH / f"out-{a.corpus}-{a.pseudo}-{a.loss}"
    )
    print("DONE", vars(a), f"{time.time() - t:.0f} s", json.dumps(rows), flush=True)


if __name__ == "__main__":
    main()
