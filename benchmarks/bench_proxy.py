"""What `embguard proxy` costs an application: added latency and lost throughput, direct vs proxied, one run.

    .venv/bin/python benchmarks/bench_proxy.py [--large 100000] [--seconds 8] [--backend server]

Starts a private Milvus (the real standalone server by default; ``--backend lite`` for Milvus Lite) and an
`embguard proxy` process in front of it (tap on at --query-rate, default the shipped 0.1), then measures with
pymilvus ``MilvusClient`` applications:

- latency, p50/p99, interleaved call by call (direct, proxied, direct, ...) so machine noise hits both alike:
  a cheap call (``has_collection``), a top-10 search on a small collection (1,000 x 384, FLAT) and on a large
  one (``--large`` x 384, HNSW);
- throughput of top-10 searches on the small collection at 1, 8 and 32 concurrent clients (threads, one
  client each), direct and proxied in alternating rounds of ``--seconds``.

Writes benchmarks/results/proxy.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pymilvus import DataType, MilvusClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from backends import MilvusServerProcess  # the test suite's server harness
from proxy_world import ProxyProcess

from embguard.milvus.lite import LiteServer, free_port

OUT = Path(__file__).parent / "results" / "proxy.md"
DIM = 384


def make_collection(client: MilvusClient, name: str, n: int, index: str) -> None:
    schema = MilvusClient.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    params = client.prepare_index_params()
    params.add_index("vector", index_type=index, metric_type="COSINE", params={"M": 16, "efConstruction": 64})
    client.create_collection(name, schema=schema, index_params=params)
    rng = np.random.default_rng(0)
    for start in range(0, n, 5000):
        v = rng.standard_normal((min(5000, n - start), DIM)).astype(np.float32)
        client.insert(name, [{"id": start + i, "vector": row} for i, row in enumerate(v)])
    client.flush(name)
    client.load_collection(name)


def latency(calls: dict[str, Callable[[], object]], n: int) -> dict[str, list[float]]:
    """Each path's call ``n`` times, interleaved, after a warm-up; seconds per call."""
    for call in calls.values():
        for _ in range(20):
            call()
    out: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(n):
        for k, call in calls.items():
            t = time.perf_counter()
            call()
            out[k].append(time.perf_counter() - t)
    return out


def throughput(uri: str, threads: int, seconds: float, queries: np.ndarray) -> float:
    """Searches per second with ``threads`` clients searching the small collection back to back."""
    clients = [MilvusClient(uri=uri) for _ in range(threads)]
    for c in clients:
        c.search("small", data=[queries[0].tolist()], limit=10)
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def work(i: int) -> None:
        c, k = clients[i], i
        while time.perf_counter() < stop:
            c.search("small", data=[queries[k % len(queries)].tolist()], limit=10)
            k += threads
            counts[i] += 1

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    started = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - started
    for c in clients:
        c.close()
    return sum(counts) / elapsed


def ms(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, q))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--backend", choices=["server", "lite"], default="server")
    ap.add_argument("--query-rate", type=float, default=0.1, help="sampling.query_rate of the proxy's tap")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="embguard-bench-proxy-"))
    server, lite = None, None
    try:
        if a.backend == "server":
            server = MilvusServerProcess(tmp / "milvus-server")
            server.start()
            uri = server.uri
        else:
            port = free_port()
            lite = LiteServer(tmp / "milvus", "127.0.0.1", port, tmp / "state")
            lite.start()
            uri = f"http://127.0.0.1:{port}"
        env = {
            "EMBGUARD_MILVUS__URI": uri,
            "EMBGUARD_STATE__DIR": str(tmp / "state"),
            "EMBGUARD_COLLECTIONS": '[{name="small"}, {name="large"}]',
            "EMBGUARD_SAMPLING__QUERY_RATE": str(a.query_rate),
        }
        proxy = ProxyProcess(env, tmp / "proxy.log")
        proxy.start()
        setup = MilvusClient(uri=uri)
        t0 = time.perf_counter()
        make_collection(setup, "small", 1000, "FLAT")
        make_collection(setup, "large", a.large, "HNSW")
        print(f"collections built in {time.perf_counter() - t0:.0f} s", flush=True)
        direct, proxied = MilvusClient(uri=uri), MilvusClient(uri=proxy.uri)
        q = np.random.default_rng(1).standard_normal((64, DIM)).astype(np.float32)
        it = iter(range(10**9))

        def search(c: MilvusClient, name: str) -> Callable[[], object]:
            return lambda: c.search(name, data=[q[next(it) % 64].tolist()], limit=10, search_params={"ef": 64})

        rows = []
        for label, make in (
            ("has_collection", lambda c: lambda: c.has_collection("small")),
            ("search, 1,000 x 384 (FLAT)", lambda c: search(c, "small")),
            (f"search, {a.large:,} x 384 (HNSW)", lambda c: search(c, "large")),
        ):
            res = latency({"direct": make(direct), "proxy": make(proxied)}, a.calls)
            d50, p50 = ms(res["direct"], 50), ms(res["proxy"], 50)
            d99, p99 = ms(res["direct"], 99), ms(res["proxy"], 99)
            rows.append((label, d50, p50, d99, p99))
            print(f"{label}: p50 {d50:.2f} -> {p50:.2f} ms, p99 {d99:.2f} -> {p99:.2f} ms", flush=True)
        direct.close()
        proxied.close()

        tput = []
        for threads in (1, 8, 32):
            d, p = [], []
            for _ in range(a.rounds):  # alternate, so drift in machine load hits both
                d.append(throughput(uri, threads, a.seconds, q))
                p.append(throughput(proxy.uri, threads, a.seconds, q))
            tput.append((threads, float(np.mean(d)), float(np.mean(p))))
            print(f"{threads} clients: {np.mean(d):.0f} -> {np.mean(p):.0f} searches/s", flush=True)
        tapped = proxy.metric("embguard_proxy_tapped_queries_total", collection="small")
        dropped = sum(proxy.metric("embguard_proxy_tap_dropped_total", reason=r) for r in ("queue_full", "buffer_full"))
        proxy.stop()
    finally:
        if lite is not None:
            lite.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    backend = "Milvus standalone 2.3.5 (PyPI `milvus`)" if a.backend == "server" else "Milvus Lite"
    lines = [
        "# `embguard proxy`: added latency and throughput, direct vs proxied (same run)",
        "",
        f"`benchmarks/bench_proxy.py --large {a.large} --calls {a.calls} --seconds {a.seconds} --backend "
        f"{a.backend} --query-rate {a.query_rate}`, {time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {backend}; pymilvus MilvusClient "
        f"applications; the proxy's tap samples searches at query_rate {a.query_rate}. Client, proxy and Milvus "
        "share the machine's cores.",
        "",
        "## Latency (interleaved call by call)",
        "",
        "| call | p50 direct | p50 proxy | added p50 | p99 direct | p99 proxy |",
        "|---|---|---|---|---|---|",
    ]
    for label, d50, p50, d99, p99 in rows:
        lines.append(f"| {label} | {d50:.2f} ms | {p50:.2f} ms | {p50 - d50:+.2f} ms | {d99:.2f} ms | {p99:.2f} ms |")
    lines += [
        "",
        f"## Throughput (top-10 searches on the small collection, mean of {a.rounds} alternating rounds)",
        "",
        "| clients | direct | proxy | proxy / direct |",
        "|---|---|---|---|",
    ]
    for threads, d, p in tput:
        lines.append(f"| {threads} | {d:.0f}/s | {p:.0f}/s | {p / d:.2f} |")
    lines += ["", f"Tapped queries: {tapped:.0f}; dropped by a full tap queue or buffer: {dropped:.0f}.", ""]
    OUT.write_text("\n".join(lines))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
