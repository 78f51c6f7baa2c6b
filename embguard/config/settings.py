"""The settings model: every section of ``embguard.toml`` as a frozen pydantic model, with its bounds.

Read through :func:`embguard.config.loader.load` (file + ``EMBGUARD_*`` environment), never built from a dict by
callers. Each field's ``description`` is the configuration reference (docs/configuration.md, generated).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from embguard.config.alert_targets import (
    AlertTarget,
    check_alert_targets,
)
from embguard.config.bounds import MAX_INT, Fraction, Port, PositiveFloat, PositiveInt, Seconds, Section
from embguard.config.credentials import redact_uri, scrub, split_userinfo
from embguard.config.doors import EndpointSettings, ProxySettings
from embguard.config.encoding import ModelSettings
from embguard.config.lifecycle import RetrainSettings, SwapSettings
from embguard.errors import ConfigError, InvalidInput

CONFIG_ENV = "EMBGUARD_CONFIG"
DEFAULT_CONFIG_NAME = "embguard.toml"

# Index types Milvus knows. Lite builds only some of them; the Milvus layer refuses the rest up front.
INDEX_TYPES = (
    "AUTOINDEX",
    "FLAT",
    "HNSW",
    "HNSW_SQ",
    "IVF_FLAT",
    "IVF_SQ8",
    "IVF_PQ",
    "DISKANN",
    "SCANN",
    "GPU_CAGRA",
    "GPU_IVF_FLAT",
    "GPU_IVF_PQ",
    "GPU_BRUTE_FORCE",
)
MONITORS = (
    "mmd",
    "neighbours",
    "classifier",
    "retrieval",
    "ood",
    "top1",
    "evidently_mmd",
    "evidently_model",
    "evidently_ratio",
    "evidently_distance",
)

# Monitors that can compute their statistic on the page's shared splits (monitors.Page).
PAGE_MONITORS = ("mmd", "retrieval", "neighbours", "top1")
PAGE_DEFAULT = ("retrieval", "neighbours")


def _loopback(value: str) -> str:
    if value == "localhost":
        return value
    try:
        if ipaddress.ip_address(value).is_loopback:
            return value
    except ValueError:
        pass
    raise ValueError(
        "must be a loopback address such as 127.0.0.1; "
        "Milvus Lite has no authentication, so it is never exposed beyond this host"
    )


class MilvusSettings(Section):
    uri: str = Field(
        "lite",
        description="'lite' for the local Milvus Lite server of [lite], or "
        "http://host:19530 for Milvus standalone/cluster",
    )
    db_name: str = Field("", description="database name; empty for the default database")
    user: str = Field("", description="user name for Milvus authentication")
    token: SecretStr | None = Field(None, description="API token; set EMBGUARD_MILVUS__TOKEN or token_file")
    token_file: Path | None = Field(None, description="file holding only the API token")
    password: SecretStr | None = Field(None, description="password; set EMBGUARD_MILVUS__PASSWORD or password_file")
    password_file: Path | None = Field(None, description="file holding only the password")
    timeout_s: PositiveFloat = Field(10.0, description="per-call timeout in seconds")
    alias_cache_s: Annotated[StrictFloat, Field(ge=0, le=60, allow_inf_nan=False)] = Field(
        0.5,
        description="how long embguard.Client reuses an alias -> collection/model lookup for searches; "
        "at most swap.grace_s (0 resolves on every search)",
    )

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_uri(cls, data: Any) -> Any:
        # Credentials inside the URI would be printed wherever the URI is (status, /readyz, logs): they move
        # to user/password, which are secrets, and the URI keeps only where Milvus is.
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            return data
        uri, user, password = split_userinfo(data["uri"])
        if uri == data["uri"]:
            return data
        if data.get("token") or data.get("password") or (data.get("user") and data["user"] != user):
            raise ValueError(
                "milvus.uri holds credentials and milvus.user/password/token are set too; keep one "
                "(preferably EMBGUARD_MILVUS__USER and EMBGUARD_MILVUS__PASSWORD)"
            )
        return {**data, "uri": uri, "user": user, "password": SecretStr(password) if password else None}

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if v == "lite" or v.startswith(("http://", "https://", "tcp://", "unix:")):
            return v
        raise ValueError("must be 'lite' or a URI such as http://127.0.0.1:19530")


class LiteSettings(Section):
    data_dir: Path = Field(Path(".embguard/milvus"), description="Milvus Lite data directory")
    host: str = Field("127.0.0.1", description="bind address; loopback only")
    port: Port = Field(19530, description="gRPC port of the local Milvus Lite server")
    start_timeout_s: PositiveFloat = Field(60.0, description="how long `lite start` waits for the server")

    _host = field_validator("host")(classmethod(lambda cls, v: _loopback(v)))


class StateSettings(Section):
    dir: Path = Field(Path(".embguard/state"), description="references, locks, checkpoints and pid files")


class CollectionSettings(Section):
    name: str = Field(description="alias (or collection) the application searches")
    id_field: str = Field("id", description="primary key field")
    vector_field: str = Field("vector", description="dense vector field")
    text_field: str | None = Field("text", description="field with the document text; needed to reindex")
    timestamp_field: str | None = Field(None, description="insert-time field for recent-document samples")
    metric_type: Literal["COSINE", "IP", "L2"] = Field("COSINE", description="vector metric")
    index_type: str = Field("HNSW", description=f"one of {', '.join(INDEX_TYPES)}")
    index_params: dict[str, int | float | str] = Field(default_factory=dict, description="index build params")

    @field_validator("index_type")
    @classmethod
    def _index(cls, v: str) -> str:
        if v.upper() not in INDEX_TYPES:
            raise ValueError(f"must be one of {', '.join(INDEX_TYPES)}")
        return v.upper()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or not (v[0].isalpha() or v[0] == "_") or not all(c.isalnum() or c == "_" for c in v):
            raise ValueError("must start with a letter or '_' and hold only letters, digits and '_' (Milvus names)")
        return v

    def require_text_field(self) -> str:
        """The text field; re-embedding (retrain, swap, labels) cannot work without one."""
        if not self.text_field:
            raise ConfigError(
                f"collection {self.name!r} has no text_field; embguard re-embeds documents from their "
                "stored text: set collections[].text_field"
            )
        return self.text_field


class SamplingSettings(Section):
    query_rate: Fraction = Field(0.1, description="fraction of searches the client tap records")
    store_query_text: StrictBool = Field(False, description="record query text (else a hash of it)")
    tap_buffer_size: PositiveInt = Field(10_000, description="tap buffer rows; beyond it rows are dropped")
    tap_flush_interval_s: PositiveFloat = Field(1.0, description="tap background flush interval")
    window_s: Seconds = Field(3600, description="length of a query sample window in seconds")
    reference_window_s: Seconds = Field(
        86400,
        description="span of tapped queries `baseline capture` freezes as the reference: a whole daily cycle, so "
        "an hour's topic mix is compared with the day's (benchmarks/results/traffic_schedule.md)",
    )
    doc_sample_size: PositiveInt = Field(2000, description="documents per document sample")
    tap_max_rows: PositiveInt = Field(1_000_000, description="tap collection row cap")
    tap_max_age_s: Seconds = Field(7 * 86400, description="tap rows older than this are pruned")
    feedback_max_age_s: Seconds = Field(90 * 86400, description="feedback older than this is pruned")


class ScheduleSettings(Section):
    sample_interval_s: Seconds = Field(300, description="how often windows are sampled")
    check_interval_s: Seconds = Field(
        3600,
        description="how often monitors run; equal to sampling.window_s, each check sees fresh queries, so "
        "drift.consecutive counts independent windows (benchmarks/results/traffic_schedule.md)",
    )
    prune_interval_s: Seconds = Field(3600, description="how often tap/feedback are pruned")
    retrain_interval_s: Seconds = Field(3600, description="how often the retrain policy is evaluated")


class DriftSettings(Section):
    alpha: Annotated[StrictFloat, Field(gt=0, lt=0.5, allow_inf_nan=False)] = Field(
        0.01, description="significance of each test"
    )
    consecutive: PositiveInt = Field(2, description="drifted checks in a row before the sequential alarm")
    ood_quantile: Annotated[StrictFloat, Field(gt=0.5, lt=1, allow_inf_nan=False)] = Field(
        0.95, description="OOD threshold quantile"
    )
    ood_k: PositiveInt = Field(10, description="k of the k-NN OOD score")
    min_window: Annotated[StrictInt, Field(ge=10, le=MAX_INT)] = Field(50, description="smallest window that is tested")
    monitors: tuple[str, ...] = Field(("mmd", "retrieval", "neighbours", "ood", "top1"), description="monitors to run")
    page: tuple[str, ...] = Field(
        PAGE_DEFAULT,
        description="monitors whose shared permutation null makes the page, of those in drift.monitors (default: "
        "retrieval and neighbours if run, else all that can); others are reported, not paged (docs/monitors.md)",
    )
    dedup_queries: StrictBool = Field(
        True,
        description="test each distinct query once per window (and per window-long piece of the reference); "
        "bursts of one repeated query otherwise page (benchmarks/results/traffic.md)",
    )

    @field_validator("monitors")
    @classmethod
    def _monitors(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [m for m in v if m not in MONITORS]
        if bad:
            raise ValueError(f"unknown monitor(s) {', '.join(map(repr, bad))}; allowed: {', '.join(MONITORS)}")
        return v

    @model_validator(mode="after")
    def _page(self) -> DriftSettings:
        if "page" not in self.model_fields_set:  # the default members that run, else every one that can join
            page = [m for m in PAGE_DEFAULT if m in self.monitors] or [m for m in self.monitors if m in PAGE_MONITORS]
            object.__setattr__(self, "page", tuple(page))
        bad = [m for m in self.page if m not in PAGE_MONITORS or m not in self.monitors]
        if bad:
            raise ValueError(
                f"drift.page: {', '.join(map(repr, bad))} must be in drift.monitors and can share the page's "
                f"permutation null ({', '.join(PAGE_MONITORS)})"
            )
        return self


class MetricsSettings(Section):
    host: str = Field("127.0.0.1", description="bind address of /metrics, /healthz, /readyz")
    port: Port = Field(9464, description="port of the exporter")


class Settings(Section):
    milvus: MilvusSettings = MilvusSettings()
    lite: LiteSettings = LiteSettings()
    model: ModelSettings = ModelSettings()
    state: StateSettings = StateSettings()
    collections: tuple[CollectionSettings, ...] = ()
    sampling: SamplingSettings = SamplingSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    drift: DriftSettings = DriftSettings()
    metrics: MetricsSettings = MetricsSettings()
    proxy: ProxySettings = ProxySettings()
    endpoint: EndpointSettings = EndpointSettings()
    alerts: tuple[AlertTarget, ...] = ()
    retrain: RetrainSettings = RetrainSettings()
    swap: SwapSettings = SwapSettings()
    source: str = Field("defaults", exclude=True, description="where the settings came from")

    @model_validator(mode="after")
    def _unique(self) -> Settings:
        for what, items in (("collections", self.collections), ("alerts", self.alerts)):
            names = [i.name for i in items]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{what}: duplicate name(s) {', '.join(map(repr, dup))}; names must be unique")
        if self.milvus.alias_cache_s > self.swap.grace_s:
            # A search may use a cached alias for alias_cache_s after a switch; the old collection keeps
            # getting dual writes for grace_s, so it must outlive every cached lookup.
            raise ValueError(
                f"milvus.alias_cache_s = {self.milvus.alias_cache_s} must not exceed swap.grace_s = "
                f"{self.swap.grace_s}; lower the cache or raise the grace period"
            )
        return self

    def check_alerts(self) -> None:
        """What `embguard serve` needs of ``[[alerts]]`` (see :func:`check_alert_targets`)."""
        check_alert_targets(self.alerts)

    def with_milvus_uri(self, uri: str) -> Settings:
        """These settings pointed at ``uri`` (``Client(settings, uri=...)``). Credentials inside it move to
        ``milvus.user``/``password`` exactly as for ``milvus.uri`` in the config; a bad URI is InvalidInput."""
        _, _, password = split_userinfo(uri) if isinstance(uri, str) else ("", "", "")
        try:
            milvus = MilvusSettings.model_validate({**dict(self.milvus), "uri": uri})
        except ValidationError as exc:
            why = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            shown = redact_uri(uri) if isinstance(uri, str) else f"<{type(uri).__name__}>"
            raise InvalidInput(scrub(f"uri {shown!r:.200}: {why}", [password] if len(password) >= 3 else [])) from None
        return self.model_copy(update={"milvus": milvus})

    @property
    def milvus_uri(self) -> str:
        """The URI clients connect to: the Lite server's loopback address when ``milvus.uri = 'lite'``."""
        if self.milvus.uri == "lite":
            return f"http://{self.lite.host}:{self.lite.port}"
        return self.milvus.uri

    def find_collection(self, name: str) -> CollectionSettings | None:
        """The ``[[collections]]`` entry for ``name``; ``None`` when it is not configured."""
        return next((c for c in self.collections if c.name == name), None)

    def collection(self, name: str) -> CollectionSettings:
        """The ``[[collections]]`` entry for ``name``; a ConfigError naming the watched ones otherwise."""
        found = self.find_collection(name)
        if found is not None:
            return found
        known = ", ".join(c.name for c in self.collections) or "none"
        raise ConfigError(f"collection {name!r} is not watched (watched: {known}); add a [[collections]] entry")
