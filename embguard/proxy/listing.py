"""Watched aliases in ``ShowCollections`` answers, so a store that lists collections before opening one can open an
alias.

LlamaIndex's ``MilvusVectorStore`` checks ``list_collections()`` for its collection name and, not finding it,
creates a collection of that name, which fails on an alias (Milvus lists collections, never aliases). Every
managed collection is an alias (approve switches it), so the proxy adds each watched alias to a
``ShowCollections`` answer that lists the collection the alias serves.

The answer keeps its exact length (:func:`embguard.milvus.wire.add_aliases`: the aliases take the room of the
hybrid-clock ``created_timestamps`` column, which no SDK reads), so frames, the gRPC prefix and HTTP/2 flow control
stay as Milvus made them. An answer with no room, or over 60 KB, goes as sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from embguard.milvus.wire import add_aliases
from embguard.proxy.frames import Observer
from embguard.proxy.held import DATA, HeldStream, finish_frame, frame_header, whole_frames

log = logging.getLogger("embguard.proxy")

# Held answers are not yet delivered, so the application cannot yet credit them back: keep them well inside its
# flow-control windows (HTTP/2's smallest initial window is 65,535 bytes).
_MAX_HELD_STREAM = 60_000
_MAX_HELD_CONNECTION = 32_768


class ListingRewriter:
    """One connection's answers from Milvus, frame by frame while a ShowCollections call is in flight."""

    def __init__(self, observer: Observer, write: Callable[[bytes], None], served: Callable[[], dict[str, str]]):
        self.observer = observer
        self.write = write
        self.served = served
        self.framing = False
        self.buf = bytearray()
        self.held: dict[int, HeldStream] = {}

    def wants(self) -> bool:
        return self.framing or (bool(self.observer.listings) and not self.observer.broken and bool(self.served()))

    def feed(self, data: bytes, relay: Callable[[bytes], None]) -> None:
        if not self.framing:
            rest = finish_frame(self.observer.buf[1], data, relay)
            if rest is None:
                return
            data, self.framing = rest, True
        self.buf += data
        out = bytearray()
        for frame in whole_frames(self.buf):
            kind, _, stream = frame_header(frame)
            listing = stream in self.observer.listings
            self.observer.feed(1, bytes(frame))
            held = self.held.get(stream)
            if kind == DATA and (held is not None or listing):
                held = self.held.setdefault(stream, HeldStream())
                held.add(frame)
                if held.complete() or held.size > _MAX_HELD_STREAM or self._total() > _MAX_HELD_CONNECTION:
                    out += self._answer(self.held.pop(stream))
            elif held is not None:  # trailers or a reset before a whole message: what is held goes first, in order
                out += self.held.pop(stream).bytes()
                out += frame
            else:
                out += frame
        for stream in [s for s in self.held if s not in self.observer.calls]:  # the application gave up on it
            out += self.held.pop(stream).bytes()  # still delivered: flow control counts it
        if out:
            self.write(bytes(out))
        if not self.buf and not self.held:
            self.framing = False

    def _total(self) -> int:
        return sum(h.size for h in self.held.values())

    def _answer(self, held: HeldStream) -> bytes:
        message = held.message()
        if message is None or held.size > _MAX_HELD_STREAM:
            return held.bytes()
        try:
            listed = add_aliases(bytes(message), self.served())
        except Exception as exc:  # an answer it cannot read goes as sent
            log.debug("proxy: a ShowCollections answer could not be read: %r", exc)
            return held.bytes()
        if listed is not None and len(listed) == len(message):
            held.patch(0, listed)
        return held.bytes()
