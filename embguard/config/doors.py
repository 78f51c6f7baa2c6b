"""The settings of the two doors for applications embguard does not change: ``[proxy]`` (their Milvus URI) and
``[endpoint]`` (their embedding client's base URL)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, model_validator

from embguard.config.bounds import Port, PositiveInt, Seconds, Section


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProxySettings(Section):
    """`embguard proxy`: the Milvus wire sidecar applications point their URI at (see docs/proxy.md)."""

    host: str = Field("127.0.0.1", description="address the proxy listens on for Milvus clients (gRPC)")
    port: Port = Field(19531, description="port applications connect to instead of Milvus'")
    metrics_port: Port = Field(9466, description="port of the proxy's /metrics, /healthz, /readyz (on proxy.host)")
    queue_size: PositiveInt = Field(
        10_000, description="forwarded calls waiting to be tapped; beyond it a call is forwarded but not tapped"
    )
    upstream_ca_file: Path | None = Field(
        None, description="PEM root certificates for an https:// milvus.uri (default: the system's)"
    )
    list_aliases: bool = Field(
        True,
        description="add the watched aliases to ShowCollections answers (LlamaIndex's Milvus store lists collections "
        "before opening one, and cannot open an alias otherwise)",
    )
    endpoint_url: str | None = Field(
        None,
        description="the embedding endpoint's URL (http://127.0.0.1:8466): during a switch the proxy asks it which "
        "model made each searched vector and sends the search to that model's collection (unset: no routing); "
        "its token is read from endpoint.token_env",
    )


class EndpointSettings(Section):
    """`embguard endpoint`: the OpenAI-compatible (and TEI) embedding endpoint applications point their embedding
    client's base URL at; each managed collection's current model (see docs/endpoint.md)."""

    host: str = Field(
        "127.0.0.1", description="address the endpoint listens on; a non-loopback address needs endpoint.token_env"
    )
    port: Port = Field(8466, description="port of /v1/embeddings, /embed, /v1/feedback, /metrics, /healthz, /readyz")
    token_env: str | None = Field(
        None, description="environment variable holding the bearer token every request must carry (none: no token)"
    )
    default_model: str = Field(
        "",
        description="model for TEI's /embed, which names none: a collection alias or model id (default: the "
        "only [[collections]] entry)",
    )
    max_batch_texts: PositiveInt = Field(
        256, description="texts encoded together at most, across concurrent requests (dynamic micro-batching)"
    )
    encode_batch_size: PositiveInt = Field(
        8,
        description="texts per encoder pass within a micro-batch, after sorting it by length: on a CPU small "
        "passes waste less on padding (8 measured best on 2 cores; benchmarks/results/endpoint.md)",
    )
    max_inputs: PositiveInt = Field(2048, description="texts one request may carry (OpenAI's own limit is 2,048)")
    max_text_chars: PositiveInt = Field(
        100_000, description="characters one text may have (the model truncates to its own token limit anyway)"
    )
    feedback_join_s: Seconds = Field(
        3600, description="how far back POST /v1/feedback looks for the tapped search its query text made"
    )

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> EndpointSettings:
        if not is_loopback(self.host) and not self.token_env:
            raise ValueError(
                f"endpoint.host = {self.host!r} serves embeddings and takes feedback beyond this host; set "
                "endpoint.token_env to a variable holding a bearer token, or listen on 127.0.0.1"
            )
        return self
