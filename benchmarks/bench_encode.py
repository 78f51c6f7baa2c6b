"""Encode speed and quality of every encoder variant (#27), in one run on the same passages.

For torch fp32, onnx fp32, onnx int8, openvino fp32 and openvino int8 (``[model] backend`` / ``quantize``):
- docs/s encoding stdlib documentation passages (mean ~300 characters) at the default batch size, the best of
  two rounds that interleave the variants (so a busy moment hurts all of them, not one);
- single-query latency p50 / p95 (one ``encode_queries`` call per query, as a search makes);
- nDCG@10 and recall@10 of exact-cosine retrieval on the stdlib corpus (2,220 docstring first lines as queries,
  the rest of each docstring as its one relevant passage, over all 2,220 passages);
- the cosine of each passage vector to torch's (min and mean).
Then the write paths with the fast variant: ``Client.insert`` into Milvus Lite against pure encoding of the same
documents, and (``--backfill``) a swap's local backfill against pure encoding.

    .venv/bin/python benchmarks/bench_encode.py          # writes benchmarks/results/encode.md
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import retrain
from embguard.client.client import Client
from embguard.config import loader as config
from embguard.milvus.lite import LiteServer, free_port
from embguard.models import loading as models
from embguard.training.stdlib_corpus import stdlib_corpus

OUT = Path(__file__).parent / "results" / "encode.md"
VARIANTS = ("", "onnx", "onnx-int8", "openvino", "openvino-int8")
FAST = "openvino-int8"


def name(variant: str) -> str:
    return variant or "torch"


def measure_variants(passages: list[str], queries: list[str], n_speed: int, rounds: int) -> dict[str, dict]:
    corpus = stdlib_corpus()
    out: dict[str, dict] = {}
    for v in VARIANTS:
        t = time.perf_counter()
        m = models.load("default", variant=v)
        m.encode(passages[:64])
        out[v] = {"load_s": time.perf_counter() - t, "docs_s": 0.0}
    speed_set = passages[:n_speed]
    for _ in range(rounds):
        for v in VARIANTS:
            m = models.load("default", variant=v)
            t = time.perf_counter()
            m.encode(speed_set)
            out[v]["docs_s"] = max(out[v]["docs_s"], len(speed_set) / (time.perf_counter() - t))
    base_docs = None
    for v in VARIANTS:
        m = models.load("default", variant=v)
        lat = []
        for q in queries[:200]:
            t = time.perf_counter()
            m.encode_queries([q])
            lat.append((time.perf_counter() - t) * 1000)
        docs = m.encode([p.text for p in corpus])
        qv = m.encode_queries([p.query for p in corpus])
        scores = retrain.evaluate_embeddings(qv, docs, [p.id for p in corpus], [{p.id} for p in corpus])
        base_docs = docs if base_docs is None else base_docs
        cos = np.sum(docs * base_docs, axis=1)
        out[v].update(
            p50_ms=statistics.median(lat),
            p95_ms=float(np.percentile(lat, 95)),
            ndcg=float(np.mean(scores.scores["ndcg@10"])),
            recall=float(np.mean(scores.scores["recall@10"])),
            cos_min=float(cos.min()),
            cos_mean=float(cos.mean()),
        )
        print(name(v), {k: round(x, 4) for k, x in out[v].items()}, flush=True)
    return out


def measure_insert(passages: list[str], variant: str, n: int) -> dict:
    """Client.insert of ``n`` documents into a fresh Lite collection vs pure encoding of the same texts."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-encode-"))
    backend, _, quantize = (variant or "torch-").partition("-")
    env = {
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(free_port()),
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
        "EMBGUARD_MODEL__BACKEND": backend,
        "EMBGUARD_MODEL__QUANTIZE": quantize or "none",
        "EMBGUARD_COLLECTIONS": '[{name="bench", index_type="HNSW"}]',
    }
    docs = [{"id": i, "text": passages[i % len(passages)]} for i in range(n)]
    try:
        settings = config.load(None, environ=env)
        with LiteServer.from_settings(settings).running(), Client(settings) as c:
            c.create_collection("bench")
            model = c.model_for(c.resolve("bench"))
            model.encode([d["text"] for d in docs[:64]])
            t = time.perf_counter()
            model.encode([d["text"] for d in docs])
            encode_s = time.perf_counter() - t
            t = time.perf_counter()
            c.insert("bench", docs)
            insert_s = time.perf_counter() - t
        return {"variant": name(variant), "n": n, "encode_docs_s": n / encode_s, "insert_docs_s": n / insert_s}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write(results: dict[str, dict], inserts: list[dict], args: argparse.Namespace) -> None:
    torch_row = results[""]
    lines = [
        "# Encode speed and quality by encoder variant (benchmarks/bench_encode.py)",
        "",
        f"Machine: {platform.machine()}, {_cores()} cores, Python {sys.version.split()[0]}; all-MiniLM-L6-v2, "
        f"batch size 64, max_seq_length 256. Throughput: {args.n_speed} stdlib passages (mean "
        f"{args.mean_chars:.0f} characters), best of {args.rounds} interleaved rounds. Retrieval: the 2,220-passage "
        "stdlib corpus, each docstring's first line as the query for the rest.",
        "",
        "| variant | docs/s | vs torch | query p50 ms | query p95 ms | nDCG@10 | Δ nDCG@10 | recall@10 | "
        "cosine to torch min / mean | load s (first: export) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v, r in results.items():
        lines.append(
            f"| {name(v)} | {r['docs_s']:.1f} | {r['docs_s'] / torch_row['docs_s']:.2f}x | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['ndcg']:.4f} | {r['ndcg'] - torch_row['ndcg']:+.4f} | {r['recall']:.4f} | "
            f"{r['cos_min']:.4f} / {r['cos_mean']:.4f} | {r['load_s']:.1f} |"
        )
    lines += [
        "",
        "## Write paths (Milvus Lite on loopback)",
        "",
        "| variant | documents | pure encode docs/s | Client.insert docs/s | insert / encode |",
        "|---|---|---|---|---|",
    ]
    for r in inserts:
        lines.append(
            f"| {r['variant']} | {r['n']} | {r['encode_docs_s']:.1f} | {r['insert_docs_s']:.1f} | "
            f"{r['insert_docs_s'] / r['encode_docs_s']:.0%} |"
        )
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-speed", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--n-insert", type=int, default=2000)
    args = ap.parse_args()
    passages = [p.text for p in stdlib_corpus()]
    args.mean_chars = float(np.mean([len(p) for p in passages[: args.n_speed]]))
    results = measure_variants(passages, [p.query for p in stdlib_corpus()], args.n_speed, args.rounds)
    inserts = [measure_insert(passages, v, args.n_insert) for v in ("", FAST)]
    write(results, inserts, args)


if __name__ == "__main__":
    main()
