"""Search latency through embguard.Client (tap on) versus plain pymilvus MilvusClient, same model, one run.

    .venv/bin/python benchmarks/bench_tap.py [--queries 400] [--docs 2000]

Starts a private Milvus Lite server, indexes real text (standard-library docstring summaries) with the
default model, then runs the same queries through four paths, interleaved query by query so that machine
noise hits all paths alike:

- plain:        encode with the model, ``MilvusClient.search`` on the alias
- client tap 0: ``embguard.Client.search`` with the tap off (alias resolution + model lookup only)
- client tap .1: the default sampling rate
- client tap 1: every query recorded (worst case)

Writes benchmarks/results/tap.md.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from pymilvus import MilvusClient

from embguard import config
from embguard import model as models
from embguard.client import Client
from embguard.corpus import stdlib_corpus
from embguard.lite import LiteServer, free_port
from embguard.milvus import MODEL_ID_PROPERTY, Milvus

OUT = Path(__file__).parent / "results" / "tap.md"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--docs", type=int, default=2000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="embguard-bench-tap-"))
    env = {"EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"), "EMBGUARD_LITE__PORT": str(free_port()),
           "EMBGUARD_STATE__DIR": str(tmp / "state"), "EMBGUARD_COLLECTIONS": '[{name="bench", index_type="HNSW"}]'}
    settings = config.load(None, environ=env)
    corpus = stdlib_corpus()
    docs = corpus[: args.docs]
    queries = [p.query for p in corpus[-args.queries:]]
    try:
        with LiteServer.from_settings(settings).running():
            em = models.load()
            m = Milvus.connect(settings)
            m.create_collection(settings.collection("bench"), em.dimension, name="bench__v1",
                                properties={MODEL_ID_PROPERTY: em.model_id})
            m.create_alias("bench__v1", "bench")
            t = time.perf_counter()
            for i in range(0, len(docs), 256):
                chunk = docs[i:i + 256]
                vecs = em.encode([p.query for p in chunk])
                m.insert("bench", [{"id": p.id, "vector": v.tolist(), "text": p.query} for p, v in zip(chunk, vecs)])
            m.flush("bench__v1")
            m.wait_index("bench__v1", "vector")
            index_s = time.perf_counter() - t

            plain = MilvusClient(uri=settings.milvus_uri)
            clients = {rate: Client(settings, query_rate=rate, seed=1) for rate in (0.0, 0.1, 1.0)}
            paths = {
                "plain MilvusClient": lambda q: plain.search("bench", data=em.encode([q]).tolist(), limit=10,
                                                             output_fields=["id"]),
                "embguard.Client, tap off": lambda q: clients[0.0].search("bench", [q], limit=10),
                "embguard.Client, tap 10%": lambda q: clients[0.1].search("bench", [q], limit=10),
                "embguard.Client, tap 100%": lambda q: clients[1.0].search("bench", [q], limit=10),
            }
            for q in queries[:30]:  # warm-up
                for f in paths.values():
                    f(q)
            lat: dict[str, list[float]] = {k: [] for k in paths}
            order = list(paths)
            for i, q in enumerate(queries):
                for name in order[i % len(order):] + order[: i % len(order)]:  # rotate who goes first
                    t0 = time.perf_counter()
                    paths[name](q)
                    lat[name].append(time.perf_counter() - t0)
            stats = {rate: c.tap_stats.snapshot() for rate, c in clients.items()}
            for c in clients.values():
                c.close()
            stats_after = {rate: c.tap_stats.snapshot() for rate, c in clients.items()}
            plain.close()
            m.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base50, base99 = pct(lat["plain MilvusClient"], 50), pct(lat["plain MilvusClient"], 99)
    lines = [
        "# Query tap overhead: embguard.Client versus plain MilvusClient",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_tap.py --queries {args.queries} --docs {args.docs}`  ",
        f"Machine: {platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores; Milvus Lite server on "
        f"loopback; model {em.model_id}; HNSW index over {len(docs)} passages (indexed in {index_s:.1f} s); "
        f"{len(queries)} single-query searches per path, top-10, interleaved.",
        "",
        "| path | p50 ms | p99 ms | mean ms | p50 vs plain | p99 vs plain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, xs in lat.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        lines.append(f"| {name} | {p50:.2f} | {p99:.2f} | {statistics.mean(xs) * 1000:.2f} | {p50 / base50:.3f} | "
                     f"{p99 / base99:.3f} |")
    tap100 = pct(lat["embguard.Client, tap 100%"], 50)
    tap_off = pct(lat["embguard.Client, tap off"], 50)
    lines += [
        "",
        f"Tap cost at p50 (tap 100% vs tap off, same client): {100 * (tap100 / tap_off - 1):+.1f}%.  ",
        f"Client cost at p50 (tap 100% vs plain): {100 * (tap100 / base50 - 1):+.1f}% (target: under 3%).",
        "",
        "Tap counters after close (sampled / written / dropped):",
        "",
    ]
    for rate, s in stats_after.items():
        lines.append(f"- rate {rate}: {s['sampled']} / {s['written']} / {s['dropped_full'] + s['dropped_error']} "
                     f"(before close: {stats[rate]['written']} written)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
