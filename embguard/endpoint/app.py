"""The embedding endpoint's routes, as a Starlette (ASGI) application.

- ``POST /v1/embeddings``: OpenAI's embeddings API. ``model`` is a collection alias (its current model) or a
  model id; ``input`` a string or a list of strings; ``encoding_format`` ``float`` (default) or ``base64``
  (little-endian float32, as OpenAI sends it); ``dimensions``, when given, must be the model's own. One
  extension, named as NVIDIA's and Voyage's embedding APIs name it: ``input_type`` ``"query"`` for a search's
  encoding where the collection's model is asymmetric (default: the encoding documents are stored with; the
  same vectors for a symmetric model). Errors come in OpenAI's shape, so every OpenAI client reports them.
- ``POST /embed``: Hugging Face TEI's (``inputs``, ``prompt_name`` ``"query"``), for ``endpoint.default_model``
  or ``?model=``.
- ``GET /v1/models``; ``POST /v1/feedback`` (embguard.endpoint.feedback); ``POST /v1/vectors/lookup`` (which
  model made a vector, for the proxy: embguard.endpoint.ledger); ``/metrics``, ``/healthz``, ``/readyz``.

Every response names the model that made its vectors (``x-embguard-model-id``) and, for an alias, the
collection it serves (``x-embguard-collection``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from embguard.config.settings import Settings
from embguard.endpoint import feedback
from embguard.endpoint.batcher import Batcher
from embguard.endpoint.ledger import VectorLedger
from embguard.endpoint.metrics import EndpointMetrics
from embguard.endpoint.names import ModelNames, Resolved
from embguard.endpoint.shapes import (
    HTTPError,
    answer,
    openai_error,
    read_body,
    role_of,
    tei_error,
    texts_of,
    vector_as,
)
from embguard.errors import (
    FeedbackError,
    InvalidFeedback,
    MilvusError,
    MilvusUnavailable,
    MissingModelId,
    ModelNotFound,
)
from embguard.milvus.wire import FINGERPRINT_BYTES
from embguard.models.loading import EmbeddingModel

log = logging.getLogger("embguard.endpoint")


class Endpoint:
    """The application's state: settings, model names, the batcher, metrics. ``app`` is the ASGI app."""

    def __init__(
        self,
        settings: Settings,
        names: ModelNames,
        registry: CollectorRegistry,
        token: str | None = None,
    ):
        self.settings = settings
        self.names = names
        # Long enough for any application's embed-then-search, and past a switch's routing window (the proxy's).
        self.ledger = VectorLedger(keep_s=settings.swap.grace_s + 60.0)
        self.token = token
        self.metrics = EndpointMetrics(registry)
        self.batcher = Batcher(
            settings.endpoint.max_batch_texts,
            on_batch=self.metrics.batch,
            pass_size=settings.endpoint.encode_batch_size,
        )
        self.metrics.queue_texts.set_function(lambda: self.batcher.queued_texts)
        self.app = Starlette(
            routes=[
                Route("/v1/embeddings", self._wrap("embeddings", self.embeddings, openai_error), methods=["POST"]),
                Route("/embeddings", self._wrap("embeddings", self.embeddings, openai_error), methods=["POST"]),
                Route("/embed", self._wrap("embed", self.embed, tei_error), methods=["POST"]),
                Route("/v1/models", self._wrap("models", self.models, openai_error), methods=["GET"]),
                Route("/v1/feedback", self._wrap("feedback", self.feedback, openai_error), methods=["POST"]),
                Route("/v1/vectors/lookup", self._wrap("lookup", self.lookup, openai_error), methods=["POST"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/readyz", self.readyz, methods=["GET"]),
                Mount("/metrics", make_asgi_app(registry)),
            ],
            lifespan=self._lifespan,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.batcher.start()
        try:
            yield
        finally:
            await self.batcher.stop()
            await asyncio.to_thread(self.names.close)

    def _wrap(
        self,
        route: str,
        handler: Callable[[Request], Awaitable[Response]],
        error: Callable[[HTTPError], Response],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                self._authorize(request)
                response = await handler(request)
            except HTTPError as e:
                response = error(e)
            except ModelNotFound as exc:
                response = error(HTTPError(404, str(exc), param="model", code="model_not_found"))
            except MissingModelId as exc:  # a collection whose vectors the application computes
                response = error(HTTPError(404, str(exc), param="model", code="model_not_found"))
            except MilvusUnavailable as exc:
                response = error(HTTPError(503, f"{exc}; retry when Milvus is back", kind="server_error"))
            except InvalidFeedback as exc:
                response = error(HTTPError(400, str(exc)))
            except (FeedbackError, MilvusError) as exc:
                response = error(HTTPError(503, f"{exc}; retry", kind="server_error"))
            except Exception as exc:  # answered in the client's error shape; the details go to the log only
                log.exception("embguard endpoint: %s %s failed", request.method, request.url.path)
                response = error(
                    HTTPError(
                        500, f"internal error ({type(exc).__name__}); see the endpoint's log", kind="server_error"
                    )
                )
            self.metrics.answered(route, response.status_code, time.perf_counter() - started)
            return response

        return endpoint

    def _authorize(self, request: Request) -> None:
        if self.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        # Starlette decodes header bytes as latin-1: back to the bytes sent, compared with the token's UTF-8.
        sent = value.strip().encode("latin-1", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent, self.token.encode()):
            raise HTTPError(
                401,
                "missing or wrong bearer token: send `Authorization: Bearer <token>` with the value of the "
                "variable endpoint.token_env names (the OpenAI SDK sends its api_key so)",
                kind="authentication_error",
                code="invalid_api_key",
            )

    async def _resolve(self, name: Any) -> Resolved:
        if not isinstance(name, str):
            raise HTTPError(400, "`model` must be a string: a collection alias or a model id", param="model")
        return await asyncio.to_thread(self.names.resolve, name)

    @staticmethod
    def _headers(resolved: Resolved) -> dict[str, str]:
        headers = {"x-embguard-model-id": resolved.model.model_id}
        if resolved.collection:
            headers["x-embguard-collection"] = resolved.collection
        return headers

    async def embeddings(self, request: Request) -> Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object with `model` and `input`")
        if "model" not in body:
            raise HTTPError(400, "`model` is required: a collection alias or a model id", param="model")
        texts = texts_of(body.get("input"), "input", self.settings.endpoint)
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise HTTPError(400, f"`encoding_format` {fmt!r:.40} is not float or base64", param="encoding_format")
        role = role_of(body.get("input_type"), "input_type")
        resolved = await self._resolve(body["model"])
        model = resolved.model
        dims = body.get("dimensions")
        if dims is not None and dims != model.dimension:
            raise HTTPError(
                400,
                f"`dimensions` {dims!r:.20} is not what {body['model']!r} makes ({model.dimension}); omit it",
                param="dimensions",
            )
        encoded = await self.batcher.encode(model, texts, role)
        self.ledger.record(model.model_id, encoded.vectors)
        data = [
            {"object": "embedding", "index": i, "embedding": vector_as(v, fmt)} for i, v in enumerate(encoded.vectors)
        ]
        usage = {"prompt_tokens": encoded.tokens, "total_tokens": encoded.tokens}
        return answer(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}, 200, self._headers(resolved)
        )

    async def embed(self, request: Request) -> Response:
        body = await read_body(request)
        if not isinstance(body, dict):
            raise HTTPError(400, "the request body must be a JSON object with `inputs`")
        texts = texts_of(body.get("inputs"), "inputs", self.settings.endpoint)
        if body.get("normalize") is False:
            raise HTTPError(
                400, "this endpoint serves the vectors the collection stores, L2-normalised; drop normalize=false"
            )
        role = role_of(body.get("prompt_name"), "prompt_name")
        name = request.query_params.get("model") or await asyncio.to_thread(self.names.default)
        resolved = await self._resolve(name)
        encoded = await self.batcher.encode(resolved.model, texts, role)
        self.ledger.record(resolved.model.model_id, encoded.vectors)
        return answer(encoded.vectors, 200, self._headers(resolved))

    async def lookup(self, request: Request) -> Response:
        """The proxy's question during a switch: which model made each of these vectors (concatenated 16-byte
        fingerprints in, a JSON list of model ids or nulls out, in order)."""
        body = await request.body()
        if len(body) % FINGERPRINT_BYTES or len(body) > FINGERPRINT_BYTES * 65_536:
            raise HTTPError(400, f"the body must be up to 65,536 fingerprints of {FINGERPRINT_BYTES} bytes each")
        prints = [body[i : i + FINGERPRINT_BYTES] for i in range(0, len(body), FINGERPRINT_BYTES)]
        return answer(self.ledger.lookup(prints))

    async def models(self, request: Request) -> Response:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "embguard"} for n in self.names.listed()]
        return answer({"object": "list", "data": data})

    async def feedback(self, request: Request) -> Response:
        body = await read_body(request)
        alias, query, doc_id, signal, weight = feedback.parse(body, self.settings.endpoint.max_text_chars)
        resolved = await self._resolve(alias)
        if resolved.collection is None:
            raise HTTPError(
                400, f"feedback `collection` must be a collection alias, not a model id ({alias!r})", param="collection"
            )
        model: EmbeddingModel = resolved.model
        # Both encodings the application may have searched with (the same for a symmetric model), made on the
        # encoder thread like every other encode of this process.
        document, query_role = await asyncio.gather(
            self.batcher.encode(model, [query], "document"), self.batcher.encode(model, [query], "query")
        )
        vectors = document.vectors
        if not np.array_equal(query_role.vectors, document.vectors):
            vectors = np.concatenate([document.vectors, query_role.vectors])
        recorded = await asyncio.to_thread(
            feedback.record,
            self.names.milvus(),
            model,
            vectors,
            alias=alias,
            collection=resolved.collection,
            query=query,
            doc_id=doc_id,
            signal=signal,
            weight=weight,
            join_s=self.settings.endpoint.feedback_join_s,
        )
        self.metrics.feedback.labels(signal, "yes" if recorded.joined else "no").inc()
        return answer(recorded.to_json())

    async def healthz(self, request: Request) -> Response:
        return answer({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when it can embed: the default model of a single collection resolves (Milvus reachable, model
        loadable); with no collection configured, ready as soon as it listens (model ids need no Milvus)."""
        detail: dict[str, Any] = {"queued_texts": self.batcher.queued_texts}
        if self.settings.collections:
            name = self.settings.collections[0].name
            try:
                resolved = await asyncio.to_thread(self.names.resolve, name)
            except Exception as exc:  # any failure to serve is "not ready", said
                return answer({"status": "unavailable", "collection": name, "problem": str(exc), **detail}, 503)
            detail.update(collection=name, model_id=resolved.model.model_id)
        return answer({"status": "ok", **detail})
