"""The proxy's routing across a switch, on the real relay: a gRPC client calls through the forwarder to an upstream
that records each Search it gets. While a window is open, a Search whose vector the endpoint made is renamed in
place to the routing alias of that model's collection; everything else arrives exactly as sent."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest
import uvloop
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from embguard.endpoint.ledger import VectorLedger
from embguard.milvus.wire import SERVICE_NAME, field_span, fingerprint
from embguard.proxy.forwarder import Forwarder
from embguard.proxy.routes import Lookup, Routes
from embguard.swap.routing import candidate_names


class Upstream:
    """Records each Search as it arrived, by its ``dsl`` (a tag each test search carries), and answers with an
    empty SearchResults; HasCollection echoes."""

    def __init__(self) -> None:
        self.searches: dict[str, milvus_pb2.SearchRequest] = {}

        def search(request: bytes, context: Any) -> bytes:
            got = milvus_pb2.SearchRequest.FromString(request)
            self.searches[got.dsl] = got
            return milvus_pb2.SearchResults().SerializeToString()

        self.names = ["kb__v0001", "other"]

        def show_collections(request: bytes, context: Any) -> bytes:
            names = self.names
            return milvus_pb2.ShowCollectionsResponse(
                collection_names=names,
                collection_ids=[464_000_000_000_000_000 + i for i in range(len(names))],
                created_timestamps=[464_000_000_000_000_000] * len(names),  # Milvus' hybrid clock: 9-byte varints
                created_utc_timestamps=[1_765_000_000_000] * len(names),
            ).SerializeToString()

        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "Search": grpc.unary_unary_rpc_method_handler(search),
                "ShowCollections": grpc.unary_unary_rpc_method_handler(show_collections),
                "HasCollection": grpc.unary_unary_rpc_method_handler(lambda r, c: b"echo:" + r),
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


class StubRoutes(Routes):
    """A switch window the test opens and closes (the real one is polled from Milvus)."""

    db = "default"

    def __init__(self) -> None:
        self.open: dict[str, dict[str, str]] = {}
        self.listed: dict[str, str] = {}

    def served(self) -> dict[str, str]:
        return self.listed

    def active(self) -> bool:
        return bool(self.open)

    def aliases(self, name: str) -> dict[str, str] | None:
        return self.open.get(name)


class StubLookup(Lookup):
    """The endpoint's ledger, asked in-process; ``fail`` makes the lookup raise as an unreachable endpoint would."""

    def __init__(self, ledger: VectorLedger) -> None:
        self.ledger = ledger
        self.fail = False

    async def models(self, prints: list[bytes]) -> list[str | None]:
        if self.fail:
            raise ConnectionRefusedError("endpoint down")
        await asyncio.sleep(0.002)  # a loopback round trip: other streams pass meanwhile
        return self.ledger.lookup(prints)


class World:
    def __init__(self, loop_kind: str) -> None:
        self.upstream = Upstream()
        self.routes = StubRoutes()
        self.ledger = VectorLedger(keep_s=60)
        self.lookup = StubLookup(self.ledger)
        self.outcomes: list[str] = []
        self.tags = itertools.count()
        self.loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> Forwarder:
            f = Forwarder(
                f"http://127.0.0.1:{self.upstream.port}",
                "127.0.0.1",
                0,
                routes=self.routes,
                lookup=self.lookup,
                on_routed=self.outcomes.append,
            )
            await f.start()
            return f

        self.forwarder = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.forwarder.port}")

    def search(self, collection: str, vectors: np.ndarray, **extra: Any) -> milvus_pb2.SearchRequest:
        group = common_pb2.PlaceholderGroup(
            placeholders=[
                common_pb2.PlaceholderValue(
                    tag="$0",
                    type=common_pb2.PlaceholderType.FloatVector,
                    values=[np.asarray(v, dtype="<f4").tobytes() for v in vectors],
                )
            ]
        )
        tag = f"q-{next(self.tags)}"
        request = milvus_pb2.SearchRequest(
            dsl=tag,
            db_name="default",
            collection_name=collection,
            placeholder_group=group.SerializeToString(),
            output_fields=["id", "text"],
            nq=len(vectors),
            **extra,
        )
        call = self.channel.unary_unary(f"/{SERVICE_NAME}/Search")
        call(request.SerializeToString(), timeout=10)
        return self.upstream.searches[tag]

    def close(self) -> None:
        self.channel.close()
        asyncio.run_coroutine_threadsafe(self.forwarder.stop(0), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.upstream.server.stop(0)


@pytest.fixture(params=["asyncio", "uvloop"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    w = World(request.param)
    yield w
    w.close()


def _vectors(seed: int, n: int = 1, dim: int = 32) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_a_search_is_sent_to_the_collection_of_the_model_that_made_its_vector(world: World) -> None:
    old, new = _vectors(1), _vectors(2)
    world.ledger.record("v0001@old", old)
    world.ledger.record("v0002@new", new)
    world.routes.open["docs"] = {"v0001@old": "do_0", "v0002@new": "do_1"}
    a = world.search("docs", old)
    b = world.search("docs", new, search_params=[common_pb2.KeyValuePair(key="limit", value="5")])
    assert (a.collection_name, b.collection_name) == ("do_0", "do_1")
    # Nothing else changed: the rest of the message is what the application sent.
    assert (
        a.placeholder_group
        and common_pb2.PlaceholderGroup.FromString(a.placeholder_group).placeholders[0].values[0]
        == np.asarray(old[0], "<f4").tobytes()
    )
    assert list(b.output_fields) == ["id", "text"] and b.search_params[0].value == "5"
    assert world.outcomes == ["routed", "routed"]


def test_what_the_endpoint_did_not_make_or_cannot_say_goes_as_sent(world: World) -> None:
    made = _vectors(3)
    world.ledger.record("v0001@old", made)
    world.routes.open["docs"] = {"v0001@old": "do_0"}
    assert world.search("docs", _vectors(4)).collection_name == "docs"  # the application's own vector
    assert world.search("other", made).collection_name == "other"  # not a switching alias: not even counted
    world.lookup.fail = True
    assert world.search("docs", made).collection_name == "docs"
    world.lookup.fail = False
    # Two queries made by two models cannot both be paired: as sent.
    world.ledger.record("v0002@new", _vectors(5))
    world.routes.open["docs"]["v0002@new"] = "do_1"
    assert world.search("docs", np.concatenate([made, _vectors(5)])).collection_name == "docs"
    # A message past what can be held without waiting on flow control: as sent.
    big = _vectors(6, n=600, dim=32)
    world.ledger.record("v0001@old", big)
    assert world.search("docs", big).collection_name == "docs"
    assert world.outcomes == ["not_from_endpoint", "lookup_failed", "unroutable", "unroutable"]


def test_routing_starts_and_stops_mid_connection_and_concurrent_calls_keep_their_answers(world: World) -> None:
    """One channel (one HTTP/2 connection, one HPACK state) across the window opening and closing, with many
    concurrent searches and other calls: each call gets its own answer, every routed search its own alias."""
    vecs = _vectors(7, n=64)
    world.ledger.record("v0001@old", vecs[:32])
    world.ledger.record("v0002@new", vecs[32:])
    assert world.search("docs", vecs[:1]).collection_name == "docs"  # no window yet: bytes as sent

    def one(i: int) -> tuple[str, bytes]:
        got = world.search("docs", vecs[i : i + 1])
        echo = world.channel.unary_unary(f"/{SERVICE_NAME}/HasCollection")(f"ask-{i}".encode(), timeout=10)
        return got.collection_name, echo

    world.routes.open["docs"] = {"v0001@old": "do_0", "v0002@new": "do_1"}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(64)))
    assert [r[0] for r in results] == ["do_0"] * 32 + ["do_1"] * 32
    assert [r[1] for r in results] == [f"echo:ask-{i}".encode() for i in range(64)]
    world.routes.open.clear()
    assert world.search("docs", vecs[40:41]).collection_name == "docs"
    assert world.outcomes.count("routed") == 64


def test_field_span_finds_a_field_and_a_patch_of_equal_length_keeps_the_message_valid() -> None:
    request = milvus_pb2.SearchRequest(
        db_name="default", collection_name="docs", placeholder_group=b"\x01" * 300, dsl="", nq=1
    )
    raw = bytearray(request.SerializeToString())
    start, end = field_span(raw, 3) or (0, 0)
    assert bytes(raw[start:end]) == b"docs"
    raw[start:end] = b"do_7"
    patched = milvus_pb2.SearchRequest.FromString(bytes(raw))
    assert patched.collection_name == "do_7" and patched.placeholder_group == b"\x01" * 300
    assert field_span(raw, 99) is None


def test_the_ledger_remembers_each_vector_for_its_window_only() -> None:
    ledger = VectorLedger(keep_s=0.2, max_entries=3)
    a, b = _vectors(8, n=2)
    ledger.record("m1", a[None])
    ledger.record("m2", b[None])
    prints = [fingerprint(np.asarray(v, "<f4").tobytes()) for v in (a, b, _vectors(9)[0])]
    assert ledger.lookup(prints) == ["m1", "m2", None]
    ledger.record("m1", _vectors(10, n=2))  # past max_entries: the oldest goes
    assert ledger.lookup(prints[:2]) == [None, "m2"]
    import time

    time.sleep(0.3)
    assert ledger.lookup(prints[:2]) == [None, None] and len(ledger) == 0


def test_routing_alias_names_are_as_long_as_the_alias() -> None:
    for alias in ("a", "kb", "docs", "a_much_longer_alias"):
        names = list(itertools.islice(candidate_names(alias), 50))
        assert names and all(len(n) == len(alias) and n != alias for n in names)
        assert len(set(names)) == len(names)


def _show(world: World) -> milvus_pb2.ShowCollectionsResponse:
    call = world.channel.unary_unary(f"/{SERVICE_NAME}/ShowCollections")
    return milvus_pb2.ShowCollectionsResponse.FromString(call(milvus_pb2.ShowCollectionsRequest().SerializeToString()))


def test_show_collections_lists_each_watched_alias_beside_the_collection_it_serves(world: World) -> None:
    """LlamaIndex opens a collection only if list_collections() names it; every managed collection is an alias."""
    assert list(_show(world).collection_names) == ["kb__v0001", "other"]  # no watched alias yet: as sent
    world.routes.listed = {"kb": "kb__v0001", "gone": "gone__v0001"}
    answer = _show(world)
    assert list(answer.collection_names) == ["kb__v0001", "other", "kb"]  # an alias whose collection is absent: not
    # The collections keep their columns, but the hybrid-clock one, which no SDK reads: the answer is as long as
    # Milvus sent it, so flow control and frame sizes are untouched.
    assert list(answer.collection_ids) == [464_000_000_000_000_000, 464_000_000_000_000_001]
    assert list(answer.created_utc_timestamps) == [1_765_000_000_000] * 2 and not answer.created_timestamps
    # Many answers on one connection, among other calls: all arrive whole, and the connection keeps working.
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: list(_show(world).collection_names), range(300)))
    assert all(a == ["kb__v0001", "other", "kb"] for a in answers)
    echo = world.channel.unary_unary(f"/{SERVICE_NAME}/HasCollection")
    assert echo(b"x" * 3_000_000, timeout=30) == b"echo:" + b"x" * 3_000_000
    # An answer with no room for the alias, or too large to hold, goes as sent.
    world.upstream.names = ["kb__v0001"]
    world.routes.listed = {"a_very_long_alias_name_indeed": "kb__v0001"}
    assert list(_show(world).collection_names) == ["kb__v0001"]
    world.routes.listed = {"kb": "kb__v0001"}
    world.upstream.names = ["kb__v0001"] + [f"c{i:05d}" for i in range(8_000)]
    assert "kb" not in _show(world).collection_names


def test_add_aliases_keeps_the_exact_length_for_any_room() -> None:
    from embguard.milvus.wire import add_aliases

    for n in range(1, 40):
        names = [f"kb__v{i:04d}" for i in range(n)]
        raw = milvus_pb2.ShowCollectionsResponse(
            collection_names=names, created_timestamps=[464_000_000_000_000_000 + i for i in range(n)]
        ).SerializeToString()
        for alias in ("kb", "a" * (9 * n)):
            out = add_aliases(raw, {alias: names[0]})
            if out is not None:
                assert len(out) == len(raw)
                assert list(milvus_pb2.ShowCollectionsResponse.FromString(out).collection_names) == [*names, alias]
        assert add_aliases(raw, {"kb": "absent"}) is None


def test_searches_too_large_to_hold_go_as_sent_and_are_counted_once(world: World) -> None:
    """Held bytes are not forwarded yet, so they must stay inside the application's flow-control window: a search
    past the limits (alone, or with others held on the connection) goes as sent, counted once, and every call of
    many concurrent ones completes."""
    big = _vectors(11, n=1_600, dim=32)  # 200 KB: many frames, one count
    world.ledger.record("v0001@old", big)
    world.routes.open["docs"] = {"v0001@old": "do_0"}
    assert world.search("docs", big).collection_name == "docs"
    assert world.outcomes == ["unroutable"]
    middling = _vectors(12, n=16 * 300, dim=32)  # 16 searches of 38 KB at once: together past the connection's cap
    world.ledger.record("v0001@old", middling)
    with ThreadPoolExecutor(16) as pool:
        names = list(
            pool.map(lambda i: world.search("docs", middling[i * 300 : (i + 1) * 300]).collection_name, range(16))
        )
    assert set(names) <= {"docs", "do_0"} and len(names) == 16


def test_a_connection_that_is_not_http2_goes_through_whole_during_a_window(world: World) -> None:
    """Milvus serves its REST API on the gRPC port: such a connection, opened while a window is open, is relayed
    byte for byte (the proxy only reads HTTP/2)."""
    import socket

    request = b"POST /v2/vectordb/collections/list HTTP/1.1\r\nHost: milvus\r\nContent-Length: 2\r\n\r\n{}"

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readexactly(len(request)))  # however many writes the relay made of it
        await writer.drain()
        writer.close()

    async def start() -> tuple[Any, Forwarder]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        f = Forwarder(
            f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
            "127.0.0.1",
            0,
            routes=world.routes,
            lookup=world.lookup,
        )
        await f.start()
        return server, f

    world.routes.open["docs"] = {"v0001@old": "do_0"}
    server, forwarder = asyncio.run_coroutine_threadsafe(start(), world.loop).result(10)
    with socket.create_connection(("127.0.0.1", forwarder.port), timeout=10) as sock:
        sock.sendall(request)
        got = b""
        while len(got) < len(request):
            chunk = sock.recv(4096)
            if not chunk:
                break
            got += chunk
    assert got == request
    asyncio.run_coroutine_threadsafe(forwarder.stop(0), world.loop).result(10)
    server.close()


def test_add_aliases_makes_room_in_a_milvus_lite_answer() -> None:
    """Milvus Lite fills only the compatibility columns (load percentage, shards, query service), no timestamps:
    the room comes from those, and from an empty status (success either way)."""
    from pymilvus.grpc_gen import common_pb2

    from embguard.milvus.wire import add_aliases

    raw = milvus_pb2.ShowCollectionsResponse(
        status=common_pb2.Status(),
        collection_names=["embguard_queries", "demo_docs__v0000"],
        inMemory_percentages=[100, 100],
        query_service_available=[True, True],
        shards_num=[1, 1],
    ).SerializeToString()
    out = add_aliases(raw, {"demo_docs": "demo_docs__v0000"})
    assert out is not None and len(out) == len(raw)
    answer = milvus_pb2.ShowCollectionsResponse.FromString(out)
    assert list(answer.collection_names) == ["embguard_queries", "demo_docs__v0000", "demo_docs"]
    assert answer.status.code == 0
