"""The daemon's one Milvus connection: watched, lost, and re-made.

Milvus going away is expected. :meth:`Connection.watch` (the daemon's ``milvus_watch`` job) pings the live
connection, drops it when it stops answering, and reconnects with an exponential back-off with jitter
(:class:`Backoff`: 1 s, 2 s, 4 s... capped at ``RECONNECT_MAX_S``, each wait drawn in its upper half, so a fleet
of sidecars that lost one Milvus does not reconnect in lock-step). While it waits, each watch tick only knocks
on Milvus's port (one TCP connect, no client set-up): once the port accepts again it reconnects at once, so
``/readyz`` is back within about one watch period of Milvus, however long the back-off has grown. Jobs that find
Milvus gone call :meth:`lost`, and skip until it is back. ``embguard_milvus_up`` follows every change.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from prometheus_client import Gauge

from embguard.config.credentials import redact_uri
from embguard.config.settings import Settings
from embguard.errors import MilvusUnavailable
from embguard.milvus.milvus import Milvus

log = logging.getLogger(__name__)
DOWN_LOG_EVERY_S = 60.0
RECONNECT_BASE_S = 1.0
# The longest wait between reconnect attempts: longer would keep /readyz at 503 long after Milvus is back.
RECONNECT_MAX_S = 30.0


class Backoff:
    """Exponential back-off with jitter, capped: the n-th wait (from 0) is drawn uniformly from
    ``[d / 2, d]`` with ``d = min(cap_s, base_s * 2**n)`` ("equal jitter": never less than half the nominal
    wait, never more than the cap). ``rng`` makes the schedule reproducible (tests)."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random | None = None):
        self.base_s = base_s
        self.cap_s = max(cap_s, base_s)
        self._rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        nominal = min(self.cap_s, self.base_s * 2 ** min(self.attempt, 62))
        self.attempt += 1
        return self._rng.uniform(nominal / 2, nominal)

    def reset(self) -> None:
        self.attempt = 0


class Connection:
    def __init__(
        self,
        settings: Settings,
        up: Gauge,
        watch_s: float,
        *,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.settings = settings
        self._up = up
        self._watch_s = watch_s
        self._milvus: Milvus | None = None
        self._lock = threading.Lock()
        self.backoff = backoff or Backoff(min(RECONNECT_BASE_S, watch_s), max(RECONNECT_MAX_S, watch_s))
        self._clock = clock
        self._next_connect = 0.0
        self._down_logged: float | None = None
        self.waits: list[float] = []  # the back-off waits since the connection was last up (tests, logs)
        up.set(0)

    @property
    def is_up(self) -> bool:
        return self._milvus is not None

    @property
    def current(self) -> Milvus | None:
        return self._milvus

    def get(self) -> Milvus:
        m = self._milvus
        if m is None:
            raise MilvusUnavailable(f"Milvus at {self.settings.milvus_uri} is not connected; waiting to reconnect")
        return m

    def lost(self, exc: BaseException, conn: Milvus | None) -> None:
        """A job found Milvus gone on ``conn``, the connection it started with. Only that one is closed: the
        watch may have reconnected meanwhile, and closing its fresh connection would undo every recovery
        (with short intervals the daemon then never came back)."""
        with self._lock:
            if self._milvus is not None and self._milvus is conn:
                log.warning("lost Milvus at %s: %s", self.settings.milvus_uri, exc)
                self._drop()
            self._up.set(0)

    def watch(self) -> None:
        with self._lock:
            if self._milvus is not None:
                if self._milvus.ping():
                    self._up.set(1)
                    return
                log.warning("Milvus at %s stopped answering", self.settings.milvus_uri)
                self._drop()
            self._up.set(0)
            if self._clock() < self._next_connect and not self._port_open():
                return
            try:
                self._milvus = Milvus.connect(self.settings)
            except MilvusUnavailable as exc:
                wait = self.backoff.next()
                self.waits.append(wait)
                now = self._clock()
                self._next_connect = now + wait
                if self._down_logged is None or now - self._down_logged >= DOWN_LOG_EVERY_S:
                    self._down_logged = now
                    log.warning(
                        "%s (retrying with back-off, next in %.1f s, at most every %.0f s; logged once a minute)",
                        redact_uri(str(exc)),
                        wait,
                        self.backoff.cap_s,
                    )
                return
            self.backoff.reset()
            self.waits.clear()
            self._down_logged = None
            self._up.set(1)
            log.info("connected to Milvus at %s (%s)", self.settings.milvus_uri, self._milvus.server_version)

    def _port_open(self) -> bool:
        """Whether Milvus's port accepts a TCP connection now (False when the URI names no host and port)."""
        try:
            parts = urlsplit(self.settings.milvus_uri)
            host, port = parts.hostname, parts.port
        except ValueError:
            return False
        if not host or not port:
            return False
        try:
            with socket.create_connection((host, port), timeout=min(0.5, self._watch_s)):
                return True
        except OSError:
            return False

    def close(self) -> None:
        with self._lock:
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None

    def _drop(self) -> None:
        assert self._milvus is not None
        self._milvus.close()
        self._milvus = None
        self._next_connect = self._clock()
