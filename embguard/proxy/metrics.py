"""The proxy's metrics, on a registry passed in, served on the proxy's own ``/metrics`` (``proxy.metrics_port``).

Labels stay low-cardinality: ``method`` is a ``MilvusService`` method (a fixed set of the protocol's; any other
path is ``other``), ``code`` a gRPC status code name, ``collection`` a watched alias, ``op``
insert|upsert|delete, ``reason`` one of ``DROP_REASONS``, ``outcome`` one of ``DUAL_WRITE_OUTCOMES``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from embguard.proxy.router import ROUTE_OUTCOMES
from embguard.proxy.tap import ProxyCounters

# Why a forwarded call (or one query of it) was not tapped. The call itself was forwarded either way.
DROP_REASONS = (
    "queue_full",  # the tap's queue was full: the tap is behind
    "decode_error",  # the call's bytes did not parse as the protocol says
    "too_large",  # a call's request or response past the tap's buffer limit (a bulk insert)
    "text_query",  # Milvus embeds the query text itself (a function): there is no vector to read
    "not_float_vector",  # a sparse, binary or half-precision query
    "no_placeholder",
    "malformed",
    "invalid_vector",  # NaN, infinite, beyond +-1e6 or all zeros
    "milvus_unavailable",  # the alias could not be resolved to its collection
    "buffer_full",  # the tap writer's buffer was full
    "write_error",  # writing tap rows to Milvus failed past the retry budget
)
DUAL_WRITE_OUTCOMES = ("written", "no_text", "no_key", "failed", "dropped")
# Latency buckets for a proxied call, from a cached has_collection (< 1 ms) to a large search.
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


# (name, type, labels, help): the proxy's metric catalogue, from which the metrics are made and docs/proxy.md's
# table is generated.
CATALOGUE: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    (
        "embguard_proxy_calls_total",
        "counter",
        ("method", "code"),
        "Calls forwarded to Milvus, by method and the gRPC status code the application got",
    ),
    ("embguard_proxy_upstream_seconds", "histogram", ("method",), "Time from forwarding a call to Milvus' answer"),
    ("embguard_proxy_tapped_queries_total", "counter", ("collection",), "Queries sampled into the query tap"),
    (
        "embguard_proxy_tap_dropped_total",
        "counter",
        ("reason",),
        "Queries or calls the tap did not record, by reason (the call itself was forwarded)",
    ),
    (
        "embguard_proxy_document_rows_total",
        "counter",
        ("collection", "op"),
        "Rows the application inserted, upserted or deleted in a watched collection through the proxy",
    ),
    (
        "embguard_proxy_dual_write_rows_total",
        "counter",
        ("outcome",),
        "Rows of the application's writes repeated on the other collection of a swap (written), or not "
        "(no_text, no_key, failed, dropped)",
    ),
    (
        "embguard_proxy_routed_searches_total",
        "counter",
        ("outcome",),
        "Searches on an alias during a switch: sent to the collection of the model that made their vector (routed) "
        "or as sent (not_from_endpoint, lookup_failed, unroutable)",
    ),
    ("embguard_proxy_tap_queue_calls", "gauge", (), "Forwarded calls waiting to be read by the tap"),
    ("embguard_proxy_dual_write_queue_writes", "gauge", (), "Application writes waiting to be repeated"),
    (
        "embguard_proxy_upstream_up",
        "gauge",
        (),
        "1 when the last call the proxy forwarded reached Milvus, 0 after UNAVAILABLE (and before any call)",
    ),
)


class ProxyMetrics(ProxyCounters):
    def __init__(self, registry: CollectorRegistry):
        made: dict[str, Any] = {}
        for name, kind, labels, help_text in CATALOGUE:
            if kind == "counter":
                made[name] = Counter(name.removesuffix("_total"), help_text, labels, registry=registry)
            elif kind == "histogram":
                made[name] = Histogram(name, help_text, labels, buckets=_BUCKETS, registry=registry)
            else:
                made[name] = Gauge(name, help_text, labels, registry=registry)
        self.calls = made["embguard_proxy_calls_total"]
        self.call_seconds = made["embguard_proxy_upstream_seconds"]
        self.tapped_queries = made["embguard_proxy_tapped_queries_total"]
        self.not_tapped = made["embguard_proxy_tap_dropped_total"]
        self.document_rows = made["embguard_proxy_document_rows_total"]
        self.queue_depth = made["embguard_proxy_tap_queue_calls"]
        self.upstream_up = made["embguard_proxy_upstream_up"]
        self.dual_write_rows = made["embguard_proxy_dual_write_rows_total"]
        self.dual_write_queue = made["embguard_proxy_dual_write_queue_writes"]
        for outcome in DUAL_WRITE_OUTCOMES:
            self.dual_write_rows.labels(outcome)
        self.routed_searches = made["embguard_proxy_routed_searches_total"]
        for outcome in ROUTE_OUTCOMES:
            self.routed_searches.labels(outcome)
        for reason in DROP_REASONS:
            self.not_tapped.labels(reason)

    def call_done(self, method: str, code: str, seconds: float) -> None:
        self.calls.labels(method, code).inc()
        self.call_seconds.labels(method).observe(seconds)

    def tapped(self, collection: str, n: int) -> None:
        self.tapped_queries.labels(collection).inc(n)

    def dropped(self, reason: str, n: int) -> None:
        self.not_tapped.labels(reason if reason in DROP_REASONS else "decode_error").inc(n)

    def documents(self, collection: str, op: str, n: int) -> None:
        self.document_rows.labels(collection, op).inc(n)

    def routed(self, outcome: str) -> None:
        self.routed_searches.labels(outcome if outcome in ROUTE_OUTCOMES else "unroutable").inc()

    def dual_written(self, outcome: str, n: int) -> None:
        self.dual_write_rows.labels(outcome if outcome in DUAL_WRITE_OUTCOMES else "failed").inc(n)
