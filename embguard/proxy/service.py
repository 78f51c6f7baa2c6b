"""``embguard proxy``: the forwarder, the tap and the proxy's own endpoints in one process.

The proxy is its own process so that a daemon restart or crash never cuts an application off Milvus. It does
not connect to Milvus to start (an application pointed at it gets Milvus' own UNAVAILABLE while Milvus is
down, as it would directly) and imports neither torch nor the daemon's modules: it starts in well under a
second (a model loads only when a swap needs the application's writes repeated, :mod:`~embguard.proxy.dualwrite`).
SIGTERM or SIGINT stop it: calls in flight get ``grace_s`` to finish, then what the tap holds is written and the
writes waiting to be repeated are repeated.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from prometheus_client import CollectorRegistry

from embguard.config.settings import Settings
from embguard.http.exporter import Exporter
from embguard.milvus.milvus import Milvus
from embguard.milvus.wire import WRITES
from embguard.proxy.dualwrite import DualWriter
from embguard.proxy.forwarder import Forwarder
from embguard.proxy.metrics import ProxyMetrics
from embguard.proxy.routes import LISTING_POLL_S, POLL_S, Routes, lookup_for
from embguard.proxy.tap import ProxyTap

log = logging.getLogger("embguard.proxy")


class Proxy:
    """A running proxy (``start`` inside an event loop, ``stop`` to end). ``port`` and ``metrics_url`` are where
    it listens."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = ProxyMetrics(self.registry)
        self.tap = ProxyTap(
            settings,
            lambda: Milvus.connect(settings),
            counters=self.metrics,
            queue_size=settings.proxy.queue_size,
        )
        self.dual = DualWriter(settings, lambda: Milvus.connect(settings), on_rows=self.metrics.dual_written)
        lookup = lookup_for(settings)
        self.routes = Routes(
            settings, lambda: Milvus.connect(settings), poll_s=POLL_S if lookup is not None else LISTING_POLL_S
        )
        ca = settings.proxy.upstream_ca_file
        self.forwarder = Forwarder(
            settings.milvus_uri,
            settings.proxy.host,
            settings.proxy.port,
            on_call=self._on_call,
            on_done=self.metrics.call_done,
            root_certificates=ca.read_bytes() if ca else None,
            wants=self.tap.wants,
            on_dropped=lambda reason: self.metrics.dropped(reason, 1),
            routes=self.routes,
            lookup=lookup,
            on_routed=self.metrics.routed,
            list_aliases=settings.proxy.list_aliases,
        )
        self.metrics.queue_depth.set_function(lambda: self.tap.pending)
        self.metrics.dual_write_queue.set_function(lambda: self.dual.pending)
        self.metrics.upstream_up.set_function(lambda: 1 if self.forwarder.last_code not in ("", "UNAVAILABLE") else 0)
        self.exporter = Exporter(
            self.registry, settings.proxy.host, settings.proxy.metrics_port, self._alive, self._ready
        )

    def _on_call(self, method: str, request: bytes, response: bytes, metadata: tuple[tuple[str, str], ...]) -> None:
        self.tap.offer(method, request, response, metadata)
        if method in WRITES:
            self.dual.offer(method, request, response, next((v for k, v in metadata if k == "dbname"), ""))

    @property
    def port(self) -> int:
        return self.forwarder.port

    @property
    def metrics_url(self) -> str:
        host, port = self.exporter.address[:2]
        return f"http://{host}:{port}"

    def _alive(self) -> tuple[bool, dict[str, Any]]:
        return True, {}

    def _ready(self) -> tuple[bool, dict[str, Any]]:
        """Ready while listening: the proxy forwards whatever Milvus' state (an application sees Milvus' own
        errors, not the proxy's), so Milvus' state is reported, not required."""
        return True, {
            "listen": f"{self.forwarder.host}:{self.port}",
            "upstream": self.forwarder.upstream,
            "upstream_last_call": self.forwarder.last_code or "none yet",
            "tap_pending": self.tap.pending,
            "tap_last_error": self.tap.writer.stats.last_error,
            "dual_writes_pending": self.dual.pending,
        }

    async def start(self) -> None:
        await self.forwarder.start()
        self.exporter.start()

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.forwarder.stop(grace_s)
        self.exporter.stop()
        await asyncio.to_thread(self.tap.close)
        await asyncio.to_thread(self.dual.close)
        await asyncio.to_thread(self.routes.close)


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""

    async def main() -> None:
        proxy = Proxy(settings)
        await proxy.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info(
            "embguard proxy: Milvus clients connect to %s:%d, forwarded to %s; /metrics and /readyz on %s",
            settings.proxy.host,
            proxy.port,
            settings.milvus_uri,
            proxy.metrics_url,
        )
        await stop.wait()
        log.info("embguard proxy: stopping (calls in flight get 5 s)")
        await proxy.stop()

    try:  # uvloop's event loop relays bytes with about half the overhead of asyncio's own
        import uvloop
    except ImportError:  # not on Windows
        asyncio.run(main())
    else:
        uvloop.run(main())
