"""The embedding endpoint's metrics, on a registry passed in, served on its own ``/metrics``.

Labels stay low-cardinality: ``route`` is one of ``ROUTES``, ``code`` an HTTP status code, ``signal`` a feedback
signal, ``joined`` whether a feedback found the tapped search it refers to.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ROUTES = ("embeddings", "embed", "models", "feedback", "lookup", "other")
_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)

# (name, type, labels, help): the catalogue the metrics are made from and docs/endpoint.md's table is checked
# against.
CATALOGUE: tuple[tuple[str, str, tuple[str, ...], str], ...] = (
    ("embguard_endpoint_requests_total", "counter", ("route", "code"), "Requests answered, by route and HTTP code"),
    ("embguard_endpoint_request_seconds", "histogram", ("route",), "Time from a request's arrival to its answer"),
    ("embguard_endpoint_texts_total", "counter", (), "Texts embedded"),
    ("embguard_endpoint_batch_texts", "histogram", (), "Texts per encoder pass (micro-batches across requests)"),
    ("embguard_endpoint_queue_texts", "gauge", (), "Texts waiting for the encoder"),
    (
        "embguard_endpoint_encode_seconds_total",
        "counter",
        (),
        "Seconds the encoder spent encoding (its rate is the encoder's busy fraction: near 1, it is the limit)",
    ),
    ("embguard_endpoint_feedback_total", "counter", ("signal", "joined"), "Feedback recorded over HTTP"),
)


class EndpointMetrics:
    def __init__(self, registry: CollectorRegistry):
        kinds = {"counter": Counter, "histogram": Histogram, "gauge": Gauge}
        made = {}
        for name, kind, labels, doc in CATALOGUE:
            extra: dict[str, object] = {}
            if name == "embguard_endpoint_request_seconds":
                extra["buckets"] = _LATENCY
            if name == "embguard_endpoint_batch_texts":
                extra["buckets"] = _BATCH
            made[name] = kinds[kind](
                name.removesuffix("_total") if kind == "counter" else name, doc, labels, registry=registry, **extra
            )
        self.requests: Counter = made["embguard_endpoint_requests_total"]
        self.seconds: Histogram = made["embguard_endpoint_request_seconds"]
        self.texts: Counter = made["embguard_endpoint_texts_total"]
        self.batch_texts: Histogram = made["embguard_endpoint_batch_texts"]
        self.queue_texts: Gauge = made["embguard_endpoint_queue_texts"]
        self.encode_seconds: Counter = made["embguard_endpoint_encode_seconds_total"]
        self.feedback: Counter = made["embguard_endpoint_feedback_total"]
        for route in ROUTES:
            self.seconds.labels(route)

    def answered(self, route: str, code: int, seconds: float) -> None:
        route = route if route in ROUTES else "other"
        self.requests.labels(route, str(code)).inc()
        self.seconds.labels(route).observe(seconds)

    def batch(self, n: int, seconds: float) -> None:
        self.texts.inc(n)
        self.batch_texts.observe(n)
        self.encode_seconds.inc(seconds)
