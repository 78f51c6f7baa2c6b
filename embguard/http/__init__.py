"""The HTTP endpoints of embguard's long-running processes (the daemon and the proxy): ``/metrics``,
``/healthz`` and ``/readyz``."""
