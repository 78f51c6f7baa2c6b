"""What the relay needs from outside itself: the watched aliases and any switch's routing table (polled from
Milvus), and the endpoint's answer to "which model made this vector" (:mod:`embguard.proxy.router`)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import orjson

from embguard.config.settings import Settings
from embguard.errors import MilvusError
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import read_routes

log = logging.getLogger("embguard.proxy")

POLL_S = 0.25  # while routing: a switch waits 1 s (swap.routing.ROUTE_LEAD_S) for every proxy to see it
LISTING_POLL_S = 2.0  # without an endpoint to route by, only ShowCollections answers need the aliases


class Routes:
    """What the relay needs to know about the watched aliases, polled from Milvus on a thread: the collection each
    alias serves (for ``ShowCollections`` answers, :mod:`~embguard.proxy.listing`) and, for an alias in a switch's
    window, each model's routing alias (:mod:`~embguard.proxy.router`)."""

    def __init__(self, settings: Settings, connect: Callable[[], Milvus], poll_s: float = POLL_S):
        self._names = [c.name for c in settings.collections]
        self.db = settings.milvus.db_name or "default"  # the database the watched aliases live in
        self._connect = connect
        self._milvus: Milvus | None = None
        self.table: dict[str, tuple[float, dict[str, str]]] = {}
        self._served: dict[str, str] = {}
        self._until = 0.0
        self._stop = threading.Event()
        self._poll_s = poll_s
        self._thread = threading.Thread(target=self._run, name="embguard-proxy-routes", daemon=True)
        self._thread.start()

    def active(self) -> bool:
        return time.time() < self._until

    def aliases(self, name: str) -> dict[str, str] | None:
        entry = self.table.get(name)
        return entry[1] if entry is not None and time.time() < entry[0] else None

    def served(self) -> dict[str, str]:
        """``{alias: the collection it serves}`` for the watched names that are aliases."""
        return self._served

    def _run(self) -> None:
        first = True
        while first or not self._stop.wait(self._poll_s):
            first = False
            try:
                self._poll()
            except Exception as exc:  # Milvus away: keep the last tables (routing ones expire by themselves)
                log.debug("proxy: cannot read the watched aliases: %s", exc)
                if self._milvus is not None:
                    self._milvus.close()
                    self._milvus = None

    def _poll(self) -> None:
        milvus = self._milvus = self._milvus or self._connect()
        table: dict[str, tuple[float, dict[str, str]]] = {}
        served: dict[str, str] = {}
        for name in self._names:
            try:
                collection = milvus.resolve(name)
            except MilvusError:  # not created yet
                continue
            if collection != name:
                served[name] = collection
            found = read_routes(milvus.properties(collection))
            if found is not None and found[0] > time.time():
                table[name] = found
        self.table, self._served = table, served
        self._until = max((u for u, _ in table.values()), default=0.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._milvus is not None:
            self._milvus.close()


class Lookup:
    """Asks the endpoint which model made each vector (one loopback HTTP/1.1 request per search)."""

    def __init__(self, url: str, token: str | None):
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"proxy.endpoint_url {url!r} must be http://host:port")
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = (parts.path.rstrip("/") or "") + "/v1/vectors/lookup"
        self._auth = f"Authorization: Bearer {token}\r\n" if token else ""

    async def models(self, prints: list[bytes]) -> list[str | None]:
        body = b"".join(prints)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nConnection: close\r\n{self._auth}"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        reader, writer = await asyncio.open_connection(self.host, self.port)
        try:
            writer.write(head + body)
            raw = await reader.read(-1)
        finally:
            writer.close()
        status, _, rest = raw.partition(b"\r\n")
        if b" 200 " not in status + b" ":
            raise ValueError(f"the endpoint answered {status[:60]!r}")
        answer = orjson.loads(rest.partition(b"\r\n\r\n")[2])
        if not isinstance(answer, list) or len(answer) != len(prints):
            raise ValueError("the endpoint's answer does not match the question")
        return [a if isinstance(a, str) else None for a in answer]


def lookup_for(settings: Settings) -> Lookup | None:
    """The endpoint client the proxy routes with, or None when ``proxy.endpoint_url`` is unset."""
    url = settings.proxy.endpoint_url
    if not url:
        return None
    token_env = settings.endpoint.token_env
    return Lookup(url, os.environ.get(token_env) if token_env else None)
