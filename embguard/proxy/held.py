"""A stream's DATA frames held back by the relay until its one gRPC message is whole, so that bytes inside it can
be patched in place (:mod:`~embguard.proxy.router`, :mod:`~embguard.proxy.listing`).

Patching never changes a length: frames go on exactly as they came, with the same sizes, so HTTP/2 flow control
and the gRPC length prefix stay what the sender made them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

DATA, HEADERS, RST_STREAM, CONTINUATION = 0x0, 0x1, 0x3, 0x9
END_STREAM, PADDED = 0x1, 0x8


def finish_frame(tail: bytes | bytearray, data: bytes, relay: Callable[[bytes], None]) -> bytes | None:
    """Switching a direction from plain relaying to frame by frame: ``tail`` is the start of a frame the observer
    read and the relay already wrote, so the rest of that frame in ``data`` is relayed plainly too. Returns the
    bytes after it, or None when all of ``data`` went (it belongs to that frame, or its length is not known yet)."""
    if not tail:
        return data
    head = bytes(tail[:9]) + data[: max(0, 9 - len(tail))]
    rest = 9 + int.from_bytes(head[:3], "big") - len(tail) if len(head) >= 9 else len(data) + 1
    if rest > len(data):
        relay(data)
        return None
    relay(data[:rest])
    return data[rest:]


def whole_frames(buf: bytearray) -> list[bytearray]:
    """Take the whole frames off the front of ``buf`` (a partial one stays for the next chunk)."""
    frames: list[bytearray] = []
    pos, n = 0, len(buf)
    while n - pos >= 9:
        end = pos + 9 + int.from_bytes(buf[pos : pos + 3], "big")
        if end > n:
            break
        frames.append(bytearray(buf[pos:end]))
        pos = end
    del buf[:pos]
    return frames


def frame_header(frame: bytes | bytearray) -> tuple[int, int, int]:
    """``(type, flags, stream id)`` of a whole frame."""
    return frame[3], frame[4], int.from_bytes(frame[5:9], "big") & 0x7FFFFFFF


@dataclass
class HeldStream:
    frames: list[bytearray] = field(default_factory=list)
    payload: bytearray = field(default_factory=bytearray)
    spans: list[tuple[int, int, int]] = field(default_factory=list)  # (frame index, start in frame, payload offset)
    end_stream: bool = False
    deciding: bool = False

    def add(self, frame: bytearray) -> None:
        """Hold one DATA frame (its payload, without padding, joins the message)."""
        self.frames.append(frame)
        start, stop = 9, len(frame)
        if frame[4] & PADDED:
            stop -= frame[9]
            start = 10
        self.spans.append((len(self.frames) - 1, start, len(self.payload)))
        self.payload += frame[start:stop]
        self.end_stream = self.end_stream or bool(frame[4] & END_STREAM)

    @property
    def size(self) -> int:
        """Bytes held, as flow control counts them (whole DATA payloads, padding included)."""
        return sum(len(f) - 9 for f in self.frames)

    def complete(self) -> bool:
        p = self.payload
        return self.end_stream or (len(p) >= 5 and len(p) >= 5 + int.from_bytes(p[1:5], "big"))

    def message(self) -> memoryview | None:
        """The one uncompressed gRPC message, or None (compressed, or cut short by END_STREAM)."""
        p = self.payload
        if len(p) < 5 or p[0] != 0 or len(p) < 5 + int.from_bytes(p[1:5], "big"):
            return None
        return memoryview(p)[5 : 5 + int.from_bytes(p[1:5], "big")]

    def patch(self, offset: int, value: bytes) -> None:
        """Overwrite message bytes ``[offset, offset + len(value))`` (offsets in the message, after its 5-byte
        prefix) in the frames that carry them."""
        offset += 5
        for index, start, base in self.spans:
            frame = self.frames[index]
            size = len(frame) - start - (frame[9] if frame[4] & PADDED else 0)
            lo, hi = max(offset, base), min(offset + len(value), base + size)
            if lo < hi:
                frame[start + lo - base : start + hi - base] = value[lo - offset : hi - offset]

    def bytes(self) -> bytes:
        return b"".join(self.frames)
