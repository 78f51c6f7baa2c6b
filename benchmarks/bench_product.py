"""The product path, end to end, against issue #13's retrieval target.

    .venv/bin/python benchmarks/bench_product.py                       # product defaults
    .venv/bin/python benchmarks/bench_product.py --epochs 2 --lr 5e-5 --max-seq-length 64 --recipe finetune

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
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

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
    ap.add_argument("--recipe", default="finetune")
    ap.add_argument("--epochs", type=float, default=None, help="default: the product's retrain.epochs")
    ap.add_argument("--lr", type=float, default=None, help="default: the product's retrain.learning_rate")
    ap.add_argument("--max-seq-length", type=int, default=None)
    ap.add_argument("--held-out", type=int, default=300, help="queries users never search (the bench's judge)")
    ap.add_argument("--held-out-fraction", type=float, default=None, help="the gate's share of the clicked queries")
    ap.add_argument(
        "--labels",
        type=int,
        default=0,
        help="annotators answer this many user queries that got no click (embguard label import)",
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
    from embguard.training.stdlib_corpus import stdlib_corpus

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
        "EMBGUARD_RETRAIN__RECIPE": args.recipe,
        "EMBGUARD_SWAP__GRACE_S": "1",
    }
    for flag, key in (
        ("epochs", "EPOCHS"),
        ("lr", "LEARNING_RATE"),
        ("max_seq_length", "MAX_SEQ_LENGTH"),
        ("held_out_fraction", "HELD_OUT_FRACTION"),
    ):
        if getattr(args, flag) is not None:
            env[f"EMBGUARD_RETRAIN__{key}"] = str(getattr(args, flag))
    settings = config.load(None, environ=env)
    rs = settings.retrain
    corpus = list(stdlib_corpus())
    task = [p for p in corpus if p.topic != GUARD_TOPIC]
    random.Random(0).shuffle(task)
    held, users = task[: args.held_out], task[args.held_out :]
    retrain.assert_disjoint([p.query for p in users], [p.query for p in held])

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
    d = after.diff(before, "ndcg@10", resamples=2000, seed=0)
    r = after.diff(before, "recall@10", resamples=2000, seed=0)
    total = t_retrain + t_swap
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: recipe {rs.recipe}, {rs.epochs:g} epoch(s), "
        f"{len(labelled)} annotator labels, "
        f"lr {rs.learning_rate:g}, training max_seq_length {rs.max_seq_length}",
        "",
        "Command: `" + " ".join([".venv/bin/python benchmarks/bench_product.py", *sys.argv[1:]]) + "`",
        "",
        f"{os.cpu_count()} CPU cores, no GPU, load average {os.getloadavg()[0]:.1f} at the end. Corpus "
        f"{len(corpus)} passages (FLAT index on Milvus Lite). {len(users)} user searches, **{clicked} clicked** "
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
        "",
        f"Time: `embguard retrain` {t_retrain:.0f} s (training {report.train_seconds:.0f} s), `--approve` swap "
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
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not args.out.exists():
        args.out.write_text("# Product path benchmark (issue #13's retrieval target)\n\n" + (__doc__ or "") + "\n")
    with args.out.open("a") as fh:
        fh.write("\n".join(lines) + "\n")
    log(f"appended to {args.out}: Δ nDCG@10 {100 * d.mean:+.2f}, {total / 60:.1f} min")


if __name__ == "__main__":
    main()
