"""/metrics latency under a burst of concurrent scrapes: the exporter before issue #23 against the one now.

Before: ``http.server.ThreadingHTTPServer`` with the standard library's listen backlog of 5 and
``generate_latest``; a burst of connections overflows the backlog, the kernel drops SYNs, and each dropped client
waits for its SYN retransmit (1 s, 3 s, 7 s...). Now: :class:`embguard.daemon.exporter.Exporter`, prometheus_client's
own handler on a threading server with a backlog of ``LISTEN_BACKLOG``.

Both serve the same registry (the daemon's metrics for 20 collections with every series initialised) on
loopback; ``--clients`` threads each open one connection at the same moment, ``--rounds`` times. Writes
benchmarks/results/metrics_scrape.md.

    python benchmarks/bench_metrics_scrape.py [--clients 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from embguard.daemon.metrics import Metrics
from embguard.http.exporter import LISTEN_BACKLOG, Exporter

RESULTS = Path(__file__).parent / "results" / "metrics_scrape.md"


def registry(collections: int = 20) -> CollectorRegistry:
    reg = CollectorRegistry()
    m = Metrics(reg)
    names = [f"c{i}" for i in range(collections)]
    m.init_series(names, ("milvus_watch", "sample", "check", "prune", "retrain_policy"), 0.01, 300, ("mmd",))
    return reg


def old_server(reg: CollectorRegistry) -> tuple[ThreadingHTTPServer, int]:
    """The exporter as it was: standard-library defaults (request_queue_size = 5)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(reg)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


def burst(port: int, clients: int) -> tuple[list[float], int]:
    """``clients`` scrapes released at once; their latencies (s) and how many failed."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def one() -> None:
        start.wait()
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as r:
                r.read()
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
        except OSError:
            with lock:
                failures[0] += 1

    threads = [threading.Thread(target=one) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, failures[0]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def run(clients: int, rounds: int) -> dict[str, dict[str, float]]:
    reg = registry()
    out: dict[str, dict[str, float]] = {}
    old, old_port = old_server(reg)
    new = Exporter(reg, "127.0.0.1", 0, lambda: (True, {}), lambda: (True, {}))
    new.start()
    try:
        for name, port in (("before (backlog 5, generate_latest)", old_port), ("after (Exporter)", new.address[1])):
            lat: list[float] = []
            failed = 0
            for _ in range(rounds):
                xs, f = burst(port, clients)
                lat += xs
                failed += f
                time.sleep(0.5)
            out[name] = {
                "scrapes": len(lat) + failed,
                "failed": failed,
                "p50_s": pct(lat, 0.5),
                "p99_s": pct(lat, 0.99),
                "max_s": max(lat) if lat else float("nan"),
                "mean_s": statistics.fmean(lat) if lat else float("nan"),
            }
    finally:
        old.shutdown()
        old.server_close()
        new.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    res = run(args.clients, args.rounds)
    lines = [
        "# /metrics under a burst of concurrent scrapes",
        "",
        f"`python benchmarks/bench_metrics_scrape.py --clients {args.clients} --rounds {args.rounds}`: "
        f"{args.clients} scrapes released at once, {args.rounds} times, on loopback, against the daemon's registry "
        f"for 20 collections. Before: the standard library's listen backlog of 5; after: "
        f"`embguard.daemon.exporter.Exporter` (prometheus_client's handler, backlog {LISTEN_BACKLOG}).",
        "",
        "| exporter | scrapes | failed | p50 (s) | p99 (s) | max (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        counts = f"{r['scrapes']:.0f} | {r['failed']:.0f}"
        lines.append(f"| {name} | {counts} | {r['p50_s']:.3f} | {r['p99_s']:.3f} | {r['max_s']:.3f} |")
    lines += [
        "",
        "Connections beyond the backlog are dropped by the kernel and retried by the client after 1 s, 3 s, 7 s...: "
        "that is the before column's tail. Numbers depend on the machine (cores, somaxconn); the shape does not.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
