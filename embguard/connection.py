"""The daemon's one Milvus connection: watched, lost, and re-made.

Milvus going away is expected. :meth:`Connection.watch` (the daemon's ``milvus_watch`` job) pings the live
connection, drops it when it stops answering, and reconnects at most once per watch period; jobs that find
Milvus gone call :meth:`lost`, and skip until it is back. ``embguard_milvus_up`` follows every change.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Gauge

from .config import Settings, redact_uri
from .errors import MilvusUnavailable
from .milvus import Milvus

log = logging.getLogger(__name__)
DOWN_LOG_EVERY_S = 60.0


class Connection:
    def __init__(self, settings: Settings, up: Gauge, watch_s: float):
        self.settings = settings
        self._up = up
        self._watch_s = watch_s
        self._milvus: Milvus | None = None
        self._lock = threading.Lock()
        self._backoff_s = 1.0
        self._next_connect = 0.0
        self._down_logged = 0.0
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
            if time.monotonic() < self._next_connect:
                return
            try:
                self._milvus = Milvus.connect(self.settings)
            except MilvusUnavailable as exc:
                # The watch period is the back-off: one connect attempt per tick costs nothing, and a longer
                # back-off would keep /readyz at 503 long after Milvus is back.
                self._backoff_s = min(self._backoff_s * 2, self._watch_s)
                self._next_connect = time.monotonic() + self._backoff_s
                now = time.monotonic()
                if now - self._down_logged >= DOWN_LOG_EVERY_S:
                    self._down_logged = now
                    log.warning("%s (retrying every %.0f s; logged once a minute)", redact_uri(str(exc)), self._watch_s)
                return
            self._backoff_s = 1.0
            self._down_logged = 0.0
            self._up.set(1)
            log.info("connected to Milvus at %s (%s)", self.settings.milvus_uri, self._milvus.server_version)

    def close(self) -> None:
        with self._lock:
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None

    def _drop(self) -> None:
        assert self._milvus is not None
        self._milvus.close()
        self._milvus = None
        self._next_connect = time.monotonic()
