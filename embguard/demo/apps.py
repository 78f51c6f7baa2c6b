"""The applications ``embguard demo --app`` runs unchanged, and embguard's two doors running beside them.

:class:`LangChainApp` is what a LangChain user writes: LangChain's Milvus store for search and
``OpenAIEmbeddings`` for embeddings, with the two URLs pointed at embguard (the proxy and the endpoint); its clicks
go to the endpoint's ``/v1/feedback``; its new documents are embedded the same way and written with the store's
pymilvus client.
:class:`Doors` runs ``embguard proxy`` and ``embguard endpoint`` on threads of this process.

LangChain is an optional dependency (``pip install 'embguard[apps]'``), imported here only.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from typing import Any

from prometheus_client import CollectorRegistry

from embguard.config.settings import Settings
from embguard.endpoint import service as endpoint_service
from embguard.errors import ConfigError
from embguard.proxy.service import Proxy


class Doors:
    """``embguard proxy`` and ``embguard endpoint`` for ``settings``, each on its own thread (``with``)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proxy_registry = CollectorRegistry()
        self.proxy = Proxy(settings, registry=self.proxy_registry)
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="embguard-demo-proxy", daemon=True)
        self.endpoint = endpoint_service.build(settings)
        import uvicorn

        config = uvicorn.Config(
            self.endpoint.app,
            host=settings.endpoint.host,
            port=settings.endpoint.port,
            loop="asyncio",
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        self._server = uvicorn.Server(config)
        self._server_thread = threading.Thread(target=self._server.run, name="embguard-demo-endpoint", daemon=True)

    @property
    def proxy_uri(self) -> str:
        return f"http://{self.settings.proxy.host}:{self.proxy.port}"

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.settings.endpoint.host}:{self.settings.endpoint.port}"

    def __enter__(self) -> Doors:
        self._loop_thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(30)
        self._server_thread.start()
        deadline = time.monotonic() + 120
        while not self._server.started:
            if not self._server_thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the demo's embedding endpoint did not start on {self.endpoint_url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._server_thread.join(30)
        asyncio.run_coroutine_threadsafe(self.proxy.stop(2.0), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join(10)

    def metric(self, name: str, **labels: str) -> float:
        return float(self.proxy_registry.get_sample_value(name, labels) or 0.0)


class LangChainApp:
    """An application written with LangChain (``langchain-milvus`` and ``langchain-openai``), changed in nothing
    but its two URLs."""

    def __init__(self, milvus_uri: str, embeddings_url: str, collection: str, db_name: str = ""):
        try:
            from langchain_milvus import Milvus as LangChainMilvus
            from langchain_openai import OpenAIEmbeddings
        except ImportError as exc:
            raise ConfigError(
                f"`embguard demo --app langchain` runs a LangChain application, and {exc.name} is not installed; "
                "pip install 'embguard[apps]'"
            ) from None
        self.collection = collection
        self.embeddings_url = embeddings_url
        # check_embedding_ctx_length=False: LangChain would otherwise tokenize with tiktoken, which downloads.
        self.embeddings = OpenAIEmbeddings(  # type: ignore[call-arg]  # pydantic aliases mypy cannot see
            base_url=embeddings_url + "/v1", api_key="unused", model=collection, check_embedding_ctx_length=False
        )
        self.store = LangChainMilvus(
            embedding_function=self.embeddings,
            connection_args={"uri": milvus_uri, "db_name": db_name},
            collection_name=collection,
            primary_field="id",
            text_field="text",
            vector_field="vector",
        )

    def search(self, query: str, limit: int) -> tuple[list[Any], str | None]:
        return [d.metadata["id"] for d in self.store.similarity_search(query, k=limit)], None

    def click(self, query: str, query_id: str | None, doc_id: Any) -> None:
        body = json.dumps({"collection": self.collection, "query": query, "doc_id": doc_id, "signal": "click"})
        request = urllib.request.Request(
            self.embeddings_url + "/v1/feedback", data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as r:
            r.read()

    def insert(self, doc_id: int, text: str) -> None:
        vector = self.embeddings.embed_documents([text])[0]
        # The store's own pymilvus client: LangChain's add_texts wants string ids, and this collection's are integers.
        self.store.client.insert(self.collection, [{"id": doc_id, "text": text, "vector": vector}])

    def close(self) -> None:
        self.store.client.close()
