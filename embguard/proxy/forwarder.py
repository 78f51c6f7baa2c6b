"""The forwarding half of ``embguard proxy``: each application connection relayed byte for byte to Milvus.

The proxy does not terminate gRPC. Each TCP connection an application opens is paired with one connection to
Milvus (TLS where ``milvus.uri`` says ``https``), and bytes are copied both ways as they arrive. So every
``MilvusService`` call, streaming ones included, reaches Milvus exactly as the SDK sent it: credentials, database
header, the caller's deadline (``grpc-timeout``), compression, message sizes; and the application gets Milvus'
status codes, messages and trailers unchanged. A gRPC-terminating forwarder (``grpc.aio`` with a generic
handler) was measured first: it added 1.2-1.3 ms per call and lost 25% of the throughput at 8 clients on two
cores (docs/proxy.md, "What it costs", has both).

Observing is done on copies, after the bytes are written on: :class:`~embguard.proxy.frames.Observer` reads
the HTTP/2 frames of each direction to learn each call's method, duration and ``grpc-status`` (``on_done``, the
metrics), and keeps the messages of the calls the tap wants (``wants``: a search drawn at the sampling rate, a
write) for ``on_call``. A frame it cannot read stops observing that connection (counted through
``on_unreadable``); the relay goes on.

Two exceptions to byte for byte, both with ``routes`` (the watched aliases): during a switch's routing window (with
``lookup``), a Search on the switching alias is held until its message is whole and its collection renamed in place
to the routing alias of the model that made its vector (:mod:`embguard.proxy.router`); and a ShowCollections
answer lists the watched aliases beside the collections they serve (:mod:`embguard.proxy.listing`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

from embguard.errors import ConfigError
from embguard.proxy.frames import Call, Observer, message
from embguard.proxy.listing import ListingRewriter
from embguard.proxy.router import ConnectionRouter
from embguard.proxy.routes import Lookup, Routes

log = logging.getLogger("embguard.proxy")

OnCall = Callable[[str, bytes, bytes, tuple[tuple[str, str], ...]], None]
OnDone = Callable[[str, str, float], None]
Wants = Callable[[str], bool]

# Socket buffer past which the relay stops reading from the other side until the slow side catches up.
_HIGH_WATER = 4 << 20


def upstream_target(uri: str) -> tuple[str, int, bool]:
    """Host, port and whether to use TLS, for a Milvus URI (``http://``, ``https://``, ``tcp://``)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https", "tcp", "grpc", "grpcs") or not parts.hostname:
        raise ConfigError(f"the proxy cannot forward to Milvus at {uri!r}: give milvus.uri as http(s)://host:port")
    tls = parts.scheme in ("https", "grpcs")
    return parts.hostname, parts.port or (443 if tls else 19530), tls


class _Side(asyncio.Protocol):
    """One end of a relayed pair: what it reads is written to ``peer`` and then shown to the observer."""

    def __init__(self, side: int, observer: Observer, forwarder: Forwarder):
        self.side = side
        self.observer = observer
        self.forwarder = forwarder
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        self.closed = False
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.early.append(data)  # before the pair is made (an event loop may deliver despite pause_reading)
            return
        peer.transport.write(data)
        self.observer.feed(self.side, data)

    def pause_writing(self) -> None:  # our socket is backed up: stop reading what would be written to it
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.forwarder.connections.discard(self)
        if self.peer is not None and self.peer.transport is not None and not self.peer.closed:
            self.peer.transport.close()  # after what is buffered for it is written


class _Milvus(_Side):
    """Milvus' end: while a ShowCollections call is in flight, its answers go through the listing rewriter."""

    listing: ListingRewriter | None = None

    def data_received(self, data: bytes) -> None:
        listing = self.listing
        if listing is not None and self.peer is not None and listing.wants():
            listing.feed(data, super().data_received)
        else:
            super().data_received(data)


class _Application(_Side):
    """The application's end: pairs itself with a new connection to Milvus before reading anything. While a
    switch's routing window is open its requests go frame by frame through a router (:mod:`~embguard.proxy.router`)."""

    router: ConnectionRouter | None = None
    listing: ListingRewriter | None = None

    def data_received(self, data: bytes) -> None:
        router = self.router
        if router is not None and self.peer is not None and router.wants():
            router.feed(data, super().data_received)
        else:
            super().data_received(data)

    def _to_milvus(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.closed:
            peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.router is not None:
            self.router.close()
        super().connection_lost(exc)

    def _to_application(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        f = self.forwarder
        if f.routes is not None:
            self.router = ConnectionRouter(self.observer, self._to_milvus, f.routes, f.lookup, f.on_routed)
            if f.list_aliases:
                self.listing = ListingRewriter(self.observer, self._to_application, f.routes.served)
        assert self.transport is not None
        self.transport.pause_reading()
        self.forwarder.connections.add(self)
        self.forwarder.connecting.add(asyncio.get_running_loop().create_task(self._pair()))

    async def _pair(self) -> None:
        f = self.forwarder
        loop = asyncio.get_running_loop()
        try:
            _, milvus = await loop.create_connection(
                lambda: _Milvus(1, self.observer, f),
                f.host_upstream,
                f.port_upstream,
                ssl=f.ssl_context,
                server_hostname=f.host_upstream if f.ssl_context else None,
            )
        except (OSError, ssl.SSLError) as exc:
            # Milvus is down: the application's connection closes, and its SDK reports UNAVAILABLE as it would
            # for Milvus' own port. A certificate Milvus' CA does not vouch for is a configuration error: said.
            f.last_code = "UNAVAILABLE"
            if isinstance(exc, ssl.SSLError):
                log.warning(
                    "proxy: TLS to Milvus at %s failed: %s; set proxy.upstream_ca_file to the CA of its certificate",
                    f.upstream,
                    exc,
                )
            else:
                log.debug("proxy: cannot reach Milvus at %s: %s", f.upstream, exc)
            if self.transport is not None:
                self.transport.close()
            return
        finally:
            f.connecting.discard(asyncio.current_task())
        if self.closed:
            if milvus.transport is not None:
                milvus.transport.close()
            return
        milvus.peer, self.peer = self, milvus
        milvus.listing = self.listing
        f.connections.add(milvus)
        for side in (self, milvus):  # what either end sent before the pair was made (Milvus' SETTINGS, say)
            early, side.early = side.early, []
            for data in early:
                side.data_received(data)
        assert self.transport is not None
        self.transport.resume_reading()


class Forwarder:
    """Listens on ``host:port`` and relays each connection to ``upstream`` (a Milvus URI).

    Callbacks (each must return at once and never raise; they run on the relay's event loop): ``wants(method)``
    whether the tap wants a call's messages (asked once per call, when its headers arrive); ``on_call(method,
    request, response, metadata)`` a wanted call that succeeded; ``on_done(method, code, seconds)`` every call's
    outcome. Create and run it inside the event loop that serves it."""

    def __init__(
        self,
        upstream: str,
        host: str,
        port: int,
        on_call: OnCall | None = None,
        on_done: OnDone | None = None,
        root_certificates: bytes | None = None,
        wants: Wants | None = None,
        on_dropped: Callable[[str], None] | None = None,
        routes: Routes | None = None,
        lookup: Lookup | None = None,
        on_routed: Callable[[str], None] = lambda outcome: None,
        list_aliases: bool = True,
    ):
        self.upstream = upstream
        self.host_upstream, self.port_upstream, tls = upstream_target(upstream)
        self.ssl_context: ssl.SSLContext | None = None
        if tls:
            self.ssl_context = ssl.create_default_context(
                cadata=root_certificates.decode() if root_certificates else None
            )
            self.ssl_context.set_alpn_protocols(["h2"])
        self.host, self.port = host, port
        self._on_call, self._on_done = on_call, on_done
        self.wants: Wants = wants or (lambda method: on_call is not None)
        self._on_dropped = on_dropped
        self.routes, self.lookup, self.on_routed = routes, lookup, on_routed
        self.list_aliases = list_aliases
        self.server: asyncio.Server | None = None
        self.connections: set[_Side] = set()
        self.connecting: set[asyncio.Task[None]] = set()
        self.last_code = ""  # the gRPC status of the last forwarded call ("" before the first)

    def done(self, call: Call, code: str, tap: bool) -> None:
        self.last_code = code
        if self._on_done is not None:
            self._on_done(call.method, code, time.perf_counter() - call.started)
        if tap and self._on_call is not None:
            try:
                request, response = message(call.request), message(call.response)
            except ValueError:
                self.on_unreadable()
                return
            self._on_call(call.method, request, response, call.metadata)

    def on_unreadable(self) -> None:
        if self._on_dropped is not None:
            self._on_dropped("decode_error")

    def on_too_large(self) -> None:
        if self._on_dropped is not None:
            self._on_dropped("too_large")

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def accept() -> _Application:
            return _Application(0, Observer(self), self)

        try:
            self.server = await loop.create_server(accept, self.host, self.port, reuse_address=True)
        except OSError as exc:
            raise ConfigError(
                f"the proxy cannot listen on {self.host}:{self.port}: {exc}; choose a free proxy.port"
            ) from None
        self.port = self.server.sockets[0].getsockname()[1]

    def _calls_in_flight(self) -> int:
        return sum(len(s.observer.calls) for s in self.connections if s.side == 0)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop accepting, give calls in flight up to ``grace_s`` to finish, then close every connection."""
        if self.server is not None:
            self.server.close()
        deadline = time.monotonic() + grace_s
        while self._calls_in_flight() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in list(self.connecting):
            task.cancel()
        for side in list(self.connections):
            if side.transport is not None:
                side.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
