"""What `embguard endpoint` delivers against a plain sentence-transformers encode loop, one run.

    .venv/bin/python benchmarks/bench_endpoint.py [--seconds 8] [--rounds 2]

Starts `embguard endpoint` (its own process, the shipped all-MiniLM-L6-v2 named by model id, so no Milvus is
involved) and measures, at 1, 8 and 32 concurrent clients (threads in this process, each with its own keep-alive
HTTP connection, one text per request, as an application embeds a search query):

- the endpoint: texts/s and client-side p50/p99 per request (``POST /v1/embeddings``, base64 as the OpenAI SDK
  asks for it);
- the peers, in the same run, in this process and with no HTTP at all, encoding the same texts in batches of
  the client count (what one process does with that many texts in hand): the plain loop a user writes
  (``SentenceTransformer.encode(batch, normalize_embeddings=True)``, its default passes of 32), and the same
  loop tuned as the endpoint runs it (length-sorted passes of ``endpoint.encode_batch_size``, 8).

Rounds alternate endpoint and peer so machine noise hits both alike. Writes benchmarks/results/endpoint.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from proxy_world import EndpointProcess  # the test suite's harness

from embguard.models import loading as models
from embguard.training.stdlib_corpus import stdlib_corpus

OUT = Path(__file__).parent / "results" / "endpoint.md"
CLIENTS = (1, 8, 32)
PASSES = 8  # endpoint.encode_batch_size's default


def endpoint_round(
    url: str, model_id: str, texts: list[str], clients: int, seconds: float
) -> tuple[float, list[float]]:
    """(texts/s, per-request seconds) for ``clients`` threads posting one text each, for ``seconds``."""
    stop = time.perf_counter() + seconds
    lat: list[list[float]] = [[] for _ in range(clients)]

    def work(i: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            k = i
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = http.post(
                    "/v1/embeddings",
                    json={"model": model_id, "input": texts[k % len(texts)], "encoding_format": "base64"},
                )
                r.raise_for_status()
                lat[i].append(time.perf_counter() - t0)
                k += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    flat = [x for xs in lat for x in xs]
    return len(flat) / elapsed, flat


def peer_round(st: object, texts: list[str], batch: int, seconds: float, passes: int = 32) -> float:
    """texts/s of an encode loop over ``texts`` in batches of ``batch``, each in length-sorted passes of
    ``passes`` texts (sentence-transformers' default: 32)."""
    stop = time.perf_counter() + seconds
    done, k, started = 0, 0, time.perf_counter()
    while time.perf_counter() < stop:
        chunk = [texts[(k + j) % len(texts)] for j in range(batch)]
        st.encode(chunk, batch_size=passes, normalize_embeddings=True, show_progress_bar=False)  # type: ignore[attr-defined]
        done += batch
        k += batch
    return done / (time.perf_counter() - started)


def ms(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q) * 1000) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    texts = [p.query for p in stdlib_corpus()]
    model = models.load()
    st = model.sentence_transformer
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "EMBGUARD_STATE__DIR": str(Path(tmp) / "state"),
            "EMBGUARD_MODEL__STORE_DIR": str(Path(tmp) / "models"),
            "EMBGUARD_MILVUS__URI": "http://127.0.0.1:9",  # never contacted: the model is named by id
        }
        endpoint = EndpointProcess(env, Path(tmp) / "endpoint.log")
        endpoint.start()
        try:
            endpoint_round(endpoint.url, model.model_id, texts, 8, 2.0)  # warm-up: model loaded, threads started
            peer_round(st, texts, 8, 2.0)
            results: dict[int, dict[str, list[float]]] = {
                c: {"endpoint": [], "peer": [], "tuned": [], "lat": [], "batch": [], "busy": []} for c in CLIENTS
            }
            names = ("embguard_endpoint_batch_texts_sum", "embguard_endpoint_batch_texts_count")
            names += ("embguard_endpoint_encode_seconds_total",)
            for r in range(args.rounds):
                for c in CLIENTS:
                    before = [endpoint.metric(n) for n in names]
                    started = time.perf_counter()
                    rate, lat = endpoint_round(endpoint.url, model.model_id, texts, c, args.seconds)
                    elapsed = time.perf_counter() - started
                    texts_n, batches, busy = (endpoint.metric(n) - b for n, b in zip(names, before, strict=True))
                    results[c]["batch"].append(texts_n / max(batches, 1))
                    results[c]["busy"].append(busy / elapsed)
                    results[c]["endpoint"].append(rate)
                    results[c]["lat"].extend(lat)
                    results[c]["peer"].append(peer_round(st, texts, c, args.seconds))
                    results[c]["tuned"].append(peer_round(st, texts, c, args.seconds, passes=PASSES))
                    print(
                        f"round {r + 1} clients {c}: endpoint {rate:.0f}/s plain {results[c]['peer'][-1]:.0f}/s "
                        f"tuned {results[c]['tuned'][-1]:.0f}/s"
                    )
        finally:
            endpoint.stop()

    rows = []
    for c in CLIENTS:
        e, p, t, batch, busy = (float(np.mean(results[c][k])) for k in ("endpoint", "peer", "tuned", "batch", "busy"))
        lat = results[c]["lat"]
        rows.append(
            f"| {c} | {e:.0f} | {p:.0f} | **{e / p:.2f}** | {t:.0f} | **{e / t:.2f}** | {ms(lat, 50):.1f} | "
            f"{ms(lat, 99):.1f} | {batch:.1f} | {busy:.0%} |"
        )
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    OUT.write_text(
        "# Embedding endpoint vs a plain sentence-transformers loop\n\n"
        f"`benchmarks/bench_endpoint.py --seconds {args.seconds:g} --rounds {args.rounds}`, "
        f"{time.strftime('%Y-%m-%d')}, {cpu}; model {model.model_id}; {len(texts)} stdlib-docs queries, one text "
        "per request (base64), clients are threads of the benchmark process with keep-alive connections (they share "
        "the 2 cores with the endpoint); the peers encode the same texts in batches of the client count in the "
        "benchmark process, with no HTTP: the plain loop in sentence-transformers' default passes of 32, the tuned "
        f"one in length-sorted passes of {PASSES} as the endpoint runs. Means over rounds that alternate them.\n\n"
        "| clients | endpoint texts/s | plain loop texts/s | endpoint / plain | tuned loop texts/s | endpoint / tuned "
        "| endpoint p50 ms | endpoint p99 ms | texts per encoder pass | encoder busy |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    print(OUT.read_text())


if __name__ == "__main__":
    main()
