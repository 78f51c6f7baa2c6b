"""``embguard endpoint``: the embedding endpoint in its own process, served by uvicorn (uvloop's event loop,
httptools' HTTP parser) in one worker: the worker holds each model once, and torch spreads one encoder pass
over every core. SIGTERM or SIGINT stop it after the requests in flight are answered.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import CollectorRegistry

from embguard.config.settings import Settings
from embguard.endpoint.app import Endpoint
from embguard.endpoint.names import ModelNames
from embguard.errors import ConfigError
from embguard.milvus.milvus import Milvus

log = logging.getLogger("embguard.endpoint")
LISTEN_BACKLOG = 2048


def bearer_token(settings: Settings) -> str | None:
    """The token requests must carry: read from the variable ``endpoint.token_env`` names, at start."""
    name = settings.endpoint.token_env
    if not name:
        return None
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"endpoint.token_env names {name!r}, which is unset or empty; export {name}=<token>")
    return value


def build(settings: Settings, registry: CollectorRegistry | None = None) -> Endpoint:
    return Endpoint(
        settings,
        ModelNames(settings, lambda: Milvus.connect(settings)),
        registry or CollectorRegistry(),
        token=bearer_token(settings),
    )


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT."""
    import uvicorn

    endpoint = build(settings)
    host, port = settings.endpoint.host, settings.endpoint.port
    config = uvicorn.Config(
        endpoint.app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        backlog=LISTEN_BACKLOG,
        timeout_graceful_shutdown=10,
    )

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            # uvicorn re-raises the signal after a graceful shutdown, so the process would end "killed by
            # SIGTERM"; a stop that answered every request is a clean exit (status 0), as for `embguard proxy`.
            self._captured_signals.clear()

    server = Server(config)
    log.info(
        "embguard endpoint: POST http://%s:%d/v1/embeddings (OpenAI) and /embed (TEI), /v1/feedback; models: %s",
        host,
        port,
        ", ".join(endpoint.names.listed()) or "model ids only",
    )
    try:
        server.run()
    except SystemExit:  # uvicorn exits 1 when it cannot bind, after logging the OS error
        server.started = False
    if not server.started:
        raise ConfigError(f"the embedding endpoint cannot listen on {host}:{port}; choose a free endpoint.port")
