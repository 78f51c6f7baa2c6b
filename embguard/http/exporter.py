"""The daemon's HTTP endpoints: ``/metrics`` (Prometheus), ``/healthz`` (alive), ``/readyz`` (can do its job).

``/metrics`` is prometheus_client's own handler (``MetricsHandler``): it negotiates the format from ``Accept``
(OpenMetrics for ``application/openmetrics-text``, the text format otherwise), gzips when ``Accept-Encoding``
allows, and honours ``name[]`` filters. Each request gets a thread, and the listen backlog is
``LISTEN_BACKLOG``: the standard library's default of 5 made the kernel drop the connections of a burst of
scrapes (many Prometheus replicas, a federation, a dashboard refresh), and each dropped SYN costs the client a
1, 3, 7... s retransmit (p99 14 s at 100 concurrent scrapes; benchmarks/results/metrics_scrape.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import MetricsHandler

from embguard.errors import MetricsServerError

LISTEN_BACKLOG = 512
PROBES = ("/healthz", "/readyz")


class _Server(ThreadingHTTPServer):
    request_queue_size = LISTEN_BACKLOG  # the backlog passed to listen()
    daemon_threads = True  # a stuck scraper never holds up shutdown


class Exporter:
    """Serves the registry and two probes on ``host:port`` from a background thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        host: str,
        port: int,
        health: Callable[[], tuple[bool, dict[str, Any]]],
        ready: Callable[[], tuple[bool, dict[str, Any]]],
    ):
        class Handler(MetricsHandler):
            def do_GET(self) -> None:  # http.server's name
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    super().do_GET()  # prometheus_client: format negotiation, gzip, name[] filters
                elif path in PROBES:
                    ok, detail = (health if path == "/healthz" else ready)()
                    body = json.dumps({"status": "ok" if ok else "unavailable", **detail}, default=str).encode()
                    self._send(200 if ok else 503, body, "application/json")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # scrapes every 15 s would flood the log
                pass

        Handler.registry = registry
        try:
            self._server = _Server((host, port), Handler)
        except OSError as exc:
            raise MetricsServerError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror}; set metrics.port "
                "(or EMBGUARD_METRICS__PORT) to a free port"
            ) from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="embguard-exporter", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
