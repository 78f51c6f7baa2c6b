"""The forwarder's wire promises, against a small gRPC server standing in for Milvus' port: bytes and headers through
unchanged, the caller's deadline passed on, the upstream's status code, details and trailing metadata returned
unchanged, streaming calls passed through, what the tap is handed (only wanted calls that succeeded, with their
outcome counted for every call), and a connection it cannot read relayed all the same. (The same proxy against real
Milvus, with real applications: tests/integration/test_proxy_*.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
import trustme
import uvloop
from builders import wait_until

from embguard.milvus.lite import free_port
from embguard.milvus.wire import SERVICE_NAME
from embguard.proxy.forwarder import Forwarder


class Upstream:
    """Answers HasCollection by echoing the request; a request b"fail" is aborted with NOT_FOUND and a trailer.
    DumpMessages (a streaming method) answers each request message with two."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], float | None]] = []

        def has_collection(request: bytes, context: Any) -> bytes:
            self.seen.append((dict(context.invocation_metadata()), context.time_remaining()))
            if request == b"fail":
                context.set_trailing_metadata((("milvus-trace", "t-1"),))
                context.abort(grpc.StatusCode.NOT_FOUND, "collection not found[collection=nope]")
            return b"echo:" + request

        def dump_messages(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
            for r in requests:
                yield r + b"-1"
                yield r + b"-2"

        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME,
            {
                "HasCollection": grpc.unary_unary_rpc_method_handler(has_collection),
                "DumpMessages": grpc.stream_stream_rpc_method_handler(dump_messages),
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


class Proxied:
    def __init__(self) -> None:
        self.upstream = Upstream()
        self.tapped: list[tuple[str, bytes, bytes]] = []
        self.done: list[tuple[str, str]] = []
        self.dropped: list[str] = []
        self.asked: list[str] = []


@pytest.fixture(params=["asyncio", "uvloop"])
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[Upstream, int, Proxied]]:
    """An upstream, and a forwarder in front of it on its own event loop thread that wants every HasCollection;
    on asyncio's loop and on uvloop's (what `embguard proxy` runs on)."""
    p = Proxied()
    loop = uvloop.new_event_loop() if request.param == "uvloop" else asyncio.new_event_loop()

    def wants(method: str) -> bool:
        p.asked.append(method)
        return method == "HasCollection"

    async def start() -> Forwarder:
        f = Forwarder(
            f"http://127.0.0.1:{p.upstream.port}",
            "127.0.0.1",
            0,
            on_call=lambda m, q, r, md: p.tapped.append((m, q, r)),
            on_done=lambda m, code, s: p.done.append((m, code)),
            wants=wants,
            on_dropped=p.dropped.append,
        )
        await f.start()
        return f

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    forwarder = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield p.upstream, forwarder.port, p
    asyncio.run_coroutine_threadsafe(forwarder.stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    p.upstream.server.stop(0)


def _call(port: int, method: str, request: bytes, **kw: Any) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return ch.unary_unary(f"/{SERVICE_NAME}/{method}").with_call(request, **kw)


def test_bytes_headers_and_deadline_pass_through(proxied) -> None:
    upstream, port, p = proxied
    payload = bytes(range(256)) * 4
    response, _ = _call(
        port, "HasCollection", payload, timeout=7, metadata=(("authorization", "Basic x"), ("dbname", "shop"))
    )
    assert response == b"echo:" + payload
    headers, remaining = upstream.seen[-1]
    assert headers["authorization"] == "Basic x" and headers["dbname"] == "shop"
    # The caller's deadline, not none and not a new one. gRPC writes grpc-timeout rounded up to its unit (a CI run
    # saw 7.008 s remaining of 7), so allow that rounding above the caller's 7 s.
    assert remaining is not None and 5 < remaining < 7.5
    wait_until(lambda: p.done, 5)
    assert p.tapped == [("HasCollection", payload, b"echo:" + payload)]
    assert p.done == [("HasCollection", "OK")] and p.dropped == []


def test_the_upstream_status_details_and_trailers_come_back_unchanged(proxied) -> None:
    _, port, p = proxied
    with pytest.raises(grpc.RpcError) as err:
        _call(port, "HasCollection", b"fail", timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "collection not found[collection=nope]"
    assert ("milvus-trace", "t-1") in tuple(err.value.trailing_metadata())
    wait_until(lambda: p.done, 5)
    assert p.tapped == [] and p.done == [("HasCollection", "NOT_FOUND")]  # a failed call is counted, not tapped


def test_an_unreachable_upstream_is_unavailable_as_it_would_be_directly() -> None:
    dead = free_port()
    loop = asyncio.new_event_loop()

    async def run() -> grpc.StatusCode:
        f = Forwarder(f"http://127.0.0.1:{dead}", "127.0.0.1", 0)
        await f.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{f.port}") as ch:
                try:
                    await ch.unary_unary(f"/{SERVICE_NAME}/HasCollection")(b"x", timeout=5)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
            return grpc.StatusCode.OK
        finally:
            await f.stop(0)

    assert loop.run_until_complete(run()) == grpc.StatusCode.UNAVAILABLE
    loop.close()


def test_streaming_calls_pass_through_and_are_not_tapped(proxied) -> None:
    _, port, p = proxied
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        answers = list(ch.stream_stream(f"/{SERVICE_NAME}/DumpMessages")(iter([b"a", b"b"]), timeout=5))
    assert answers == [b"a-1", b"a-2", b"b-1", b"b-2"]
    wait_until(lambda: p.done, 5)
    assert p.asked == ["DumpMessages"] and p.tapped == [] and p.done == [("DumpMessages", "OK")]


def test_many_calls_on_one_connection_keep_the_header_state_and_large_messages_arrive_whole(proxied) -> None:
    """HPACK's dynamic table carries state from call to call; a 3 MB request spans many DATA frames."""
    upstream, port, p = proxied
    big = bytes(range(256)) * (3 << 12)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.unary_unary(f"/{SERVICE_NAME}/HasCollection")
        for i in range(50):
            assert call(b"%d" % i, timeout=5, metadata=(("dbname", f"db{i % 3}"),)) == b"echo:%d" % i
        assert call(big, timeout=10) == b"echo:" + big
    wait_until(lambda: len(p.done) == len(p.tapped) == 51, 5)  # the relay reads what it has passed on
    assert [q for _, q, _ in p.tapped] == [b"%d" % i for i in range(50)] + [big]
    assert upstream.seen[49][0]["dbname"] == "db1" and p.dropped == []


def test_a_connection_that_is_not_http2_is_relayed_and_counted_as_unreadable() -> None:
    """The relay does not need to understand what it forwards: bytes that are not gRPC go through, both ways."""
    loop = asyncio.new_event_loop()
    dropped: list[str] = []

    async def run() -> bytes:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"pong:" + await reader.readexactly(27))
            await writer.drain()
            writer.close()

        upstream = await asyncio.start_server(echo, "127.0.0.1", 0)
        target = f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}"
        f = Forwarder(target, "127.0.0.1", 0, on_dropped=dropped.append)
        await f.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(100), 5)
            writer.close()
            return answer
        finally:
            await f.stop(0)
            upstream.close()

    assert loop.run_until_complete(run()) == b"pong:GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert dropped == ["decode_error"]
    loop.close()


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_what_the_upstream_sends_first_reaches_the_application(loop_kind: str) -> None:
    """An HTTP/2 server speaks first (its SETTINGS frame), possibly before the relay has paired the two connections:
    those bytes are kept and delivered. The loop's connect is slowed here so that they always arrive first."""
    loop = uvloop.new_event_loop() if loop_kind == "uvloop" else asyncio.new_event_loop()
    connect = loop.create_connection

    async def slow_connect(*args: Any, **kw: Any) -> Any:
        made = await connect(*args, **kw)
        await asyncio.sleep(0.05)  # the upstream's first bytes are read while the pair is not yet made
        return made

    loop.create_connection = slow_connect  # type: ignore[method-assign]

    async def run() -> list[bytes]:
        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"hello from upstream")
            await writer.drain()
            await reader.read()  # until the relay closes
            writer.close()

        upstream = await asyncio.start_server(greet, "127.0.0.1", 0)
        f = Forwarder(f"http://127.0.0.1:{upstream.sockets[0].getsockname()[1]}", "127.0.0.1", 0)
        await f.start()
        got = []
        try:
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
                got.append(await asyncio.wait_for(reader.readexactly(19), 5))
                writer.close()
        finally:
            await f.stop(0)
            upstream.close()
        return got

    assert loop.run_until_complete(run()) == [b"hello from upstream"] * 3
    loop.close()


def test_a_path_outside_the_protocol_is_relayed_and_labelled_other(proxied) -> None:
    upstream, port, p = proxied
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/not.a.Service/Anything")(b"x", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED  # the upstream's own answer
    wait_until(lambda: p.done, 5)
    assert p.done == [("other", "UNIMPLEMENTED")] and p.asked == ["other"]


def test_an_https_upstream_is_reached_over_tls_with_the_given_ca() -> None:
    """``milvus.uri = https://...``: the relay speaks TLS (ALPN h2) to Milvus and checks its certificate against
    ``proxy.upstream_ca_file``; the application still talks plaintext to the proxy on loopback. Without the CA
    the certificate is refused, and the application sees UNAVAILABLE."""
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    creds = grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), cert.cert_chain_pems[0].bytes())])
    upstream = grpc.server(futures.ThreadPoolExecutor(2))
    upstream.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE_NAME, {"HasCollection": grpc.unary_unary_rpc_method_handler(lambda r, c: b"tls:" + r)}
            ),
        )
    )
    port = upstream.add_secure_port("127.0.0.1:0", creds)
    upstream.start()
    loop = asyncio.new_event_loop()

    async def call(root: bytes | None) -> bytes | grpc.StatusCode:
        f = Forwarder(f"https://localhost:{port}", "127.0.0.1", 0, root_certificates=root)
        await f.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{f.port}") as ch:
                try:
                    answer: bytes = await ch.unary_unary(f"/{SERVICE_NAME}/HasCollection")(b"x", timeout=5)
                    return answer
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
        finally:
            await f.stop(0)

    try:
        assert loop.run_until_complete(call(ca.cert_pem.bytes())) == b"tls:x"
        assert loop.run_until_complete(call(None)) == grpc.StatusCode.UNAVAILABLE  # not trusted: refused
    finally:
        loop.close()
        upstream.stop(0)
