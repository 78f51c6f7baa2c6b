"""Reading a relayed gRPC connection: the HTTP/2 frames of both directions, on copies of bytes already passed on.

:class:`Observer` keeps each direction's HPACK header state (:mod:`~embguard.proxy.headers`) and learns each
call's method, duration and ``grpc-status`` from its header blocks; the request and response messages of a call
the tap wants are kept (DATA frames), up to ``MAX_TAPPED_BYTES``. Everything it reports goes to an
:class:`Outcomes` (the forwarder).
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import grpc

from embguard.milvus.wire import METHODS, SERVICE_NAME
from embguard.proxy.headers import HeaderReader

log = logging.getLogger("embguard.proxy")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _CONTINUATION = 0x0, 0x1, 0x3, 0x9
_END_HEADERS, _PADDED, _PRIORITY = 0x4, 0x8, 0x20
_METHOD_PREFIX = f"/{SERVICE_NAME}/"
_CODES = {c.value[0]: c.name for c in grpc.StatusCode}
# A tapped call's request or response larger than this is not buffered (a bulk insert); it is counted.
MAX_TAPPED_BYTES = 64 << 20


def message(chunks: list[bytes]) -> bytes:
    """The one gRPC message of a unary call's body (a 5-byte prefix: compressed flag, big-endian length)."""
    body = b"".join(chunks)
    if len(body) < 5 or body[0] != 0:
        raise ValueError("not one uncompressed gRPC message")
    return body[5 : 5 + int.from_bytes(body[1:5], "big")]


class Call:
    __slots__ = ("method", "started", "metadata", "wanted", "request", "response", "size")

    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...], wanted: bool):
        self.method = method
        self.started = time.perf_counter()
        self.metadata = metadata
        self.wanted = wanted
        self.request: list[bytes] = []
        self.response: list[bytes] = []
        self.size = 0


class Outcomes(Protocol):
    """What the observer reports; the forwarder implements it."""

    def wants(self, method: str) -> bool: ...
    def done(self, call: Call, code: str, tap: bool) -> None: ...
    def on_unreadable(self) -> None: ...
    def on_too_large(self) -> None: ...


class Observer:
    """The frames of one relayed connection, both directions: each call's method, outcome and (when wanted) its
    request and response messages. Every method is called after the bytes it reads were written on."""

    def __init__(self, outcomes: Outcomes):
        self.f = outcomes
        self.calls: dict[int, Call] = {}
        self.listings: set[int] = set()  # streams of ShowCollections calls in flight (embguard.proxy.listing)
        self.broken = False
        # Per direction: unread bytes, the HPACK state, and a header block being continued (stream, flags, parts).
        self.buf = (bytearray(), bytearray())
        self.headers = (HeaderReader(), HeaderReader())  # the peers negotiate the table size; it follows theirs
        self.block: list[tuple[int, int, list[bytes]] | None] = [None, None]
        self.preface = True

    def feed(self, side: int, data: bytes) -> None:
        """``side`` 0: from the application; 1: from Milvus."""
        if self.broken:
            return
        try:
            self._feed(side, data)
        except Exception as exc:  # an unreadable frame ends observing, never relaying
            self.broken = True
            self.calls.clear()
            self.listings.clear()
            self.f.on_unreadable()
            log.debug("proxy: stopped observing a connection: %r", exc)

    def _feed(self, side: int, data: bytes) -> None:
        buf = self.buf[side]
        buf += data
        pos, n = 0, len(buf)
        if side == 0 and self.preface:
            if n < len(PREFACE):
                return
            if buf[: len(PREFACE)] != PREFACE:
                raise ValueError("not HTTP/2 (no connection preface)")
            self.preface = False
            pos = len(PREFACE)
        while n - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            end = pos + 9 + length
            if end > n:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            stream = int.from_bytes(buf[pos + 5 : pos + 9], "big") & 0x7FFFFFFF
            if kind == _DATA:
                call = self.calls.get(stream)
                if call is not None and call.wanted:
                    start, stop = pos + 9, end
                    if flags & _PADDED:
                        stop -= buf[start]
                        start += 1
                    self._body(call, side, bytes(buf[start:stop]))
            elif kind == _HEADERS:
                start, stop = pos + 9, end
                if flags & _PADDED:
                    stop -= buf[start]
                    start += 1
                if flags & _PRIORITY:
                    start += 5
                if flags & _END_HEADERS:
                    self._headers(side, stream, flags, bytes(buf[start:stop]))
                else:
                    self.block[side] = (stream, flags, [bytes(buf[start:stop])])
            elif kind == _CONTINUATION:
                pending = self.block[side]
                if pending is None or pending[0] != stream:
                    raise ValueError("CONTINUATION without HEADERS")
                pending[2].append(bytes(buf[pos + 9 : end]))
                if flags & _END_HEADERS:
                    self.block[side] = None
                    self._headers(side, stream, pending[1], b"".join(pending[2]))
            elif kind == _RST_STREAM:
                self.listings.discard(stream)
                call = self.calls.pop(stream, None)
                if call is not None:
                    # gRPC clients retry a stream the server refused (REFUSED_STREAM, 7) without telling the
                    # application; the log says who reset which call, so a count here can be traced.
                    error = int.from_bytes(buf[pos + 9 : pos + 13], "big") if length >= 4 else -1
                    log.info(
                        "proxy: %s reset a %s call (HTTP/2 error %d)",
                        "Milvus" if side else "the application",
                        call.method,
                        error,
                    )
                    self.f.done(call, "CANCELLED", False)
            pos = end
        del buf[:pos]

    def _body(self, call: Call, side: int, payload: bytes) -> None:
        call.size += len(payload)
        if call.size > MAX_TAPPED_BYTES:
            call.wanted = False
            call.request.clear()
            call.response.clear()
            self.f.on_too_large()
            return
        (call.response if side else call.request).append(payload)

    def _headers(self, side: int, stream: int, flags: int, block: bytes) -> None:
        reader = self.headers[side]
        if side == 0:
            headers = None
            path = reader.method_path(block)
            if path is None:
                headers = reader.decode(block)
                path = next((v for k, v in headers if k == b":path"), b"").decode("latin-1")
            method = path[len(_METHOD_PREFIX) :] if path.startswith(_METHOD_PREFIX) else ""
            method = method if method in METHODS else "other"  # a metric label: the protocol's names only
            wanted = self.f.wants(method)
            metadata: tuple[tuple[str, str], ...] = ()
            if wanted:  # the metadata goes with a tapped call only
                headers = reader.decode(block) if headers is None else headers
                metadata = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers if k[:1] != b":")
            self.calls[stream] = Call(method, metadata, wanted)
            if method == "ShowCollections":
                self.listings.add(stream)
            return
        status = next((v for k, v in reader.decode(block) if k == b"grpc-status"), None)
        if status is None:
            return  # the response's leading headers; the status comes in the trailers
        self.listings.discard(stream)
        call = self.calls.pop(stream, None)
        if call is not None:
            code = _CODES.get(int(status), "UNKNOWN")
            self.f.done(call, code, code == "OK" and call.wanted)
