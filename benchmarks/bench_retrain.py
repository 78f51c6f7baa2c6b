"""Benchmark of ``retrain`` on a real domain corpus available offline (Python stdlib documentation).

    .venv/bin/python benchmarks/bench_retrain.py            # full run, writes benchmarks/results/retrain.md
    .venv/bin/python benchmarks/bench_retrain.py --quick    # small smoke run (subsampled, few steps)

Setup: each passage's docstring summary is its query (one relevant passage per query). Topic
``language-reference`` (interpreter manual prose) is never trained on and serves as the *guard* set; the
other queries are split 70/30 by query (seeded, disjoint: asserted) into train / held-out. The corpus
searched is always ALL passages. Compared on held-out queries: base all-MiniLM-L6-v2, a query-side adapter,
a full MNRL fine-tune, and a deliberately broken fine-tune (shuffled pairs) that the gate must reject.
Then active learning: for a fixed label budget, each selection strategy's adapter gain vs random.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import retrain
from retrain import (
    AdapterConfig,
    DiversitySelection,
    GateConfig,
    MarginSelection,
    MixedSelection,
    NoveltySelection,
    Pair,
    Pool,
    RandomSelection,
    TrainConfig,
    TrainData,
    decide,
    evaluate_embeddings,
    split_queries,
    train_adapter,
)

CACHE = REPO / ".cache" / "retrain_bench"
RESULTS = REPO / "benchmarks" / "results" / "retrain.md"
GUARD_TOPIC = "language-reference"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cached_encode(tag: str, model_id: str, texts: list[str], encode) -> np.ndarray:  # type: ignore[no-untyped-def]
    CACHE.mkdir(parents=True, exist_ok=True)
    safe = model_id.replace("/", "_").replace("@", "_")
    path = CACHE / f"{tag}-{safe}-{len(texts)}.npy"
    if path.exists():
        return np.load(path)
    t0 = time.perf_counter()
    vecs = encode(texts)
    np.save(path, vecs)
    log(f"encoded {len(texts)} {tag} with {model_id} in {time.perf_counter() - t0:.0f}s")
    return vecs


def split_corpus(corpus: list[Any]) -> tuple[list[Any], list[Any], list[Any], tuple[Pair, ...]]:
    """(training passages, held-out passages, guard passages, training pairs): the guard topic is never trained on,
    the rest is split 70/30 by query (seeded; disjointness asserted). Shared by the retrain benchmarks."""
    guard = [p for p in corpus if p.topic == GUARD_TOPIC]
    task = [p for p in corpus if p.topic != GUARD_TOPIC]
    split = split_queries([p.query for p in task], held_out_fraction=0.3, seed=0)
    held_set = set(split.held_out)
    train_p = [p for p in task if p.query not in held_set]
    held_p = [p for p in task if p.query in held_set]
    pairs = tuple(Pair(query=p.query, positive=p.text, positive_id=p.id) for p in train_p)
    retrain.assert_disjoint([x.query for x in pairs], [p.query for p in held_p] + [p.query for p in guard])
    return train_p, held_p, guard, pairs


def fmt_ci(scores: retrain.PerQueryScores, metric: str) -> str:
    ci = scores.interval(metric, resamples=2000, seed=0)
    return f"{100 * ci.mean:.2f} [{100 * ci.low:.2f}, {100 * ci.high:.2f}]"


def fmt_diff(cand: retrain.PerQueryScores, base: retrain.PerQueryScores, metric: str) -> str:
    d = cand.diff(base, metric, resamples=2000, seed=0)
    return f"{100 * d.mean:+.2f} [{100 * d.low:+.2f}, {100 * d.high:+.2f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="subsample and cap training steps (smoke run)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument(
        "--max-seq-length",
        type=int,
        default=64,
        help="training truncation (encoding keeps the model's own 256); 64 halves step time",
    )
    ap.add_argument("--broken-steps", type=int, default=15, help="steps of the shuffled-pairs candidate")
    ap.add_argument("--no-broken", action="store_true", help="skip the shuffled-pairs candidate")
    ap.add_argument("--budget", type=int, default=300, help="label budget for the active-learning comparison")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    wall0 = time.perf_counter()
    torch_threads = os.cpu_count()

    from embguard.models.loading import load
    from embguard.training.stdlib_corpus import stdlib_corpus

    corpus = list(stdlib_corpus())
    if args.quick:
        rng = np.random.default_rng(0)
        corpus = [corpus[i] for i in sorted(rng.choice(len(corpus), 500, replace=False))]
    model = load()
    doc_ids = [p.id for p in corpus]
    log(f"corpus: {len(corpus)} passages, model {model.model_id}, {torch_threads} CPU cores")

    train_p, held_p, guard, train_pairs = split_corpus(corpus)
    log(f"train pairs {len(train_pairs)}, held-out queries {len(held_p)}, guard queries {len(guard)}")

    base_docs = cached_encode("docs", model.model_id, [p.text for p in corpus], model.encode)
    base_q = cached_encode("queries", model.model_id, [p.query for p in corpus], model.encode)
    qrow = {p.query: i for i, p in enumerate(corpus)}
    row = {p.id: i for i, p in enumerate(corpus)}

    def q_of(ps):  # type: ignore[no-untyped-def]
        return np.stack([base_q[qrow[p.query]] for p in ps])

    held_rel = [{p.id} for p in held_p]
    guard_rel = [{p.id} for p in guard]
    base_held = evaluate_embeddings(q_of(held_p), base_docs, doc_ids, held_rel)
    base_guard = evaluate_embeddings(q_of(guard), base_docs, doc_ids, guard_rel)

    rows: dict[str, dict[str, object]] = {"base": {"held": base_held, "guard": base_guard, "train_s": 0.0}}

    # --- query-side adapter -------------------------------------------------------------------------
    acfg = AdapterConfig(epochs=3)
    tq, tp = q_of(train_p), np.stack([base_docs[row[p.id]] for p in train_p])
    adapter = train_adapter(tq, tp, acfg, base_model_id=model.model_id)
    rows["query adapter (3 epochs)"] = {
        "held": evaluate_embeddings(adapter.apply(q_of(held_p)), base_docs, doc_ids, held_rel),
        "guard": evaluate_embeddings(adapter.apply(q_of(guard)), base_docs, doc_ids, guard_rel),
        "train_s": adapter.seconds,
    }
    log(f"adapter trained in {adapter.seconds:.1f}s")

    # --- full fine-tunes in a child process ------------------------------------------------------------
    def finetune(name: str, pairs: tuple[Pair, ...], max_steps: int = -1) -> dict[str, object]:
        out = CACHE / f"ft-{name}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(retrain.runner.default_checkpoint_dir(out), ignore_errors=True)
        cfg = TrainConfig(
            base_model=str(model.path),
            epochs=args.epochs,
            batch_size=32,
            learning_rate=args.lr,
            max_seq_length=args.max_seq_length,
            seed=42,
            max_steps=6 if args.quick else max_steps,
        )
        t0 = time.perf_counter()
        res = retrain.run_training_subprocess(cfg, TrainData(pairs=pairs), out)
        secs = time.perf_counter() - t0
        log(f"fine-tune {name}: {res.steps} steps in {secs:.0f}s (final loss {res.final_loss})")
        from retrain.finetune import load_model

        st = load_model(out)

        def enc(xs: list[str], st: Any = st) -> np.ndarray:
            return st.encode(
                xs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)

        t1 = time.perf_counter()
        docs = enc([p.text for p in corpus])
        enc_s = time.perf_counter() - t1
        log(f"re-encoded corpus with {name} in {enc_s:.0f}s")
        return {
            "held": evaluate_embeddings(enc([p.query for p in held_p]), docs, doc_ids, held_rel),
            "guard": evaluate_embeddings(enc([p.query for p in guard]), docs, doc_ids, guard_rel),
            "train_s": secs,
            "steps": res.steps,
            "encode_s": enc_s,
        }

    rows[f"MNRL fine-tune ({args.epochs:g} epoch)"] = finetune("mnrl", train_pairs)
    if not args.no_broken:
        rng = np.random.default_rng(1)
        shuffled_texts = [train_pairs[i].positive for i in rng.permutation(len(train_pairs))]
        broken = tuple(Pair(query=p.query, positive=t) for p, t in zip(train_pairs, shuffled_texts, strict=True))
        r = finetune("shuffled", broken, args.broken_steps)
        rows[f"broken: MNRL on shuffled pairs ({r['steps']} steps)"] = r

    gate_cfg = GateConfig(min_gain=0.0, guard_tolerance=0.01, min_queries=30)
    verdicts = {
        name: decide(base_held, r["held"], gate_cfg, base_guard, r["guard"])  # type: ignore[arg-type]
        for name, r in rows.items()
        if name != "base"
    }

    # --- active learning: which queries to label, judged by the adapter gain they buy -----------------
    pool_q = tq
    sims = pool_q @ base_docs.T
    top2 = np.sort(np.partition(sims, -2, axis=1)[:, -2:], axis=1)
    margin = top2[:, 1] - top2[:, 0]
    qq = pool_q @ pool_q.T
    np.fill_diagonal(qq, -np.inf)
    knn = np.sort(qq, axis=1)[:, -10:]
    novelty = 1.0 - knn.mean(axis=1)  # low density among tapped queries = novel
    pool = Pool(embeddings=pool_q, novelty=novelty, margin=margin)
    strategies = [
        RandomSelection(),
        NoveltySelection(),
        MarginSelection(),
        DiversitySelection(),
        MixedSelection([(DiversitySelection(), 1.0), (MarginSelection(), 1.0)]),
    ]
    budget = min(args.budget, len(pool_q) // 2)
    al_cfg = AdapterConfig(epochs=5, batch_size=32)
    held_q = q_of(held_p)
    al: dict[str, list[float]] = {s.name: [] for s in strategies}
    for seed in range(args.seeds):
        for s in strategies:
            idx = s.select(pool, budget, np.random.default_rng(seed))
            ad = train_adapter(tq[idx], tp[idx], AdapterConfig(**{**al_cfg.__dict__, "seed": seed}))
            sc = evaluate_embeddings(ad.apply(held_q), base_docs, doc_ids, held_rel)
            al[s.name].append(100 * (sc.mean() - base_held.mean()))
        log(f"active-learning seed {seed} done")

    # --- write results --------------------------------------------------------------------------------
    lines = [
        "# retrain benchmark",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_retrain.py{' --quick' if args.quick else ''}"
        + "".join(f" {a}" for a in sys.argv[1:] if a != "--quick")
        + "`",
        "",
        f"Fine-tune settings: MNRL, NO_DUPLICATES batches of 32, lr {args.lr:g}, warmup 0.1, "
        f"{args.epochs:g} epoch(s), training max_seq_length {args.max_seq_length}, seed 42.",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {torch_threads} CPU cores (shared), "
        f"no GPU; total wall time {time.perf_counter() - wall0:.0f} s.",
        "",
        f"Corpus: `embguard.training.stdlib_corpus.stdlib_corpus()` — {len(corpus)} passages (stdlib docstrings + "
        "language "
        "reference); query = docstring summary, relevant passage = the rest. Retrieval = exact cosine over "
        f"ALL passages. Base model `{model.model_id}`. Train pairs: {len(train_pairs)}; held-out queries: "
        f"{len(held_p)} (30%, seeded, disjoint — asserted); guard set: {len(guard)} `{GUARD_TOPIC}` "
        "queries (topic never trained on).",
        "",
        "Numbers are ×100, mean [95% bootstrap CI], 2,000 paired resamples, seed 0. Δ = candidate − base "
        "on the same queries.",
        "",
        "| model | held-out nDCG@10 | Δ nDCG@10 | held-out Recall@10 | Δ Recall@10 | guard nDCG@10 Δ "
        "| train time | gate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        held, gd = r["held"], r["guard"]
        if name == "base":
            lines.append(
                f"| {name} | {fmt_ci(held, 'ndcg@10')} | — | {fmt_ci(held, 'recall@10')} | — | "
                f"(base {100 * gd.mean():.2f}) | — | — |"
            )
            continue
        v = verdicts[name]
        extra = f", {r['steps']} steps; corpus re-encode {r['encode_s']:.0f} s" if "steps" in r else ""
        lines.append(
            f"| {name} | {fmt_ci(held, 'ndcg@10')} | {fmt_diff(held, base_held, 'ndcg@10')} | "
            f"{fmt_ci(held, 'recall@10')} | {fmt_diff(held, base_held, 'recall@10')} | "
            f"{fmt_diff(gd, base_guard, 'ndcg@10')} | {r['train_s']:.1f} s{extra} | "
            f"{'PROMOTE' if v.promote else 'REJECT'} |"
        )
    lines += [
        "",
        f"Gate: `GateConfig(min_gain={gate_cfg.min_gain}, guard_tolerance={gate_cfg.guard_tolerance})` — "
        "promote iff the CI lower bound of the held-out nDCG@10 gain ≥ min_gain and the guard-set mean "
        "nDCG@10 change ≥ −guard_tolerance. Reasons per candidate:",
        "",
    ]
    for name, v in verdicts.items():
        lines.append(f"- **{name}**: {'promote' if v.promote else 'reject'} — " + "; ".join(v.reasons))
    lines += [
        "",
        f"## Active learning: adapter gain for a budget of {budget} labelled queries",
        "",
        f"Pool = the {len(pool_q)} training queries; each strategy picks {budget}; a query adapter "
        f"(5 epochs) is trained on the picks and evaluated on the held-out queries. {args.seeds} seeds. "
        "Novelty = 1 − mean cosine to the 10 nearest pool queries; margin = base top-1 − top-2 cosine.",
        "",
        "| strategy | Δ nDCG@10 vs base (mean ± sd) | minus random (mean, paired by seed) | beats random in |",
        "|---|---|---|---|",
    ]
    rnd = np.array(al["random"])
    for name, gains in al.items():
        g = np.array(gains)
        wins = int((g > rnd).sum())
        lines.append(
            f"| {name} | {g.mean():+.2f} ± {g.std(ddof=1) if len(g) > 1 else 0:.2f} | "
            f"{(g - rnd).mean():+.2f} | {wins}/{len(g)} seeds |"
        )
    best = max(al, key=lambda k: np.mean(al[k]))
    lines += ["", f"Best strategy by mean gain: **{best}**.", ""]
    args.out.write_text("\n".join(lines) + "\n")
    log(f"wrote {args.out}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
