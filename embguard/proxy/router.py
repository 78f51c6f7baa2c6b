"""Exact routing across a switch: each Search goes to the collection of the model that made its vector.

An application that embeds through ``embguard endpoint`` and then searches through the proxy makes two calls;
approve or rollback may switch its alias between them. While a switch's window is open (``embguard.routes`` on
the alias' collection, :mod:`embguard.swap.routing`), the relay holds each Search's DATA frames until its message
is complete, asks the endpoint which model made its query vectors (``/v1/vectors/lookup``), and renames the
call's collection in place to the routing alias of that model's collection. The routing alias is exactly as long
as the application's alias, so nothing else in the bytes changes: frame lengths, the gRPC prefix and HTTP/2 flow
control stay as the application sent them.

A search is never failed or lost for routing: a vector the endpoint did not make (the application's own) goes to
the alias as sent; a failed lookup, a compressed or oversized message, or queries from two models go as sent
and are counted. Outside a window the relay copies bytes as before; every other call and frame passes at once.
``embguard_proxy_routed_searches_total{outcome}`` counts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from embguard.milvus.wire import field_span, fingerprint, float_vectors
from embguard.proxy.frames import PREFACE, Observer
from embguard.proxy.held import (
    CONTINUATION,
    DATA,
    END_STREAM,
    HEADERS,
    RST_STREAM,
    HeldStream,
    finish_frame,
    frame_header,
    whole_frames,
)
from embguard.proxy.routes import Lookup, Routes

log = logging.getLogger("embguard.proxy")

ROUTE_OUTCOMES = ("routed", "not_from_endpoint", "lookup_failed", "unroutable")
# What is held is not yet forwarded, so Milvus cannot yet credit it back: held bytes must stay well inside the
# application's flow-control windows (HTTP/2's smallest initial window is 65,535 bytes, per stream and for the
# connection), or the application would stop sending and nothing would complete. A search past either limit
# goes as sent.
_MAX_HELD_STREAM = 60_000
_MAX_HELD_CONNECTION = 32_768
# A lookup is one loopback round trip (about a millisecond); past this, the search goes as sent.
_LOOKUP_TIMEOUT_S = 0.25
_DB_FIELD, _COLLECTION_FIELD, _PLACEHOLDER_FIELD = (
    2,
    3,
    6,
)  # SearchRequest.db_name, .collection_name, .placeholder_group


class ConnectionRouter:
    """One application connection's requests, frame by frame while any switch window is open."""

    def __init__(
        self,
        observer: Observer,
        write: Callable[[bytes], None],
        routes: Routes,
        lookup: Lookup | None,
        count: Callable[[str], None],
    ):
        self.observer = observer
        self.write = write
        self.routes = routes
        self.lookup = lookup
        self.count = count
        self.framing = False
        self.buf = bytearray()
        self.held: dict[int, HeldStream] = {}
        self.passed: set[int] = set()  # streams released before their end: the rest of them passes as sent
        self.tasks: set[asyncio.Task[None]] = set()

    def wants(self) -> bool:
        """Whether the next bytes go through :meth:`feed` (else they are relayed as they are)."""
        return self.framing or (self.lookup is not None and self.routes.active() and not self.observer.broken)

    def feed(self, data: bytes, relay: Callable[[bytes], None]) -> None:
        """``relay`` passes bytes on the plain way (written and observed as one chunk)."""
        if not self.framing:
            if self.observer.preface:  # the connection preface first, read by the observer the plain way
                need = len(PREFACE) - len(self.observer.buf[0])
                relay(data[:need])
                data = data[need:]
                if self.observer.preface or self.observer.broken:  # not HTTP/2 (Milvus' REST API): plain
                    if data:
                        relay(data)
                    return
                if not data:
                    return
            # The observer has already read up to the last whole frame; the rest of a frame it read part of was
            # partly written, so it goes the plain way too.
            rest = finish_frame(self.observer.buf[0], data, relay)
            if rest is None:
                return
            data, self.framing = rest, True
        self.buf += data
        out = bytearray()
        for frame in whole_frames(self.buf):
            kind, flags, stream = frame_header(frame)
            self.observer.feed(0, bytes(frame))
            held = self.held.get(stream) if stream else None
            if stream in self.passed:
                if kind == RST_STREAM or flags & END_STREAM:
                    self.passed.discard(stream)
                out += frame
            elif held is not None and kind == DATA:
                held.add(frame)
                out = self._maybe_decide(stream, held, out)
            elif held is not None:
                # RST_STREAM: what was held goes first, so Milvus counts those bytes against the window it granted
                # (and credits them back) before it forgets the stream. HEADERS: header blocks must reach Milvus
                # in the order they were sent (HPACK). Either way the search goes as sent.
                if kind in (RST_STREAM, HEADERS, CONTINUATION):
                    self.count("unroutable")
                    out = self._flush(out)
                    self._release(stream, ended=kind == RST_STREAM)
                out += frame
            elif kind == DATA and stream and self.lookup is not None and self._is_search(stream):
                held = self.held[stream] = HeldStream()
                held.add(frame)
                out = self._maybe_decide(stream, held, out)
            else:
                out += frame
        self._flush(out)
        if not self.buf and not self.held and not (self.lookup is not None and self.routes.active()):
            self.framing = False
            self.passed.clear()

    def _is_search(self, stream: int) -> bool:
        call = self.observer.calls.get(stream)
        return call is not None and call.method == "Search"

    def _flush(self, out: bytearray) -> bytearray:
        if out:
            self.write(bytes(out))
        return bytearray()

    def _maybe_decide(self, stream: int, held: HeldStream, out: bytearray) -> bytearray:
        """Release or route ``stream`` once its message is whole; frames passed before it are written first."""
        if held.deciding:
            return out
        total = sum(h.size for h in self.held.values())
        if held.size > _MAX_HELD_STREAM or total > _MAX_HELD_CONNECTION:
            self.count("unroutable")
            out = self._flush(out)
            self._release(stream)
        elif held.complete():
            held.deciding = True
            out = self._flush(out)
            try:
                self._decide(stream, held)
            except Exception as exc:  # a message it cannot read goes as sent, never fails the call
                log.debug("proxy: a Search could not be read for routing: %r", exc)
                self.count("unroutable")
                self._release(stream)
        return out

    def _decide(self, stream: int, held: HeldStream) -> None:
        message = held.message()
        if message is None:  # compressed, or cut short
            self.count("unroutable")
            return self._release(stream)
        name_at = field_span(message, _COLLECTION_FIELD)
        name = bytes(message[name_at[0] : name_at[1]]).decode() if name_at else ""
        table = self.routes.aliases(name)
        db_at = field_span(message, _DB_FIELD)
        db = bytes(message[db_at[0] : db_at[1]]).decode() if db_at else ""
        if table is None or name_at is None or (db and db != self.routes.db):
            return self._release(stream)  # not a switching alias: as sent, not counted
        group_at = field_span(message, _PLACEHOLDER_FIELD)
        vectors = float_vectors(bytes(message[group_at[0] : group_at[1]])) if group_at else []
        if not vectors:
            self.count("unroutable")
            return self._release(stream)
        task = asyncio.get_running_loop().create_task(
            self._route(stream, held, name, name_at[0], table, [fingerprint(v) for v in vectors])
        )
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _route(
        self, stream: int, held: HeldStream, name: str, offset: int, table: dict[str, str], prints: list[bytes]
    ) -> None:
        lookup = self.lookup
        assert lookup is not None  # only searches of a router with a lookup are held
        try:
            try:
                made_by = await asyncio.wait_for(lookup.models(prints), _LOOKUP_TIMEOUT_S)
            except Exception as exc:  # the endpoint is away or slow: the search goes as sent
                log.debug("proxy: vector lookup failed: %r", exc)
                self.count("lookup_failed")
                return
            models = set(made_by)
            if models == {None}:
                self.count("not_from_endpoint")
                return
            model = made_by[0]
            target = table.get(model) if model is not None and len(models) == 1 else None
            if target is None or len(target.encode()) != len(name.encode()):
                self.count("unroutable")
                return
            held.patch(offset, target.encode())
            self.count("routed")
        finally:
            self._release(stream)

    def _release(self, stream: int, ended: bool = False) -> None:
        held = self.held.pop(stream, None)
        if held is None:
            return
        self.write(held.bytes())
        if not held.end_stream and not ended:
            self.passed.add(stream)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.held.clear()
