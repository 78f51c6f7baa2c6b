"""The forwarder's wire promises, against a small gRPC server standing in for Milvus' port: bytes through unchanged,
hop headers dropped and the rest passed on, the caller's deadline passed on, the upstream's status code, details
and trailing metadata returned unchanged, streaming calls refused with a message. (The same proxy against real
Milvus, with real applications: tests/integration/test_proxy_*.py.)"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from embguard.milvus.lite import free_port
from embguard.milvus.wire import SERVICE_NAME
from embguard.proxy.forwarder import Forwarder


class Upstream:
    """Answers HasCollection by echoing the request; a request b"fail" is aborted with NOT_FOUND and a trailer."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], float | None]] = []

        def has_collection(request: bytes, context: Any) -> bytes:
            self.seen.append((dict(context.invocation_metadata()), context.time_remaining()))
            if request == b"fail":
                context.set_trailing_metadata((("milvus-trace", "t-1"),))
                context.abort(grpc.StatusCode.NOT_FOUND, "collection not found[collection=nope]")
            return b"echo:" + request

        handler = grpc.method_handlers_generic_handler(
            SERVICE_NAME, {"HasCollection": grpc.unary_unary_rpc_method_handler(has_collection)}
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(2))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()


@pytest.fixture()
def proxied() -> Iterator[tuple[Upstream, int, list[tuple[str, bytes, bytes]]]]:
    """An upstream, and a forwarder in front of it on its own event loop thread; the bytes handed to the tap."""
    upstream = Upstream()
    tapped: list[tuple[str, bytes, bytes]] = []
    loop = asyncio.new_event_loop()
    port = free_port()

    async def start() -> Forwarder:
        f = Forwarder(
            f"http://127.0.0.1:{upstream.port}", "127.0.0.1", port, on_call=lambda m, q, r, md: tapped.append((m, q, r))
        )
        await f.start()
        return f

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    forwarder = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    yield upstream, port, tapped
    asyncio.run_coroutine_threadsafe(forwarder.stop(0), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    upstream.server.stop(0)


def _call(port: int, method: str, request: bytes, **kw: Any) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        return ch.unary_unary(f"/{SERVICE_NAME}/{method}").with_call(request, **kw)


def test_bytes_headers_and_deadline_pass_through(proxied) -> None:
    upstream, port, tapped = proxied
    payload = bytes(range(256)) * 4
    response, _ = _call(
        port, "HasCollection", payload, timeout=7, metadata=(("authorization", "Basic x"), ("dbname", "shop"))
    )
    assert response == b"echo:" + payload
    headers, remaining = upstream.seen[-1]
    assert headers["authorization"] == "Basic x" and headers["dbname"] == "shop"
    assert remaining is not None and 5 < remaining <= 7  # the caller's deadline, not none and not a new one
    assert tapped == [("HasCollection", payload, b"echo:" + payload)]


def test_the_upstream_status_details_and_trailers_come_back_unchanged(proxied) -> None:
    _, port, tapped = proxied
    with pytest.raises(grpc.RpcError) as err:
        _call(port, "HasCollection", b"fail", timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "collection not found[collection=nope]"
    assert ("milvus-trace", "t-1") in tuple(err.value.trailing_metadata())
    assert tapped == []  # a failed call is not tapped


def test_an_unreachable_upstream_is_unavailable_as_it_would_be_directly() -> None:
    dead = free_port()
    loop = asyncio.new_event_loop()

    async def run() -> grpc.StatusCode:
        port = free_port()
        f = Forwarder(f"http://127.0.0.1:{dead}", "127.0.0.1", port)
        await f.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
                try:
                    await ch.unary_unary(f"/{SERVICE_NAME}/HasCollection")(b"x", timeout=5)
                except grpc.aio.AioRpcError as exc:
                    return exc.code()
            return grpc.StatusCode.OK
        finally:
            await f.stop(0)

    assert loop.run_until_complete(run()) == grpc.StatusCode.UNAVAILABLE
    loop.close()


def test_streaming_calls_are_refused_with_a_message_saying_where_to_go(proxied) -> None:
    _, port, _ = proxied
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        call = ch.stream_stream(f"/{SERVICE_NAME}/DumpMessages")(iter([b""]), timeout=5)
        with pytest.raises(grpc.RpcError) as err:
            list(call)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "DumpMessages" in err.value.details() and "directly" in err.value.details()
