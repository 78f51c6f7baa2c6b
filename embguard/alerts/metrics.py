"""The notifier's own series, on the registry it is given (the daemon passes its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class AlertMetrics:
    """The notifier's own series (registered only when it is given a registry)."""

    def __init__(self, registry: CollectorRegistry):
        self.sent = Counter(
            "embguard_alerts_sent_total",
            "Alert deliveries by target, action and outcome",
            ("target", "action", "outcome"),
            registry=registry,
        )
        self.active = Gauge("embguard_alerts_active", "Alert keys active after the last check", registry=registry)
