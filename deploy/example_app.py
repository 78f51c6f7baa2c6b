"""The docker-compose stack's example application: what an application that embeds ``embguard.Client`` looks like.

It is the `app` service of docker-compose.yml and the `embguard-app` scrape target of prometheus/prometheus.yml:
the query tap's and the client's counters (``embguard_tap_rows_total``, ``embguard_client_*``) on :9465, and
a small JSON API on :8080 (published on 127.0.0.1 only):

    curl '127.0.0.1:8080/search?q=how+do+I+reset+my+password'             # {"query_id", "collection", "hits"}
    curl -XPOST 127.0.0.1:8080/feedback -d '{"query_id": "...", "doc_id": 42}'   # a click
    curl 127.0.0.1:8080/healthz

Replace it with your own application: keep passing ``registry=`` to ``Client`` and serving that registry, and
point the `embguard-app` job of prometheus/prometheus.yml at it.

Milvus may start after this process (or restart under it): connecting retries with exponential backoff and
full jitter (``backoff_delays``), so a fleet of application replicas does not reconnect in lock-step.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

log = logging.getLogger("example_app")


def backoff_delays(base_s: float = 1.0, cap_s: float = 30.0, rng: random.Random | None = None) -> Iterator[float]:
    """Seconds to wait before each retry: "full jitter" exponential backoff, uniform in [0, min(cap, base*2^n)]."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        yield rng.uniform(0.0, min(cap_s, base_s * 2**attempt))
        attempt += 1


def connect(settings: Any, registry: Any, deadline_s: float = 600.0) -> Any:
    """``embguard.Client`` once Milvus answers; retries with jittered backoff until ``deadline_s``."""
    from embguard.client.client import Client
    from embguard.errors import MilvusUnavailable

    start = time.monotonic()
    for delay in backoff_delays():
        try:
            return Client(settings, registry=registry)
        except MilvusUnavailable as exc:
            if time.monotonic() - start + delay > deadline_s:
                raise
            log.warning("Milvus not reachable yet (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def make_handler(client: Any, default_collection: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's name
            url = urlparse(self.path)
            if url.path == "/healthz":
                self._send(200, {"status": "ok"})
            elif url.path == "/search":
                args = parse_qs(url.query)
                query = (args.get("q") or [""])[0]
                if not query:
                    self._send(400, {"error": "pass the query as ?q=..."})
                    return
                collection = (args.get("collection") or [default_collection])[0]
                limit = int((args.get("limit") or ["10"])[0])
                try:
                    res = client.search(collection, [query], limit=limit)
                except Exception as exc:  # an example: report, do not crash the server
                    self._send(502, {"error": str(exc)})
                    return
                hits = [{"id": h.id, "score": h.score} for h in res.hits[0]]
                self._send(200, {"query_id": res.query_ids[0], "collection": res.collection, "hits": hits})
            else:
                self._send(404, {"error": "try /search?q=..., POST /feedback, /healthz"})

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/feedback":
                self._send(404, {"error": "POST /feedback"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                fid = client.feedback(body["query_id"], body["doc_id"], signal=body.get("signal", "click"))
            except Exception as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(200, {"feedback_id": fid})

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    from prometheus_client import CollectorRegistry, start_http_server

    from embguard.config.loader import load as load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_config()
    registry = CollectorRegistry()
    metrics_port = int(os.environ.get("APP_METRICS_PORT", "9465"))
    start_http_server(metrics_port, addr="0.0.0.0", registry=registry)
    client = connect(settings, registry)
    collection = os.environ.get("APP_COLLECTION") or (settings.collections[0].name if settings.collections else "docs")
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("APP_PORT", "8080"))), make_handler(client, collection))
    log.info("serving /search on :%d, metrics on :%d", server.server_address[1], metrics_port)
    try:
        server.serve_forever()
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
