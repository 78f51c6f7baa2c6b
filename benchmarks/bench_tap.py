"""Search latency through embguard.Client (tap on) versus plain pymilvus MilvusClient, same model, one run,
on each backend: Milvus Lite and the real Milvus standalone server (PyPI ``milvus``).

    .venv/bin/python benchmarks/bench_tap.py [--queries 400] [--docs 2000] [--backends lite,server]

Starts a private server per backend, indexes real text (standard-library docstring summaries) with the
default model, then runs the same queries through five paths, interleaved query by query so that machine
noise hits all paths alike:

- plain:        encode with the model, ``MilvusClient.search`` on the alias
- client, no alias cache: ``embguard.Client.search`` resolving the alias on every search, tap off
- client tap 0: ``embguard.Client.search`` with the tap off (alias cache on, the default)
- client tap .1: the default sampling rate
- client tap 1: every query recorded (worst case); its counters show whether every sampled row was stored

Writes benchmarks/results/tap.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from pymilvus import MilvusClient

from embguard.client.client import Client
from embguard.config import loader as config
from embguard.config.settings import Settings
from embguard.milvus.lite import LiteServer, free_port
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models import loading as models
from embguard.training.stdlib_corpus import stdlib_corpus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from backends import MilvusServerProcess  # the test suite's server harness

OUT = Path(__file__).parent / "results" / "tap.md"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def run(backend: str, docs: list, queries: list[str]) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix=f"embguard-bench-tap-{backend}-"))
    env = {
        "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
        "EMBGUARD_LITE__PORT": str(free_port()),
        "EMBGUARD_STATE__DIR": str(tmp / "state"),
        "EMBGUARD_COLLECTIONS": '[{name="bench", index_type="HNSW"}]',
    }
    server = MilvusServerProcess(tmp / "server") if backend == "server" else None
    try:
        if server is not None:
            server.start()
            env["EMBGUARD_MILVUS__URI"] = server.uri
            running = contextlib.nullcontext()
        else:
            running = LiteServer.from_settings(config.load(None, environ=env)).running()
        settings = config.load(None, environ=env)
        with running:
            return measure(settings, docs, queries)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(settings: Settings, docs: list, queries: list[str]) -> dict:
    em = models.load()
    m = Milvus.connect(settings)
    m.create_collection(
        settings.collection("bench"), em.dimension, name="bench__v1", properties={MODEL_ID_PROPERTY: em.model_id}
    )
    m.create_alias("bench__v1", "bench")
    t = time.perf_counter()
    for i in range(0, len(docs), 256):
        chunk = docs[i : i + 256]
        vecs = em.encode([p.query for p in chunk])
        rows = [{"id": p.id, "vector": v.tolist(), "text": p.query} for p, v in zip(chunk, vecs, strict=True)]
        m.insert("bench", rows)
    m.flush("bench__v1")
    m.wait_index("bench__v1", "vector")
    index_s = time.perf_counter() - t

    plain = MilvusClient(uri=settings.milvus_uri)
    uncached = settings.model_copy(update={"milvus": settings.milvus.model_copy(update={"alias_cache_s": 0.0})})
    clients = {rate: Client(settings, query_rate=rate, seed=1) for rate in (0.0, 0.1, 1.0)}
    no_cache = Client(uncached, query_rate=0.0)
    paths = {
        "plain MilvusClient": lambda q: plain.search(
            "bench", data=em.encode([q]).tolist(), limit=10, output_fields=["id"]
        ),
        "embguard.Client, no alias cache, tap off": lambda q: no_cache.search("bench", [q], limit=10),
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
        for name in order[i % len(order) :] + order[: i % len(order)]:  # rotate who goes first
            t0 = time.perf_counter()
            paths[name](q)
            lat[name].append(time.perf_counter() - t0)
    stats = {rate: c.tap_stats.snapshot() for rate, c in clients.items()}
    for c in [*clients.values(), no_cache]:
        c.close()
    stats_after = {rate: c.tap_stats.snapshot() for rate, c in clients.items()}
    stored = m.count("embguard_queries")
    plain.close()
    m.close()
    return {
        "lat": lat,
        "stats": stats,
        "stats_after": stats_after,
        "index_s": index_s,
        "model_id": em.model_id,
        "version": m.server_version,
        "stored": stored,
    }


def table(backend: str, r: dict, n_docs: int, n_queries: int) -> list[str]:
    lat = r["lat"]
    base50, base99 = pct(lat["plain MilvusClient"], 50), pct(lat["plain MilvusClient"], 99)
    lines = [
        f"## {backend} ({r['version']})",
        "",
        f"HNSW index over {n_docs} passages (indexed in {r['index_s']:.1f} s); {n_queries} single-query searches "
        "per path, top-10, interleaved.",
        "",
        "| path | p50 ms | p99 ms | mean ms | p50 vs plain | p99 vs plain |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, xs in lat.items():
        p50, p99 = pct(xs, 50), pct(xs, 99)
        lines.append(
            f"| {name} | {p50:.2f} | {p99:.2f} | {statistics.mean(xs) * 1000:.2f} | {p50 / base50:.3f} | "
            f"{p99 / base99:.3f} |"
        )
    tap100 = pct(lat["embguard.Client, tap 100%"], 50)
    tap_off = pct(lat["embguard.Client, tap off"], 50)
    lines += [
        "",
        f"Tap cost at p50 (tap 100% vs tap off, same client): {100 * (tap100 / tap_off - 1):+.1f}%.  ",
        f"Client cost at p50 (tap 100% vs plain): {100 * (tap100 / base50 - 1):+.1f}% (target: under 3%).  ",
        f"Client cost at p50 without the alias cache (tap off vs plain): "
        f"{100 * (pct(lat['embguard.Client, no alias cache, tap off'], 50) / base50 - 1):+.1f}%.",
        "",
        "Tap counters after close (sampled / written / dropped / failed flushes):",
        "",
    ]
    for rate, s in r["stats_after"].items():
        lines.append(
            f"- rate {rate}: {s['sampled']} / {s['written']} / {s['dropped_full'] + s['dropped_error']} / "
            f"{s['flush_errors']} (before close: {r['stats'][rate]['written']} written)"
        )
    total_sampled = sum(s["sampled"] for s in r["stats_after"].values())
    lines += [
        "",
        f"Rows in `embguard_queries` afterwards: {r['stored']} of {total_sampled} sampled "
        f"({100 * r['stored'] / max(total_sampled, 1):.1f}% stored).",
        "",
    ]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--docs", type=int, default=2000)
    ap.add_argument("--backends", default="lite,server")
    args = ap.parse_args()
    corpus = stdlib_corpus()
    docs = corpus[: args.docs]
    queries = [p.query for p in corpus[-args.queries :]]
    lines = [
        "# Query tap overhead: embguard.Client versus plain MilvusClient",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_tap.py --queries {args.queries} --docs {args.docs} "
        f"--backends {args.backends}`  ",
        f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores; servers on loopback; model "
        "all-MiniLM-L6-v2 (default). Each backend runs the same documents and queries.",
        "",
    ]
    for backend in args.backends.split(","):
        lines += table(backend, run(backend, docs, queries), len(docs), len(queries))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
