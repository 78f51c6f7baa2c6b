"""The embedding endpoint's HTTP contract, on its ASGI app with a stand-in model (the real model, Milvus and
real clients: tests/integration/test_endpoint.py): OpenAI's request and error shapes, base64 as OpenAI encodes
it, TEI's shape, the bearer token, the limits, and micro-batching across concurrent requests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from starlette.testclient import TestClient

from embguard.config.settings import Settings
from embguard.endpoint.app import Endpoint
from embguard.endpoint.batcher import Batcher
from embguard.endpoint.names import Resolved
from embguard.errors import ConfigError, ModelNotFound

DIM = 8


class StandInModel:
    """Deterministic vectors from each text's hash; queries differ from documents (an asymmetric model).
    Records each encoder pass's size; ``delay_s`` makes a pass slow enough for requests to queue behind it."""

    def __init__(self, model_id: str = "stand-in@0", delay_s: float = 0.0):
        self.model_id, self.dimension, self.delay_s = model_id, DIM, delay_s
        self.passes: list[int] = []
        self.lock = threading.Lock()

    def _vectors(self, texts: Sequence[str], salt: str) -> np.ndarray:
        with self.lock:
            self.passes.append(len(texts))
        time.sleep(self.delay_s)
        salt = self.model_id + salt  # another model, other vectors
        rows = [np.frombuffer(hashlib.sha256((salt + t).encode()).digest()[:DIM], np.uint8) for t in texts]
        v = np.asarray(rows, np.float32) - 127.5
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._vectors(texts, "d:")

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return self._vectors(texts, "q:")

    sentence_transformer = None  # no tokenizer: usage counts whitespace words


class StandInNames:
    def __init__(self, model: StandInModel):
        self.model = model

    def resolve(self, name: str) -> Resolved:
        if name != "docs":
            raise ModelNotFound(f"model {name!r} is neither a collection alias in Milvus nor a model id")
        return Resolved(self.model, "docs", "docs__v0000")  # type: ignore[arg-type]

    def listed(self) -> list[str]:
        return ["docs"]

    def default(self) -> str:
        return "docs"

    def close(self) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[TestClient, StandInModel]]:
    model = StandInModel()
    endpoint = Endpoint(Settings(), StandInNames(model), CollectorRegistry(), token="t0k")  # type: ignore[arg-type]
    with TestClient(endpoint.app, headers={"Authorization": "Bearer t0k"}) as client:
        yield client, model


def test_openai_request_and_response_shapes(served) -> None:
    client, model = served
    r = client.post("/v1/embeddings", json={"model": "docs", "input": ["a b", "c"], "user": "u1"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["model"] == "docs"
    assert [d["index"] for d in body["data"]] == [0, 1] and body["data"][0]["object"] == "embedding"
    assert np.allclose([d["embedding"] for d in body["data"]], model.encode(["a b", "c"]), atol=1e-7)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    assert r.headers["x-embguard-model-id"] == "stand-in@0" and r.headers["x-embguard-collection"] == "docs__v0000"

    one = client.post("/v1/embeddings", json={"model": "docs", "input": "a b", "encoding_format": "base64"}).json()
    raw = np.frombuffer(base64.b64decode(one["data"][0]["embedding"]), dtype="<f4")
    assert raw.tobytes() == model.encode(["a b"])[0].astype("<f4").tobytes()  # bit for bit

    query = client.post("/v1/embeddings", json={"model": "docs", "input": "a b", "input_type": "query"}).json()
    assert np.allclose(query["data"][0]["embedding"], model.encode_queries(["a b"])[0], atol=1e-7)


@pytest.mark.parametrize(
    "body, status, param, words",
    [
        ({"input": "x"}, 400, "model", "`model` is required"),
        ({"model": "nope", "input": "x"}, 404, "model", "'nope' is neither a collection alias"),
        ({"model": "docs"}, 400, "input", "`input` must be a string or a non-empty list"),
        ({"model": "docs", "input": []}, 400, "input", "non-empty list"),
        ({"model": "docs", "input": [[101, 2023]]}, 400, "input", "token ids, not text"),
        ({"model": "docs", "input": ["ok", "  "]}, 400, "input", "`input`[1] is empty"),
        ({"model": "docs", "input": "x", "encoding_format": "int8"}, 400, "encoding_format", "not float or base64"),
        ({"model": "docs", "input": "x", "dimensions": 4}, 400, "dimensions", "is not what 'docs' makes (8)"),
        ({"model": "docs", "input": "x", "input_type": "image"}, 400, "input_type", "is not one of query"),
        ({"model": 7, "input": "x"}, 400, "model", "`model` must be a string"),
    ],
)
def test_bad_requests_are_answered_in_openais_error_shape_naming_the_parameter(served, body, status, param, words):
    client, model = served
    r = client.post("/v1/embeddings", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and words in error["message"] and error["type"] == "invalid_request_error"
    assert model.passes == []  # nothing was encoded for a refused request


def test_limits_on_inputs_text_length_and_body(served) -> None:
    client, _ = served
    limits = Settings().endpoint
    r = client.post("/v1/embeddings", json={"model": "docs", "input": ["x"] * (limits.max_inputs + 1)})
    assert r.status_code == 400 and "over endpoint.max_inputs = 2048; split the call" in r.json()["error"]["message"]
    r = client.post("/v1/embeddings", json={"model": "docs", "input": "x" * (limits.max_text_chars + 1)})
    assert r.status_code == 400 and "over endpoint.max_text_chars" in r.json()["error"]["message"]
    r = client.post("/v1/embeddings", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["message"]


def test_the_bearer_token_is_required_on_every_route_but_the_probes(served) -> None:
    client, _ = served
    for auth in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic t0k"}):
        r = client.post("/v1/embeddings", json={"model": "docs", "input": "x"}, headers={"Authorization": "", **auth})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/v1/models", headers={"Authorization": ""}).status_code == 401
    assert client.get("/healthz", headers={"Authorization": ""}).status_code == 200
    metrics = client.get("/metrics", headers={"Authorization": ""}).text
    assert 'embguard_endpoint_requests_total{code="401",route="embeddings"} 3.0' in metrics


def test_tei_embed_shape_and_errors(served) -> None:
    client, model = served
    r = client.post("/embed", json={"inputs": ["a", "b"]})
    assert r.status_code == 200 and np.allclose(r.json(), model.encode(["a", "b"]), atol=1e-7)
    r = client.post("/embed", json={"inputs": "a", "prompt_name": "query"})
    assert np.allclose(r.json(), model.encode_queries(["a"]), atol=1e-7)
    r = client.post("/embed", json={"inputs": "a", "normalize": False})
    assert r.status_code == 400 and r.json()["error_type"] == "Validation" and "normalize=false" in r.json()["error"]
    r = client.post("/embed?model=nope", json={"inputs": "a"})
    assert r.status_code == 404 and "'nope'" in r.json()["error"]


def test_models_lists_the_configured_collections(served) -> None:
    client, _ = served
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["docs"]


def test_feedback_bodies_are_checked_before_anything_is_resolved_or_written(served) -> None:
    client, model = served
    for body, words in (
        ({"query": "q", "doc_id": 1}, "feedback needs collection"),
        ({"collection": "docs", "query": "q", "doc_id": 1, "weight": -1}, "weight"),
        ({"collection": "docs", "query": "q", "doc_id": 1, "signal": "like"}, "'like' is not one of"),
        ({"collection": "docs", "query": "q", "doc_id": 1, "score": 5}, "unknown field(s) 'score'"),
        ([1, 2], "must be a JSON object"),
        ({"collection": "docs", "query": "   ", "doc_id": 1}, "feedback query is blank"),
        ({"collection": "docs", "query": "q" * 100_001, "doc_id": 1}, "over endpoint.max_text_chars"),
        ({"collection": "docs", "query": "q", "doc_id": "\u4e00" * 100}, "longer than the feedback store keeps"),
    ):
        r = client.post("/v1/feedback", json=body)
        assert r.status_code == 400 and words in r.json()["error"]["message"], (body, r.text)
    assert model.passes == []


def test_concurrent_requests_share_encoder_passes_and_each_gets_its_own_rows() -> None:
    model = StandInModel(delay_s=0.05)
    batcher = Batcher(max_texts=64)
    texts = [f"text {i}" for i in range(40)]

    async def run() -> list[np.ndarray]:
        batcher.start()
        try:
            results = await asyncio.gather(*(batcher.encode(model, [t]) for t in texts))  # type: ignore[arg-type]
            return [r.vectors[0] for r in results]
        finally:
            await batcher.stop()

    got = asyncio.run(run())
    assert np.allclose(np.stack(got), StandInModel().encode(texts))
    assert sum(model.passes) == 40 and len(model.passes) <= 2, model.passes  # 40 requests, one or two passes


def test_a_batch_never_mixes_models_or_roles_and_keeps_to_max_texts() -> None:
    a, b = StandInModel("a@0", delay_s=0.02), StandInModel("b@0", delay_s=0.02)
    batcher = Batcher(max_texts=5)

    async def run() -> list[Any]:
        batcher.start()
        try:
            jobs = [batcher.encode(a, ["first"])]  # type: ignore[arg-type]
            jobs += [batcher.encode(a if i % 2 else b, [f"t{i}", f"u{i}"]) for i in range(8)]  # type: ignore[arg-type]
            jobs += [batcher.encode(a, ["q"], role="query"), batcher.encode(a, ["x"] * 9)]  # type: ignore[arg-type]
            return list(await asyncio.gather(*jobs))
        finally:
            await batcher.stop()

    results = asyncio.run(run())
    passes_a, passes_b = list(a.passes), list(b.passes)
    for i, r in enumerate(results[1:9]):
        owner = StandInModel("a@0" if i % 2 else "b@0")
        assert np.allclose(r.vectors, owner.encode([f"t{i}", f"u{i}"]))  # its own model's vectors
    assert np.allclose(results[9].vectors, StandInModel("a@0").encode_queries(["q"]))  # never a document's
    assert 9 in passes_a and all(n <= 5 for n in passes_a if n != 9)  # larger than max_texts: a pass of its own
    assert all(n <= 5 for n in passes_b) and sum(passes_b) == 8


def test_a_failing_pass_fails_only_its_own_requests() -> None:
    class Broken(StandInModel):
        def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
            raise RuntimeError("encoder exploded")

    good, bad = StandInModel("good@0"), Broken("bad@0")
    batcher = Batcher(max_texts=8)

    async def run() -> tuple[Any, Any]:
        batcher.start()
        try:
            return tuple(
                await asyncio.gather(batcher.encode(bad, ["x"]), batcher.encode(good, ["y"]), return_exceptions=True)  # type: ignore[arg-type]
            )
        finally:
            await batcher.stop()

    failed, fine = asyncio.run(run())
    assert isinstance(failed, RuntimeError) and np.allclose(fine.vectors, good.encode(["y"]))


def test_endpoint_settings_refuse_a_public_address_without_a_token_and_an_unset_token_variable() -> None:
    from embguard.endpoint.service import bearer_token

    with pytest.raises(ValueError, match="endpoint.token_env"):
        Settings(endpoint={"host": "0.0.0.0"})
    s = Settings(endpoint={"host": "0.0.0.0", "token_env": "EMBGUARD_TEST_UNSET_TOKEN"})
    with pytest.raises(ConfigError, match="names 'EMBGUARD_TEST_UNSET_TOKEN', which is unset"):
        bearer_token(s)


def test_stopping_fails_the_requests_being_encoded_and_refuses_new_ones() -> None:
    model = StandInModel(delay_s=0.5)
    batcher = Batcher(max_texts=8)

    async def run() -> tuple[Any, Any]:
        batcher.start()
        running = asyncio.ensure_future(batcher.encode(model, ["slow"]))  # type: ignore[arg-type]
        queued = asyncio.ensure_future(batcher.encode(model, ["next"]))  # type: ignore[arg-type]
        await asyncio.sleep(0.1)  # the first pass is on the encoder thread
        await asyncio.wait_for(batcher.stop(), 0.3)  # without waiting for the pass to end
        results = await asyncio.wait_for(asyncio.gather(running, queued, return_exceptions=True), 1)
        try:
            await batcher.encode(model, ["late"])  # type: ignore[arg-type]
        except RuntimeError as exc:
            return results, exc
        return results, None

    (running, queued), late = asyncio.run(run())
    assert isinstance(running, RuntimeError) and "stopping" in str(running)
    assert isinstance(queued, RuntimeError) and isinstance(late, RuntimeError)
