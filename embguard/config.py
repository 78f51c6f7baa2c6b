"""Settings: one TOML file plus ``EMBGUARD_*`` environment overrides, read once into a frozen object.

Environment overrides use ``EMBGUARD_<SECTION>__<KEY>`` (double underscore between levels), for example
``EMBGUARD_MILVUS__URI=http://milvus:19530`` or ``EMBGUARD_DRIFT__ALPHA=0.05``. Lists take TOML syntax:
``EMBGUARD_COLLECTIONS='[{name="docs"}]'``. Secrets (Milvus token and password, webhook URLs and keys) are
never read from the file itself: they come from an environment variable or a file that holds only the
secret, and they are masked wherever settings are printed.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

ENV_PREFIX = "EMBGUARD_"
CONFIG_ENV = "EMBGUARD_CONFIG"
DEFAULT_CONFIG_NAME = "embguard.toml"

# Index types Milvus knows. Lite builds only some of them; the Milvus layer refuses the rest up front.
INDEX_TYPES = ("AUTOINDEX", "FLAT", "HNSW", "HNSW_SQ", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "DISKANN", "SCANN",
               "GPU_CAGRA", "GPU_IVF_FLAT", "GPU_IVF_PQ", "GPU_BRUTE_FORCE")
MONITORS = ("mmd", "classifier", "retrieval", "ood", "top1", "evidently_mmd", "evidently_model",
            "evidently_ratio", "evidently_distance")

# Bounds that keep every number usable downstream: inf/NaN are never a setting, and an int or float beyond
# these overflows timers, sleeps and Milvus limits (an interval of 1e17 s raised OverflowError in the scheduler).
MAX_INT = 2**31 - 1
MAX_SECONDS = 10 * 366 * 86400
PositiveFloat = Annotated[StrictFloat, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
PositiveInt = Annotated[StrictInt, Field(gt=0, le=MAX_INT)]
Seconds = Annotated[StrictInt, Field(gt=0, le=MAX_SECONDS)]
Port = Annotated[StrictInt, Field(ge=1, le=65535)]
Fraction = Annotated[StrictFloat, Field(gt=0, le=1, allow_inf_nan=False)]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _loopback(value: str) -> str:
    if value == "localhost":
        return value
    try:
        if ipaddress.ip_address(value).is_loopback:
            return value
    except ValueError:
        pass
    raise ValueError("must be a loopback address such as 127.0.0.1; "
                     "Milvus Lite has no authentication, so it is never exposed beyond this host")


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*)@")


def redact_uri(text: str) -> str:
    """``text`` with the credentials of every URI in it masked: ``http://user:pass@host`` ->
    ``http://user:***@host`` (``http://***@host`` when there is no user name). The one helper every
    output of a URI goes through: settings, status, /readyz, logs and error messages."""

    def mask(m: re.Match[str]) -> str:
        user, sep, _ = m.group("userinfo").partition(":")
        return f"{m.group('scheme')}{user}:***@" if sep and user else f"{m.group('scheme')}***@"

    return _USERINFO.sub(mask, str(text))


def _split_userinfo(uri: str) -> tuple[str, str, str]:
    """``(uri without credentials, user, password)``; credentials are percent-decoded."""
    m = _USERINFO.match(uri)
    if m is None:
        return uri, "", ""
    user, _, password = m.group("userinfo").partition(":")
    return m.group("scheme") + uri[m.end():], unquote(user), unquote(password)


class MilvusSettings(_Section):
    uri: str = Field("lite", description="'lite' for the local Milvus Lite server of [lite], or "
                                         "http://host:19530 for Milvus standalone/cluster")
    db_name: str = Field("", description="database name; empty for the default database")
    user: str = Field("", description="user name for Milvus authentication")
    token: SecretStr | None = Field(None, description="API token; set EMBGUARD_MILVUS__TOKEN or token_file")
    token_file: Path | None = Field(None, description="file holding only the API token")
    password: SecretStr | None = Field(None, description="password; set EMBGUARD_MILVUS__PASSWORD or password_file")
    password_file: Path | None = Field(None, description="file holding only the password")
    timeout_s: PositiveFloat = Field(10.0, description="per-call timeout in seconds")
    alias_cache_s: Annotated[StrictFloat, Field(ge=0, le=60, allow_inf_nan=False)] = Field(
        0.5, description="how long embguard.Client reuses an alias -> collection/model lookup for searches; "
                         "at most swap.grace_s (0 resolves on every search)")

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_uri(cls, data: Any) -> Any:
        # Credentials inside the URI would be printed wherever the URI is (status, /readyz, logs): they move
        # to user/password, which are secrets, and the URI keeps only where Milvus is.
        if not isinstance(data, dict) or not isinstance(data.get("uri"), str):
            return data
        uri, user, password = _split_userinfo(data["uri"])
        if uri == data["uri"]:
            return data
        if data.get("token") or data.get("password") or (data.get("user") and data["user"] != user):
            raise ValueError("milvus.uri holds credentials and milvus.user/password/token are set too; keep one "
                             "(preferably EMBGUARD_MILVUS__USER and EMBGUARD_MILVUS__PASSWORD)")
        return {**data, "uri": uri, "user": user, "password": SecretStr(password) if password else None}

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if v == "lite" or v.startswith(("http://", "https://", "tcp://", "unix:")):
            return v
        raise ValueError("must be 'lite' or a URI such as http://127.0.0.1:19530")


class LiteSettings(_Section):
    data_dir: Path = Field(Path(".embguard/milvus"), description="Milvus Lite data directory")
    host: str = Field("127.0.0.1", description="bind address; loopback only")
    port: Port = Field(19530, description="gRPC port of the local Milvus Lite server")
    start_timeout_s: PositiveFloat = Field(60.0, description="how long `lite start` waits for the server")

    _host = field_validator("host")(classmethod(lambda cls, v: _loopback(v)))


class ModelSettings(_Section):
    default: str = Field("default", description="model spec: 'default' (all-MiniLM-L6-v2 shipped offline), "
                                                "a local sentence-transformers directory, or a registry version")
    store_dir: Path = Field(Path(".embguard/models"), description="model registry directory")
    device: Literal["cpu", "cuda", "mps"] = Field("cpu", description="torch device for encoding and training")
    batch_size: PositiveInt = Field(64, description="encoding batch size")


class StateSettings(_Section):
    dir: Path = Field(Path(".embguard/state"), description="references, locks, checkpoints and pid files")


class CollectionSettings(_Section):
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


class SamplingSettings(_Section):
    query_rate: Fraction = Field(0.1, description="fraction of searches the client tap records")
    store_query_text: StrictBool = Field(False, description="record query text (else a hash of it)")
    tap_buffer_size: PositiveInt = Field(10_000, description="tap buffer rows; beyond it rows are dropped")
    tap_flush_interval_s: PositiveFloat = Field(1.0, description="tap background flush interval")
    window_s: Seconds = Field(3600, description="length of a query sample window in seconds")
    doc_sample_size: PositiveInt = Field(2000, description="documents per document sample")
    tap_max_rows: PositiveInt = Field(1_000_000, description="tap collection row cap")
    tap_max_age_s: Seconds = Field(7 * 86400, description="tap rows older than this are pruned")
    feedback_max_age_s: Seconds = Field(90 * 86400, description="feedback older than this is pruned")


class ScheduleSettings(_Section):
    sample_interval_s: Seconds = Field(300, description="how often windows are sampled")
    check_interval_s: Seconds = Field(300, description="how often monitors run")
    prune_interval_s: Seconds = Field(3600, description="how often tap/feedback are pruned")
    retrain_interval_s: Seconds = Field(3600, description="how often the retrain policy is evaluated")


class DriftSettings(_Section):
    alpha: Annotated[StrictFloat, Field(gt=0, lt=0.5, allow_inf_nan=False)] = Field(
        0.01, description="significance of each test")
    consecutive: PositiveInt = Field(3, description="drifted checks in a row before the sequential alarm")
    ood_quantile: Annotated[StrictFloat, Field(gt=0.5, lt=1, allow_inf_nan=False)] = Field(
        0.95, description="OOD threshold quantile")
    ood_k: PositiveInt = Field(10, description="k of the k-NN OOD score")
    min_window: Annotated[StrictInt, Field(ge=10, le=MAX_INT)] = Field(
        50, description="smallest window that is tested")
    monitors: tuple[str, ...] = Field(("mmd", "retrieval", "ood", "top1"), description="monitors to run")
    dedup_queries: StrictBool = Field(
        True, description="test each distinct query once per window (and per window-long piece of the reference); "
                          "bursts of one repeated query otherwise page (benchmarks/results/traffic.md)")

    @field_validator("monitors")
    @classmethod
    def _monitors(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [m for m in v if m not in MONITORS]
        if bad:
            raise ValueError(f"unknown monitor(s) {', '.join(map(repr, bad))}; allowed: {', '.join(MONITORS)}")
        return v


class MetricsSettings(_Section):
    host: str = Field("127.0.0.1", description="bind address of /metrics, /healthz, /readyz")
    port: Port = Field(9464, description="port of the exporter")


class AlertTarget(_Section):
    name: str = Field(description="a name for logs and metrics")
    kind: Literal["slack", "pagerduty", "webhook"] = Field(description="payload format")
    url_env: str | None = Field(None, description="environment variable holding the webhook URL")
    url_file: Path | None = Field(None, description="file holding only the webhook URL")
    url: SecretStr | None = Field(None, description="resolved URL (set through url_env/url_file)")
    routing_key_env: str | None = Field(None, description="PagerDuty routing key variable")
    routing_key: SecretStr | None = Field(None, description="resolved PagerDuty routing key")
    secret_env: str | None = Field(None, description="HMAC-SHA256 signing secret variable (webhook)")
    secret: SecretStr | None = Field(None, description="resolved HMAC secret")
    cooldown_s: Annotated[StrictInt, Field(ge=0, le=MAX_SECONDS)] = Field(
        3600, description="minimum time between repeats")
    timeout_s: Annotated[StrictFloat, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        5.0, description="per-request timeout of a delivery to this target (each retry gets its own)")


class RetrainSettings(_Section):
    sustained_checks: PositiveInt = Field(3, description="drifted checks in a row before retraining")
    min_feedback_pairs: PositiveInt = Field(200, description="feedback pairs needed since the last model")
    gate_margin: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.01, description="nDCG@10 gain a candidate needs")
    guard_tolerance: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.02, description="allowed guard-set loss")
    auto_approve: StrictBool = Field(False, description="swap without a human (off by default)")
    epochs: PositiveFloat = Field(1.0, description="fine-tuning epochs over the feedback pairs")
    batch_size: Annotated[StrictInt, Field(ge=2, le=MAX_INT)] = Field(
        32, description="training batch (in-batch negatives)")
    learning_rate: PositiveFloat = Field(2e-5, description="fine-tuning learning rate")
    held_out_fraction: Annotated[StrictFloat, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        0.3, description="share of labelled queries kept out of training for the gate")
    min_held_out: PositiveInt = Field(30, description="fewest held-out queries the gate accepts")
    hard_negatives: StrictBool = Field(True, description="mine hard negatives from the live index")
    guard_queries: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        200, description="general-domain guard queries (forgetting check); 0 disables the guard")
    timeout_s: Seconds = Field(6 * 3600, description="a training subprocess running longer is stopped")
    gate_max_docs: PositiveInt = Field(
        20_000, description="above this many documents the gate ranks a pooled sub-corpus (relevant documents, "
                            "both models' top gate_pool_k from the live index, gate_distractors random ones) "
                            "instead of re-encoding the whole corpus with the candidate")
    gate_pool_k: PositiveInt = Field(100, description="live-index neighbours pooled per held-out query and model")
    gate_distractors: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        5_000, description="random documents added to the gate's pooled sub-corpus")


class SwapSettings(_Section):
    batch_size: PositiveInt = Field(256, description="documents re-embedded per backfill batch")
    min_overlap: Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] = Field(
        0.1, description="smallest mean top-10 overlap between old and new collection the shadow check accepts")
    shadow_queries: PositiveInt = Field(100, description="queries the shadow check runs against both collections")
    grace_s: Annotated[StrictFloat, Field(ge=0, le=MAX_SECONDS, allow_inf_nan=False)] = Field(
        5.0, description="wait after the alias switch before the old collection stops getting dual writes")
    retention_s: Annotated[StrictInt, Field(ge=0, le=MAX_INT)] = Field(
        7 * 86400, description="`embguard gc` keeps collections no alias points to for this long")
    engine: Literal["local", "ray"] = Field(
        "local", description="who re-embeds the backfill: this process ('local') or a Ray cluster ('ray', needs "
                             "`pip install embguard[ray]`)")
    ray_address: str = Field(
        "", description="Ray cluster for engine='ray': '' starts a local Ray on this machine, 'auto' joins the "
                        "cluster this machine belongs to, or a 'ray://host:10001' address")
    ray_workers: Annotated[StrictInt, Field(ge=0)] = Field(
        0, description="encoder actors for engine='ray' (each loads the candidate once); 0 = one per GPU when "
                       "model.device='cuda', else one per CPU of the cluster")


class Settings(_Section):
    milvus: MilvusSettings = MilvusSettings()
    lite: LiteSettings = LiteSettings()
    model: ModelSettings = ModelSettings()
    state: StateSettings = StateSettings()
    collections: tuple[CollectionSettings, ...] = ()
    sampling: SamplingSettings = SamplingSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    drift: DriftSettings = DriftSettings()
    metrics: MetricsSettings = MetricsSettings()
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
            raise ValueError(f"milvus.alias_cache_s = {self.milvus.alias_cache_s} must not exceed swap.grace_s = "
                             f"{self.swap.grace_s}; lower the cache or raise the grace period")
        return self

    @property
    def milvus_uri(self) -> str:
        """The URI clients connect to: the Lite server's loopback address when ``milvus.uri = 'lite'``."""
        if self.milvus.uri == "lite":
            return f"http://{self.lite.host}:{self.lite.port}"
        return self.milvus.uri

    def collection(self, name: str) -> CollectionSettings:
        for c in self.collections:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.collections) or "none"
        raise ConfigError(f"collection {name!r} is not watched (watched: {known}); add a [[collections]] entry")


# Keys that hold secrets: the file may point at them (*_file / *_env) but never contain them.
_SECRET_KEYS = {("milvus", "token"), ("milvus", "password"), ("alerts", "url"), ("alerts", "routing_key"),
                ("alerts", "secret")}


def _describe_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _shown(value: Any) -> str:
    """How an invalid input is quoted in an error: scalars (and lists of them) only; a section or a whole
    settings object is never printed, since it may carry secrets resolved from the environment."""
    scalar = (str, int, float, bool, type(None))
    if isinstance(value, scalar) or (isinstance(value, (list, tuple)) and all(isinstance(v, scalar) for v in value)):
        text = repr(value)
        return text if len(text) <= 200 else text[:199] + "…"
    return f"<{type(value).__name__}>"


def _secret_values(raw: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Every secret string the raw settings and the environment hold, to be scrubbed from messages."""
    out: list[str] = []

    def add(v: Any) -> None:
        text = v.get_secret_value() if isinstance(v, SecretStr) else v
        if isinstance(text, str) and len(text) >= 3:
            out.append(text)
            password = _split_userinfo(text)[2]
            if len(password) >= 3:
                out.append(password)

    milvus = raw.get("milvus")
    if isinstance(milvus, dict):
        for key in ("token", "password"):
            add(milvus.get(key))
        uri = milvus.get("uri")
        if isinstance(uri, str):
            add(_split_userinfo(uri)[2])
    alerts = raw.get("alerts")
    for target in alerts if isinstance(alerts, list) else []:
        if isinstance(target, dict):
            for key in ("url", "routing_key", "secret"):
                add(target.get(key))
                var = target.get(f"{key}_env")
                if isinstance(var, str):
                    add(environ.get(var))
    for name, value in environ.items():
        low = name.lower()
        if name.startswith(ENV_PREFIX) and any(w in low for w in ("token", "password", "secret", "url", "key")):
            add(value)
    return sorted(set(out), key=len, reverse=True)


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "<secret>")
    return redact_uri(text)


def _format(exc: ValidationError, source: str, secrets: list[str] | None = None) -> ConfigError:
    problems = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in ("function-after",))
        key = _describe_loc(loc) or "settings"
        if err["type"] == "extra_forbidden":
            parent = _describe_loc(loc[:-1])
            model = _section_model(loc[:-1])
            allowed = ", ".join(k for k in model.model_fields if k != "source") if model else "?"
            problems.append(f"unknown key {key!r}{f' in [{parent}]' if parent else ''}; allowed: {allowed}")
            continue
        value = err.get("input")
        shown = "<missing>" if err["type"] == "missing" else _shown(value)
        if any(key.endswith(s) for _, s in _SECRET_KEYS):
            shown = "<secret>"
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{key} = {shown}: {msg}")
    return ConfigError(_scrub(f"invalid config ({source}): " + "; ".join(problems), secrets or []))


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        model = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return None
    return model


def _field_is_text(section: str, key: str) -> bool:
    model = _section_model((section,))
    field = model.model_fields.get(key) if model else None
    if field is None:
        return False
    text_types = (str, Path, SecretStr)
    ann = field.annotation
    return ann in text_types or any(a in text_types for a in getattr(ann, "__args__", ()))


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if len(path) == 1 and path[0] not in Settings.model_fields:
            continue  # EMBGUARD_SOMETHING unrelated to settings (e.g. EMBGUARD_LOG_LEVEL)
        value: Any = raw
        if not (len(path) == 2 and _field_is_text(path[0], path[1])):
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another EMBGUARD_* variable")
        node[path[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def _read_secret_file(path: Path, key: str) -> SecretStr:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{key} = {str(path)!r}: cannot read the secret file ({exc.strerror}); "
                          "check the path and its permissions") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{key} = {str(path)!r}: the secret file is not UTF-8 text; write the secret as "
                          "plain text") from None
    if not text:
        raise ConfigError(f"{key} = {str(path)!r}: the secret file is empty")
    return SecretStr(text)


def _resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    milvus = raw.get("milvus", {})
    if isinstance(milvus, dict):
        for key in ("token", "password"):
            ref = milvus.get(f"{key}_file")
            if ref and not milvus.get(key):
                milvus[key] = _read_secret_file(Path(ref), f"milvus.{key}_file")
    for i, target in enumerate(raw.get("alerts", []) or []):
        if not isinstance(target, dict):
            continue
        for key in ("url", "routing_key", "secret"):
            var = target.get(f"{key}_env")
            if var:
                if var not in environ:
                    raise ConfigError(f"alerts[{i}].{key}_env = {var!r}: environment variable {var} is not set")
                target[key] = SecretStr(environ[var])
        if target.get("url_file"):
            target["url"] = _read_secret_file(Path(target["url_file"]), f"alerts[{i}].url_file")


def _reject_file_secrets(data: dict[str, Any], path: Path) -> None:
    for section, key in _SECRET_KEYS:
        entries = data.get(section)
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and key in entry:
                hint = (f"set EMBGUARD_{section.upper()}__{key.upper()} or {section}.{key}_file" if section == "milvus"
                        else f"use {key}_env = \"VAR\"" + (" or url_file" if key == "url" else ""))
                raise ConfigError(f"{section}.{key} in {str(path)!r}: secrets are not read from the config file; {hint}")


def _absolutise(settings: Settings, base: Path) -> Settings:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    return settings.model_copy(update={
        "lite": settings.lite.model_copy(update={"data_dir": fix(settings.lite.data_dir)}),
        "model": settings.model.model_copy(update={"store_dir": fix(settings.model.store_dir)}),
        "state": settings.state.model_copy(update={"dir": fix(settings.state.dir)}),
    })


def find_config(explicit: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The config file to read: ``--config``, else ``$EMBGUARD_CONFIG``, else ``./embguard.toml`` if present."""
    environ = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the config file (if any) and the environment once, validate, and return frozen settings.

    Relative paths in the file are taken relative to the file's directory; without a file, to the
    current directory.
    """
    environ = os.environ if environ is None else environ
    cfg_path = find_config(path, environ)
    data: dict[str, Any] = {}
    source = "defaults"
    if cfg_path is not None:
        try:
            data = tomllib.loads(cfg_path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {str(cfg_path)!r} does not exist; pass --config PATH or set "
                              f"{CONFIG_ENV}, or run without one to use the defaults") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} is not UTF-8 text (byte {exc.start}); save it as "
                              "UTF-8") from None
        _reject_file_secrets(data, cfg_path)
        source = str(cfg_path)
    env = _env_overrides(environ)
    if env:
        source += " + EMBGUARD_* environment"
    raw = _merge(data, env)
    if "source" in raw:
        raise ConfigError(f"unknown key 'source' in {source}")
    _resolve_secrets(raw, environ)
    try:
        settings = Settings.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise _format(exc, source, _secret_values(raw, environ)) from None
    base = cfg_path.parent.resolve() if cfg_path is not None else Path.cwd()
    return _absolutise(settings, base)


def masked(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by '********' (or None when unset)."""
    data = settings.model_dump(mode="python", exclude_none=False)

    def walk(node: Any) -> Any:
        if isinstance(node, SecretStr):
            return "********"
        if isinstance(node, str):
            return redact_uri(node)
        if isinstance(node, Path):
            return str(node)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if v is not None}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        return node

    return walk(data)


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "").replace("pathlib.", "").replace("pydantic.types.", "")
    for long, short in (("<class '", ""), ("'>", ""), ("Annotated[", ""), ("StrictInt", "int"),
                        ("StrictFloat", "float"), ("StrictBool", "bool"), ("SecretStr", "secret"),
                        ("embguard.config.", "")):
        text = text.replace(long, short)
    text = text.split(", Strict(")[0].split(", FieldInfo")[0].split(", Gt(")[0].split(", Ge(")[0].split(", Lt(")[0]
    return text.replace(" | ", " or ").replace("|", " or ")


def reference_markdown() -> str:
    """The configuration reference, generated from the settings classes (the README embeds it)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for section, field in Settings.model_fields.items():
        if section == "source":
            continue
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else \
            next((a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            continue
        prefix = f"[[{section}]]" if section in ("collections", "alerts") else f"[{section}]"
        for key, f in model.model_fields.items():
            if isinstance(f.default, (str, int, float, bool, Path, tuple)) and f.default is not None:
                default = f"`{list(f.default) if isinstance(f.default, tuple) else f.default}`"
            elif f.is_required():
                default = "required"
            else:
                default = "`{}`" if f.default_factory is dict else "unset"
            lines.append(f"| `{prefix} {key}` | {_type_name(f.annotation)} | {default} | {f.description or ''} |")
    return "\n".join(lines) + "\n"
