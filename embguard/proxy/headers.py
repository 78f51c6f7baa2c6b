"""HPACK header blocks of one direction of a relayed connection, read as cheaply as their form allows.

Decoding every block with ``hpack`` costs about 70 µs of pure Python per call, most of the relay's CPU on a
small search. Two facts of gRPC traffic make most of it unnecessary:

- Once a connection is warm, a block rarely changes the HPACK dynamic table: the SDKs' fixed headers are
  indexed, and the per-call values (``client-request-id``, ``grpc-timeout``, ``grpc-message``) are literals
  *without* indexing. A block that leaves the table unchanged decodes the same way for as long as the table is
  unchanged, so its result can be kept (the response headers and trailers repeat exactly).
- Of a request the relay needs only ``:path`` unless the call is tapped, and ``:path`` is an indexed field.

:meth:`HeaderReader.scan` walks a block's field representations (integers and string lengths, never Huffman
data) to tell whether it changes the table and to find an indexed ``:path``. Anything else (a block that
indexes, resizes or is malformed, a ``:path`` sent as a literal) goes to ``hpack``'s full decoder, which keeps
the table; the fast paths never decode a block the full decoder would read differently (tested against it).
"""

from __future__ import annotations

from hpack import Decoder

Headers = list[tuple[bytes, bytes]]
_CACHED_BLOCKS = 256  # distinct unchanged-table blocks kept; gRPC traffic has a handful per connection


def _integer(block: bytes, pos: int, bits: int) -> tuple[int, int]:
    """An HPACK integer with an N-bit prefix starting at ``pos`` (RFC 7541 5.1), and the position after it."""
    mask = (1 << bits) - 1
    value = block[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        byte = block[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
        if shift > 28:
            raise ValueError("HPACK integer too long")


class HeaderReader:
    """One direction's HPACK state (a ``hpack.Decoder``) with the two fast paths."""

    def __init__(self, max_table_size: int = 1 << 20):
        self.decoder = Decoder()
        self.decoder.max_allowed_table_size = max_table_size
        self._cache: dict[bytes, Headers] = {}

    def scan(self, block: bytes) -> tuple[bool, int]:
        """Whether ``block`` leaves the dynamic table unchanged, and the table index of an indexed ``:path``
        field in it (0: none). Raises on a malformed block (the caller then decodes it fully, which reports it)."""
        pos, end, path = 0, len(block), 0
        while pos < end:
            first = block[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(block, pos, 7)
                if not path and index and self.decoder.header_table.get_by_index(index)[0] == b":path":
                    path = index
                continue
            if first & 0xC0 == 0x40 or first & 0xE0 == 0x20:  # literal with indexing, or a table size update
                return False, path
            name_index, pos = _integer(block, pos, 4)  # literal without indexing / never indexed
            for _ in range(1 if name_index else 2):  # the value string, after a literal name when not indexed
                length, pos = _integer(block, pos, 7)
                pos += length
            if pos > end:
                raise ValueError("HPACK string past the end of its block")
        return True, path

    def method_path(self, block: bytes) -> str | None:
        """The ``:path`` of a request block, read without decoding it, when that is safe; else None (then
        :meth:`decode` it). Safe: the block leaves the table unchanged and ``:path`` is an indexed field."""
        try:
            unchanged, index = self.scan(block)
        except Exception:  # malformed, or hpack's InvalidTableIndex: the full decoder reads (or reports) it
            return None
        if not unchanged or not index:
            return None
        return self.decoder.header_table.get_by_index(index)[1].decode("latin-1")

    def decode(self, block: bytes) -> Headers:
        """Every field of ``block``; a block that leaves the table unchanged is decoded once per table state."""
        cached = self._cache.get(block)
        if cached is not None:
            return cached
        try:
            unchanged, _ = self.scan(block)
        except Exception:
            unchanged = False
        headers: Headers = [(bytes(k), bytes(v)) for k, v in self.decoder.decode(block, raw=True)]
        if not unchanged:
            self._cache.clear()  # the table moved: what was kept may now decode differently
            return headers
        if len(self._cache) >= _CACHED_BLOCKS:
            # Full of one-off blocks (distinct error messages, tapped requests): start over, so the blocks that
            # repeat now are kept rather than refused until the table next moves.
            self._cache.clear()
        self._cache[block] = headers
        return headers
