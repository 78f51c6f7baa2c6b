"""The product path, end to end: what the default retraining loop gains on real text (#13, #28).

    .venv/bin/python benchmarks/bench_product.py                                 # stdlib docs, product defaults
    .venv/bin/python benchmarks/bench_product.py --corpus debian --plain         # Debian, defaults + the plain peer
    .venv/bin/python benchmarks/bench_product.py --corpus debian --epochs 1 --pseudo-queries 0   # a single setting
    .venv/bin/python benchmarks/bench_product.py --corpus debian --plain --draw 1   # the same on another draw

Corpora: ``stdlib`` (the standard library's docstrings: summary line -> the rest) and ``debian`` (what Debian
installed here describes: package synopsis -> long description from dpkg's status file, and a man page's NAME
line -> its DESCRIPTION section; ``benchmarks/debian_docs.py``), 1,500 passages drawn seeded, 1,000 searched by
users and 500 never searched (the judge). ``--plain`` also trains the plain sentence-transformers recipe in the
same run, outside the product: every user query's gold passage (clicked or not), hard negatives mined with the
base model, MNRL for 3 epochs, judged on the same unsearched queries.

An application indexes the stdlib corpus through ``embguard.Client`` on a private Milvus Lite server (FLAT index,
so search is exact). Simulated users search every query outside a held-out set and click the right passage when
the search shows it in its top 10 (the feedback the loop gets in production); the held-out queries are never
searched by users. Then what the CLI runs: ``build_candidate`` (``embguard retrain``), ``Swapper.approve``
(``embguard retrain --approve``), and the held-out queries are searched through the alias before and after.
Target (#13): +6 nDCG@10 points with 1,000 clicked training queries, retrain + approve within 15 minutes on 2
cores. Results: ``benchmarks/results/product.md`` (appended, one section per run).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
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

import retrain

RESULTS = REPO / "benchmarks" / "results" / "product.md"
GUARD_TOPIC = "language-reference"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", choices=("stdlib", "debian"), default="stdlib")
    ap.add_argument("--passages", type=int, default=1500, help="debian: passages drawn (seeded) from the corpus")
    ap.add_argument("--recipe", default=None, help="default: the product's retrain.recipe")
    ap.add_argument("--epochs", default=None, help="default: the product's retrain.epochs (a number or auto)")
    ap.add_argument("--pseudo-queries", type=int, default=None, help="default: the product's retrain.pseudo_queries")
    ap.add_argument("--plain", action="store_true", help="also train the plain recipe on all gold pairs (peer)")
    ap.add_argument("--lr", type=float, default=None, help="default: the product's retrain.learning_rate")
    ap.add_argument("--max-seq-length", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--budget-s", type=int, default=None, help="default: the product's retrain.budget_s")
    ap.add_argument("--patience", type=int, default=None, help="default: the product's retrain.patience")
    ap.add_argument("--held-out", type=int, default=None, help="queries users never search (stdlib 300, debian 500)")
    ap.add_argument("--held-out-fraction", type=float, default=None, help="the gate's share of the clicked queries")
    ap.add_argument(
        "--labels",
        type=int,
        default=0,
        help="annotators answer this many user queries that got no click (embguard label import)",
    )
    ap.add_argument(
        "--draw",
        type=int,
        default=0,
        help="seed of the draw: which passages (debian), which queries users search and which are held out; "
        "other draws replicate a comparison on other data",
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    from embguard.client.client import Client
    from embguard.config import loader as config
    from embguard.demo.simulate import index
    from embguard.milvus.lite import LiteServer, free_port
    from embguard.milvus.milvus import Milvus
    from embguard.swap.swapper import Swapper
    from embguard.training.candidates import build_candidate
    from embguard.training.labels import import_labels

    work = Path(tempfile.mkdtemp(prefix="bench-product-"))
    env = {
        "EMBGUARD_STATE__DIR": str(work / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(work / "models"),
        "EMBGUARD_LITE__DATA_DIR": str(work / "milvus"),
        "EMBGUARD_LITE__PORT": str(free_port()),
        "EMBGUARD_MILVUS__URI": "lite",
        "EMBGUARD_COLLECTIONS": '[{name="docs", index_type="FLAT"}]',
        "EMBGUARD_SAMPLING__QUERY_RATE": "1.0",
        "EMBGUARD_SAMPLING__STORE_QUERY_TEXT": "true",
        "EMBGUARD_SWAP__GRACE_S": "1",
    }
    for flag, key in (
        ("recipe", "RECIPE"),
        ("pseudo_queries", "PSEUDO_QUERIES"),
        ("epochs", "EPOCHS"),
        ("lr", "LEARNING_RATE"),
        ("max_seq_length", "MAX_SEQ_LENGTH"),
        ("batch_size", "BATCH_SIZE"),
        ("budget_s", "BUDGET_S"),
        ("patience", "PATIENCE"),
        ("held_out_fraction", "HELD_OUT_FRACTION"),
    ):
        if getattr(args, flag) is not None:
            env[f"EMBGUARD_RETRAIN__{key}"] = str(getattr(args, flag))
    settings = config.load(None, environ=env)
    rs = settings.retrain
    corpus, held, users, source = draw(args.corpus, args.draw, args.passages, args.held_out)

    server = LiteServer.from_settings(settings)
    server.start()
    try:
        with Client(settings, seed=0) as c:
            c.create_collection("docs", "default")
            t = time.perf_counter()
            index(c, "docs", corpus)
            log(f"indexed {len(corpus)} passages in {time.perf_counter() - t:.0f} s")

            def judge() -> retrain.PerQueryScores:
                res = c.search("docs", [p.query for p in held], limit=10, consistency_level="Strong")
                return retrain.score_rankings([[h.id for h in hits] for hits in res.hits], [{p.id} for p in held])

            before = judge()
            t = time.perf_counter()
            clicked = 0
            missed = []
            for i in range(0, len(users), 64):
                chunk = users[i : i + 64]
                res = c.search("docs", [p.query for p in chunk], limit=10)
                for p, qid, hits in zip(chunk, res.query_ids, res.hits, strict=True):
                    if p.id in {h.id for h in hits}:
                        c.feedback(qid, p.id)
                        clicked += 1
                    else:
                        missed.append(p)
            log(f"{len(users)} user searches, {clicked} clicked, in {time.perf_counter() - t:.0f} s")
        time.sleep(2 * settings.sampling.tap_flush_interval_s + 1)
        milvus = Milvus.connect(settings)
        spec = settings.collection("docs")
        labelled = random.Random(1).sample(missed, min(args.labels, len(missed)))
        if labelled:
            path = work / "labels.jsonl"
            path.write_text("".join(json.dumps({"query": p.query, "doc_id": p.id}) + "\n" for p in labelled))
            log(f"annotators answered {import_labels(settings, milvus, spec, path)} queries that got no click")
        t0 = time.perf_counter()
        report = build_candidate(settings, milvus, spec, say=log)
        t_retrain = time.perf_counter() - t0
        log(str(report))
        t1 = time.perf_counter()
        Swapper(settings, milvus, say=log).approve(spec, report.version, force=not report.promoted)
        t_swap = time.perf_counter() - t1
        time.sleep(settings.milvus.alias_cache_s + 0.5)
        with Client(settings) as c:
            res = c.search("docs", [p.query for p in held], limit=10, consistency_level="Strong")
            after = retrain.score_rankings([[h.id for h in hits] for hits in res.hits], [{p.id} for p in held])
            served = res.model_id
        milvus.close()
    finally:
        server.stop()
    plain, t_plain = plain_peer(corpus, users, held) if args.plain else (None, 0.0)
    d = after.diff(before, "ndcg@10", resamples=2000, seed=0)
    r = after.diff(before, "recall@10", resamples=2000, seed=0)
    total = t_retrain + t_swap
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {args.corpus}, recipe {rs.recipe}, epochs "
        f"{rs.epochs}, {rs.pseudo_queries} pseudo-queries, {len(labelled)} annotator labels, "
        f"lr {rs.learning_rate:g}, batch {rs.batch_size}, training max_seq_length {rs.max_seq_length}"
        + (f", draw {args.draw}" if args.draw else "")
        + (f", budget_s {rs.budget_s}, patience {rs.patience}" if rs.epochs == "auto" else ""),
        "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/bench_product.py", *sys.argv[1:]]) + "`",
        "",
        f"{os.cpu_count()} CPU cores, no GPU, load average {os.getloadavg()[0]:.1f} at the end. Corpus "
        f"{len(corpus)} passages ({source}FLAT index on Milvus Lite). {len(users)} user searches, "
        f"**{clicked} clicked** "
        f"(the answer was in the top 10), {len(labelled)} unclicked ones answered by annotators (`label import`); "
        f"the gate held out {report.n_held_out} of them and training used "
        f"**{report.n_train_pairs} pairs**. Judged on {len(held)} held-out queries no user searched, through the "
        "alias, before and after the swap.",
        "",
        "| | nDCG@10 | Recall@10 |",
        "|---|---|---|",
        f"| base (before) | {100 * np.mean(before.scores['ndcg@10']):.2f} | "
        f"{100 * np.mean(before.scores['recall@10']):.2f} |",
        f"| after approve ({served}) | {100 * np.mean(after.scores['ndcg@10']):.2f} | "
        f"{100 * np.mean(after.scores['recall@10']):.2f} |",
        f"| Δ [95% CI] | **{100 * d.mean:+.2f}** [{100 * d.low:+.2f}, {100 * d.high:+.2f}] | "
        f"{100 * r.mean:+.2f} [{100 * r.low:+.2f}, {100 * r.high:+.2f}] |",
        *(plain_rows(after, plain, t_plain) if plain is not None else []),
        "",
        f"Time: `embguard retrain` (train + gate) {t_retrain:.0f} s (training {report.train_seconds:.0f} s), "
        f"`--approve` swap "
        f"{t_swap:.0f} s, **{total / 60:.1f} min** together. Gate: {'PROMOTE' if report.promoted else 'REJECT'} "
        f"({'; '.join(report.verdict.reasons)}){'' if report.promoted else ', swapped with --force to measure'}. "
        f"Target: +6.00 nDCG@10 within 15 min: {'met' if 100 * d.mean >= 6 and total <= 900 else 'NOT met'}.",
        "",
        "Gate strata (its held-out queries): "
        + "; ".join(
            f"{name} n={st['n']:.0f} (base missed {st['base_misses']:.0f}), nDCG@10 {100 * st['base']:.2f} -> "
            f"{100 * st['candidate']:.2f}"
            for name, st in report.strata.items()
        )
        + ".",
        "",
        *(f"Choice: {n}" for n in report.notes),
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text("# Product path benchmark (issue #13's retrieval target)\n\n" + (__doc__ or "") + "\n")
    with args.out.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    log(f"appended to {args.out}: Δ nDCG@10 {100 * d.mean:+.2f}, {total / 60:.1f} min")
    if plain is not None:
        log(f"loop - plain: {100 * (after.mean() - plain.mean()):+.2f} nDCG@10")


def draw(
    corpus_name: str, seed: int = 0, passages: int = 1500, held_out: int | None = None
) -> tuple[list[Any], list[Any], list[Any], str]:
    """(corpus, the passages of the queries no user searches, the users' passages, where the corpus came from): the
    draw every product benchmark judges on (bench_pseudo.py too); ``seed`` picks the Debian passages and the split."""
    from embguard.training.stdlib_corpus import stdlib_corpus

    if corpus_name == "debian":
        from debian_docs import debian_corpus

        full = debian_corpus()
        # The corpus is what this machine has installed, so say which one a run drew from.
        digest = hashlib.sha256("\n".join(f"{p.query}\t{p.text}" for p in full).encode()).hexdigest()[:12]
        source = f"drawn from {len(full)} (this machine's Debian packages and man pages, sha256 {digest}), "
        corpus = random.Random(seed).sample(full, passages)
        task = list(corpus)
    else:
        corpus = list(stdlib_corpus())
        task = [p for p in corpus if p.topic != GUARD_TOPIC]
        source = ""
    random.Random(seed).shuffle(task)
    n_held = held_out if held_out is not None else (500 if corpus_name == "debian" else 300)
    held, users = task[:n_held], task[n_held:]
    retrain.assert_disjoint([p.query for p in users], [p.query for p in held])
    return corpus, held, users, source


def plain_peer(corpus: list[Any], users: list[Any], held: list[Any]) -> tuple[retrain.PerQueryScores, float]:
    """The plain sentence-transformers recipe outside the product: every user query's gold passage (clicked or
    not), one hard negative each mined with the base model (5% relative margin), MNRL for 3 epochs at lr 5e-5,
    batch 32, training length 64 (the product's settings before #28); judged on the held-out queries over the
    whole corpus."""
    from embguard.models.loading import load

    base = load()
    t0 = time.perf_counter()
    ids, texts = [p.id for p in corpus], [p.text[:1000] for p in corpus]
    vecs = base.encode(texts)
    gold = [retrain.Pair(query=p.query, positive=p.text[:1000], positive_id=p.id) for p in users]
    text_of = dict(zip(ids, texts, strict=True))
    mined = retrain.mine_hard_negatives(gold, base, retrain.ExactRetriever(ids, vecs), text_of)
    config = retrain.TrainConfig(
        base_model=str(base.path), epochs=3.0, learning_rate=5e-5, batch_size=32, max_seq_length=64
    )
    out = Path(tempfile.mkdtemp(prefix="bench-plain-")) / "model"
    retrain.run_training_subprocess(config, retrain.TrainData(pairs=tuple(mined)), out)
    seconds = time.perf_counter() - t0
    model = load(str(out))
    log(f"plain recipe: {len(mined)} pairs, 3 epochs, {seconds:.0f} s")
    scores = retrain.evaluate_embeddings(
        model.encode_queries([p.query for p in held]), model.encode(texts), ids, [{p.id} for p in held]
    )
    return scores, seconds


def plain_rows(after: retrain.PerQueryScores, plain: retrain.PerQueryScores, seconds: float) -> list[str]:
    d = after.diff(plain, "ndcg@10", resamples=2000, seed=0)
    return [
        f"| plain recipe (every user query's gold pair, 3 epochs + hard negatives; {seconds:.0f} s) | "
        f"{100 * np.mean(plain.scores['ndcg@10']):.2f} | {100 * np.mean(plain.scores['recall@10']):.2f} |",
        f"| product loop − plain [95% CI] | **{100 * d.mean:+.2f}** [{100 * d.low:+.2f}, {100 * d.high:+.2f}] | |",
    ]


if __name__ == "__main__":
    main()
