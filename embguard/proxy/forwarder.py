"""The forwarding half of ``embguard proxy``: every unary ``MilvusService`` call, byte for byte, to Milvus.

A ``grpc.aio`` server with one generic handler: no (de)serializer on either side, so a request is never parsed
on its way through, and the upstream's response, status code, details and trailing metadata come back
unchanged. What must not be forwarded is the transport's own headers: passing the pseudo headers,
``grpc-timeout`` or ``content-type`` on made calls fail (research: shared/research/capture.md), so those are
dropped and the caller's deadline is passed on explicitly. The tap is handed the bytes after the response is
on its way (``on_call``), and it never blocks (a bounded queue).

Streaming methods (``CreateReplicateStream``, ``DumpMessages``: replication only) are refused with
UNIMPLEMENTED and a message that says to reach Milvus directly for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import grpc
from grpc import aio

from embguard.errors import ConfigError
from embguard.milvus.wire import SERVICE_NAME, STREAMING, UNARY

# Headers that belong to one hop: the server side of the proxy consumed them, the client side makes its own.
_HOP_HEADERS = frozenset({"user-agent", "grpc-timeout", "te", "content-type", "grpc-accept-encoding", "grpc-encoding"})
# Milvus enforces its own message-size limits (proxy.grpc.serverMaxRecvSize/serverMaxSendSize) and answers with
# its own error; the proxy must not refuse first with a smaller gRPC default (4 MB received).
_UNLIMITED = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]

OnCall = Callable[[str, bytes, bytes, tuple[tuple[str, str], ...]], None]
OnDone = Callable[[str, str, float], None]


def upstream_target(uri: str) -> tuple[str, bool]:
    """``host:port`` and whether to use TLS, for a Milvus URI (``http://``, ``https://``, ``tcp://``)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https", "tcp", "grpc", "grpcs") or not parts.hostname:
        raise ConfigError(f"the proxy cannot forward to Milvus at {uri!r}: give milvus.uri as http(s)://host:port")
    tls = parts.scheme in ("https", "grpcs")
    port = parts.port or (443 if tls else 19530)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}", tls


def forwarded_metadata(metadata: Any) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in (metadata or ()) if not k.startswith(":") and k not in _HOP_HEADERS)


class Forwarder:
    """Serves ``MilvusService`` on ``host:port`` and forwards each call to ``upstream`` (a Milvus URI).

    ``on_call(method, request, response, metadata)`` sees every successful call's bytes; ``on_done(method,
    code, seconds)`` every call's outcome. Both must return at once and never raise (they are the tap and the
    metrics). Create and run it inside the event loop that serves it."""

    def __init__(
        self,
        upstream: str,
        host: str,
        port: int,
        on_call: OnCall | None = None,
        on_done: OnDone | None = None,
        root_certificates: bytes | None = None,
    ):
        self.upstream = upstream
        target, tls = upstream_target(upstream)
        options = [*_UNLIMITED, ("grpc.keepalive_permit_without_calls", 0)]
        self.channel = (
            aio.secure_channel(target, grpc.ssl_channel_credentials(root_certificates), options=options)
            if tls
            else aio.insecure_channel(target, options=options)
        )
        self._on_call = on_call
        self._on_done = on_done
        self.server = aio.server(options=[*_UNLIMITED, ("grpc.so_reuseport", 0)])
        handlers: dict[str, grpc.RpcMethodHandler] = {m: self._unary(m) for m in UNARY}
        handlers.update({m: self._refused(m) for m in STREAMING})
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        try:
            self.port = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError as exc:
            raise ConfigError(f"the proxy cannot listen on {host}:{port}: {exc}; choose a free proxy.port") from None
        self.host = host
        self.last_code = ""  # the gRPC status of the last forwarded call ("" before the first)

    def _unary(self, method: str) -> grpc.RpcMethodHandler:
        stub = self.channel.unary_unary(f"/{SERVICE_NAME}/{method}")
        on_call, on_done = self._on_call, self._on_done

        async def forward(request: bytes, context: aio.ServicerContext) -> bytes:
            metadata = forwarded_metadata(context.invocation_metadata())
            started = time.perf_counter()
            try:
                response: bytes = await stub(request, metadata=metadata, timeout=context.time_remaining())
            except aio.AioRpcError as exc:
                self.last_code = exc.code().name
                if on_done is not None:
                    on_done(method, exc.code().name, time.perf_counter() - started)
                trailing = exc.trailing_metadata()
                if trailing:
                    context.set_trailing_metadata(forwarded_metadata(trailing))
                await context.abort(exc.code(), exc.details() or "")
                raise  # unreachable: abort raises
            self.last_code = "OK"
            if on_done is not None:
                on_done(method, "OK", time.perf_counter() - started)
            if on_call is not None:
                on_call(method, request, response, metadata)
            return response

        return grpc.unary_unary_rpc_method_handler(forward)

    def _refused(self, method: str) -> grpc.RpcMethodHandler:
        message = (
            f"embguard proxy does not forward the streaming call {method} (replication only); "
            f"connect to Milvus at {self.upstream} directly for it"
        )

        async def refuse(request: Any, context: aio.ServicerContext) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, message)

        return grpc.stream_stream_rpc_method_handler(refuse)

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.server.stop(grace_s)
        await self.channel.close()
