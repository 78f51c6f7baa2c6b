"""What crosses the embedding endpoint's wire: a request's body and texts checked, answers and errors in
OpenAI's and TEI's shapes, vectors as floats or OpenAI's base64 (little-endian float32)."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response

from embguard.config.doors import EndpointSettings

MAX_BODY_BYTES = 64 << 20
INPUT_TYPES = {"query": "query", "search_query": "query", "document": "document", "passage": "document"}


class HTTPError(Exception):
    """An answer other than 200: ``status``, a message naming the value and the fix, OpenAI's error type,
    the parameter at fault and a code."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type="application/json"
    )


def openai_error(e: HTTPError) -> Response:
    return answer({"error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}}, e.status)


def tei_error(e: HTTPError) -> Response:
    kinds = {400: "Validation", 401: "Unauthorized", 404: "Validation", 413: "Validation", 503: "Overloaded"}
    return answer({"error": e.message, "error_type": kinds.get(e.status, "Backend")}, e.status)


async def read_body(request: Request) -> Any:
    size = 0
    chunks = []
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPError(413, f"request body over {MAX_BODY_BYTES >> 20} MiB; send fewer or shorter texts per call")
        chunks.append(chunk)
    try:
        return orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, f"request body is not JSON: {exc}") from None


def texts_of(value: Any, param: str, limits: EndpointSettings) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise HTTPError(400, f"`{param}` must be a string or a non-empty list of strings", param=param)
    if len(texts) > limits.max_inputs:
        raise HTTPError(
            400,
            f"`{param}` has {len(texts)} texts, over endpoint.max_inputs = {limits.max_inputs}; split the call",
            param=param,
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            what = "token ids" if isinstance(t, (int, list)) else type(t).__name__
            raise HTTPError(
                400,
                f"`{param}`[{i}] is {what}, not text; this endpoint tokenizes with the model's own tokenizer, "
                "so send strings (for LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)",
                param=param,
            )
        if not t.strip():
            raise HTTPError(400, f"`{param}`[{i}] is empty; every text must have content", param=param)
        if len(t) > limits.max_text_chars:
            raise HTTPError(
                400,
                f"`{param}`[{i}] has {len(t)} characters, over endpoint.max_text_chars = {limits.max_text_chars}",
                param=param,
            )
    return texts


def role_of(value: Any, param: str) -> str:
    if value is None:
        return "document"
    role = INPUT_TYPES.get(value) if isinstance(value, str) else None
    if role is None:
        raise HTTPError(400, f"`{param}` {value!r:.40} is not one of {', '.join(INPUT_TYPES)}", param=param)
    return role


def vector_as(v: np.ndarray, fmt: str) -> Any:
    if fmt == "base64":
        return base64.b64encode(np.ascontiguousarray(v, dtype="<f4").tobytes()).decode("ascii")
    return v
