"""Every ``[retrain] recipe`` on the stdlib corpus in one run, through the product's own training code.

    .venv/bin/python benchmarks/bench_recipes.py                 # writes benchmarks/results/recipes.md
    .venv/bin/python benchmarks/bench_recipes.py --quick         # smoke run (subsampled corpus, 2 steps)

Same corpus, split and guard set as ``bench_retrain.py`` (query = docstring summary, one relevant passage; the
``language-reference`` topic is the guard set and never trained on; 70/30 seeded split by query, disjoint:
asserted; retrieval = exact cosine over ALL passages). Each candidate is built by
``embguard.training.recipes.train`` (the function ``embguard retrain`` calls) from the base model, with the same
settings and the same step cap, then judged by the product's gate defaults (``GateConfig(min_gain=gate_margin,
guard_tolerance)``). ``auto`` runs ``embguard.training.autorecipe.choose`` over ``auto_recipes`` with its
validation split carved from the training queries.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_retrain import GUARD_TOPIC, cached_encode, fmt_ci, fmt_diff, log, split_corpus

import retrain
from retrain import GateConfig, decide, evaluate_embeddings

RESULTS = REPO / "benchmarks" / "results" / "recipes.md"


class ExactRetriever:
    """The live index's role for hard-negative mining: exact cosine over the base model's passage vectors."""

    def __init__(self, ids: list[Any], vecs: np.ndarray):
        self.ids, self.vecs = ids, vecs

    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[Any, float]]]:
        sims = query_vectors @ self.vecs.T
        top = np.argsort(-sims, axis=1)[:, :k]
        return [[(self.ids[j], float(sims[i, j])) for j in row] for i, row in enumerate(top)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--max-steps", type=int, default=-1, help="cap on optimizer steps per recipe (-1: 1 epoch)")
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--max-seq-length", type=int, default=64)
    ap.add_argument("--domain-docs", type=int, default=1000, help="documents TSDAE adapts on (domain_adapt)")
    ap.add_argument("--recipes", default="adapter,finetune,finetune_hn,matryoshka,distill,domain_adapt,auto")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    wall0 = time.perf_counter()

    from embguard.config.lifecycle import RetrainSettings
    from embguard.models import loading as models
    from embguard.training import autorecipe, recipes
    from embguard.training.stdlib_corpus import stdlib_corpus

    corpus = list(stdlib_corpus())
    max_steps = args.max_steps
    if args.quick:
        rng = np.random.default_rng(0)
        corpus = [corpus[i] for i in sorted(rng.choice(len(corpus), 400, replace=False))]
        max_steps = 2
    base = models.load()
    ids = [p.id for p in corpus]
    texts = [p.text for p in corpus]
    train_p, held_p, guard, pairs = split_corpus(corpus)
    task = [p for p in corpus if p.topic != GUARD_TOPIC]
    log(f"corpus {len(corpus)}, train pairs {len(pairs)}, held-out {len(held_p)}, guard {len(guard)}")

    base_docs = cached_encode("docs", base.model_id, texts, base.encode)
    held_rel = [{p.id} for p in held_p]
    guard_rel = [{p.id} for p in guard]

    def scores(m: models.EmbeddingModel, docs: np.ndarray) -> tuple[retrain.PerQueryScores, retrain.PerQueryScores]:
        held = evaluate_embeddings(m.encode_queries([p.query for p in held_p]), docs, ids, held_rel)
        g = evaluate_embeddings(m.encode_queries([p.query for p in guard]), docs, ids, guard_rel)
        return held, g

    base_held, base_guard = scores(base, base_docs)
    by_id = dict(zip(ids, texts, strict=True))
    mined = tuple(
        retrain.mine_hard_negatives(pairs, base, ExactRetriever(ids, base_docs), by_id)
    )  # one triplet per pair with a usable negative; the rest stay pairs
    log(f"mined {sum(p.negative is not None for p in mined)} hard negatives")
    documents = [p.text for p in task][: args.domain_docs]
    work = Path(tempfile.mkdtemp(prefix="bench-recipes-"))
    rs = RetrainSettings(
        batch_size=32,
        learning_rate=args.lr,
        max_seq_length=args.max_seq_length,
        matryoshka_dims=(256, 128, 64),
        matryoshka_serve_dim=256,
        hard_negatives=True,
        domain_documents=args.domain_docs,
        auto_recipes=("adapter", "finetune"),
    )
    gate = GateConfig(min_gain=rs.gate_margin, guard_tolerance=rs.guard_tolerance)
    rows: list[dict[str, Any]] = []
    teacher: Path | None = None

    def train(recipe: str, ps: Any, out: Path, settings: RetrainSettings = rs) -> Any:
        return recipes.train(
            settings,
            recipe,
            base,
            ps,
            out,
            checkpoint_dir=str(work / f"ck-{out.name}"),
            documents=documents,
            max_steps=max_steps,
        )

    def judge(name: str, trained: Any, note: str = "") -> None:
        cand = models.load(str(trained.path))
        t0 = time.perf_counter()
        docs = base_docs if trained.documents_as == base.model_id else cand.encode(texts)
        reencode = time.perf_counter() - t0
        held, g = scores(cand, docs)
        verdict = decide(base_held, held, gate, guard_base=base_guard, guard_candidate=g)
        rows.append(
            {
                "name": name,
                "held": held,
                "guard": g,
                "train_s": trained.seconds,
                "steps": trained.result.get("steps", trained.result.get("epochs")),
                "reindex": trained.reindex,
                "reencode_s": reencode,
                "dim": cand.dimension,
                "verdict": verdict,
                "note": note,
            }
        )
        log(f"{name}: nDCG@10 {100 * np.mean(held.scores['ndcg@10']):.2f}, {trained.seconds:.0f} s, {verdict.reasons}")

    wanted = args.recipes.split(",")
    for name in wanted:
        log(f"training {name}")
        if name == "finetune":
            t = train("finetune", pairs, work / "finetune")
            judge("finetune (no hard negatives)", t)
            teacher = t.path
        elif name == "finetune_hn":
            judge("finetune + mined hard negatives (the default)", train("finetune", mined, work / "finetune_hn"))
        elif name == "distill":
            if teacher is None:
                log("distill needs the finetune row first (its model is the teacher); skipped")
                continue
            s = rs.model_copy(update={"teacher_model": str(teacher)})
            judge(
                "distill (teacher: the finetune row's model)",
                train("distill", recipes.train_data(s, mined).pairs, work / "distill", s),
            )
        elif name == "matryoshka":
            judge(f"matryoshka, served at {rs.matryoshka_serve_dim}-d", train("matryoshka", mined, work / "matry"))
        elif name == "domain_adapt":
            judge(
                f"domain_adapt (TSDAE on {len(documents)} passages, then contrastive)",
                train("domain_adapt", mined, work / "da"),
            )
        elif name == "adapter":
            judge("adapter (query side only)", train("adapter", pairs, work / "adapter"))
        elif name == "auto":
            t0 = time.perf_counter()
            choice = autorecipe.choose(
                rs,
                base,
                mined,
                [p.query for p in held_p],
                (ids, texts),
                work / "auto",
                lambda r, ps, out: train(r, ps, out),
                log,
            )
            judge(
                f"auto -> {choice.chosen.recipe}",
                choice.chosen,
                note=f"{choice.summary()}; whole auto run {time.perf_counter() - t0:.0f} s",
            )
    shutil.rmtree(work, ignore_errors=True)
    wall = time.perf_counter() - wall0
    write(args, rows, base_held, base_guard, len(corpus), len(pairs), len(held_p), len(guard), wall, max_steps, rs)


def write(args, rows, base_held, base_guard, n_corpus, n_pairs, n_held, n_guard, wall, max_steps, rs) -> None:  # type: ignore[no-untyped-def]
    load = os.getloadavg()[0]
    steps = "1 epoch" if max_steps < 0 else f"at most {max_steps} steps"
    out = [
        "# Recipes benchmark: every `[retrain] recipe` in one run",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_recipes.py{' --quick' if args.quick else ''}"
        f"{f' --max-steps {args.max_steps}' if args.max_steps >= 0 else ''}`",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPU cores (shared), no GPU; "
        f"wall time {wall:.0f} s; load average {load:.1f} at the end.",
        "",
        f"Corpus: `embguard.training.stdlib_corpus.stdlib_corpus()`, {n_corpus} passages, all searched (exact cosine). "
        f"{n_pairs} training pairs, {n_held} held-out queries (seeded 70/30 split by query, disjoint: asserted), "
        f"{n_guard} guard queries (`language-reference`, never trained on). Every candidate is built by "
        f"`embguard.training.recipes.train` from all-MiniLM-L6-v2 with batch {rs.batch_size}, lr {rs.learning_rate}, "
        f"training max_seq_length {rs.max_seq_length}, {steps}; the adapter trains {rs.adapter_epochs} epochs on "
        "precomputed vectors. Numbers ×100, mean [95% bootstrap CI], 2,000 paired resamples. Gate = the product "
        f"defaults (`gate_margin` {rs.gate_margin}, `guard_tolerance` {rs.guard_tolerance}).",
        "",
        "| recipe | held-out nDCG@10 | Δ nDCG@10 | Δ Recall@10 | guard nDCG@10 Δ | train time | swap needs | gate |",
        "|---|---|---|---|---|---|---|---|",
        f"| base | {fmt_ci(base_held, 'ndcg@10')} | — | — | (base {100 * np.mean(base_guard.scores['ndcg@10']):.2f}) "
        "| — | — | — |",
    ]
    for r in rows:
        gd = 100 * (np.mean(r["guard"].scores["ndcg@10"]) - np.mean(base_guard.scores["ndcg@10"]))
        swap = (
            f"re-embedding ({r['reencode_s']:.0f} s here, {r['dim']}-d)"
            if r["reindex"]
            else "no re-embedding: vectors copied"
        )
        out.append(
            f"| {r['name']} | {fmt_ci(r['held'], 'ndcg@10')} | {fmt_diff(r['held'], base_held, 'ndcg@10')} | "
            f"{fmt_diff(r['held'], base_held, 'recall@10')} | {gd:+.2f} | {r['train_s']:.0f} s | {swap} | "
            f"{'PROMOTE' if r['verdict'].promote else 'REJECT'} |"
        )
    out.append("")
    for r in rows:
        out.append(f"- **{r['name']}**: {'; '.join(r['verdict'].reasons)}" + (f". {r['note']}" if r["note"] else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(out) + "\n")
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
