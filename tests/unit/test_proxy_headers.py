"""The proxy's HPACK fast paths read every header block exactly as ``hpack``'s full decoder does, over random
streams of blocks shaped like gRPC's: indexed fields, literals with and without indexing, never-indexed values,
Huffman and raw strings, table size updates, and table evictions."""

from __future__ import annotations

import random

import pytest
from hpack import Decoder, Encoder, NeverIndexedHeaderTuple

from embguard.proxy.headers import HeaderReader

PATHS = ["/milvus.proto.milvus.MilvusService/Search", "/milvus.proto.milvus.MilvusService/Insert", "/x"]
NAMES = ["dbname", "client-request-id", "grpc-timeout", "grpc-status", "grpc-message", "user-agent", "te", "k" * 60]


def without_indexing(name: str, value: str) -> bytes:
    """A literal field without indexing, new name, raw strings (the form gRPC uses for per-call values)."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return bytes([0x00, len(n)]) + n + bytes([len(v)]) + v


@pytest.mark.parametrize("seed", range(12))
def test_fast_reads_equal_the_full_decoder_on_random_grpc_shaped_streams(seed: int) -> None:
    rng = random.Random(seed)
    encoder, reference, reader = Encoder(), Decoder(), HeaderReader()
    reference.max_allowed_table_size = 1 << 20
    fast = cached_calls = 0
    for _ in range(400):
        if rng.random() < 0.03:
            encoder.header_table_size = rng.choice([64, 256, 4096])  # the next block starts with a size update
        fields: list[tuple[str, str]] = [(":method", "POST")]
        if rng.random() < 0.8:
            fields.append((":path", rng.choice(PATHS)))
        for name in rng.sample(NAMES, rng.randint(0, 5)):
            fields.append((name, rng.choice(["default", "0", "", "identity"])))
        stable = [f for f in fields if f[0] == ":path" or rng.random() < 0.8]
        # Per-call values: sent as literals without indexing (as gRPC does), or now and then indexed.
        volatile = [(k, str(rng.randint(0, 10**9))) for k, _ in fields if (k, _) not in stable]
        if rng.random() < 0.1:
            stable.append(("client-request-id", str(rng.randint(0, 10**9))))
        block = encoder.encode(
            [NeverIndexedHeaderTuple(k, v) if rng.random() < 0.2 else (k, v) for k, v in stable],
            huffman=rng.random() < 0.5,
        )
        block += b"".join(without_indexing(k, v) for k, v in volatile)
        expected = [(bytes(k), bytes(v)) for k, v in reference.decode(block, raw=True)]

        path = reader.method_path(block)
        if path is not None:
            fast += 1
            assert path.encode() == next(v for k, v in expected if k == b":path")
            if rng.random() < 0.5:
                continue  # a call nobody taps: the block is never decoded, and the state must still agree
        before = len(reader._cache)
        assert reader.decode(block) == expected
        cached_calls += len(reader._cache) > before
    assert fast > 10 and cached_calls > 0  # both fast paths were taken, so the equalities above tested them


def test_a_malformed_block_is_left_to_the_full_decoder() -> None:
    reader = HeaderReader()
    assert reader.method_path(b"\xff\xff\xff") is None  # an integer that never ends
    assert reader.method_path(bytes([0x00, 0x05]) + b"ab") is None  # a string past its block
    assert reader.method_path(b"\xfe") is None  # an index past the table


def test_a_cache_full_of_one_off_blocks_starts_over_and_keeps_what_repeats() -> None:
    encoder, reader = Encoder(), HeaderReader()
    status = [("grpc-status", "0")]
    reader.decode(encoder.encode(status))  # indexes grpc-status: the table moves once, then stays
    for i in range(300):  # trailers with distinct messages, none indexed (gRPC's form for grpc-message)
        reader.decode(encoder.encode(status) + without_indexing("grpc-message", f"error {i}"))
    ok = encoder.encode(status)
    assert reader.decode(ok) == [(b"grpc-status", b"0")]
    assert ok in reader._cache  # kept although 300 one-off blocks came first
