"""Loading settings: one TOML file plus ``EMBGUARD_*`` environment overrides, read once into a frozen object.

Environment overrides use ``EMBGUARD_<SECTION>__<KEY>`` (double underscore between levels), for example
``EMBGUARD_MILVUS__URI=http://milvus:19530`` or ``EMBGUARD_DRIFT__ALPHA=0.05``. Lists take TOML syntax:
``EMBGUARD_COLLECTIONS='[{name="docs"}]'``. Secrets (Milvus token and password, webhook URLs and keys) are
never read from the file itself: they come from an environment variable or a file that holds only the
secret, and they are masked wherever settings are printed.

The models themselves live in :mod:`embguard.settings`; this module re-exports them, so
``from embguard.config.loader import Settings`` is the one import callers need.
"""

from __future__ import annotations

import os
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from embguard.config.alert_targets import alert_url_problem
from embguard.config.credentials import (
    ENV_PREFIX,
    SECRET_KEYS,
    reject_file_secrets,
    resolve_secrets,
    scrub,
    secret_values,
)
from embguard.config.settings import (
    CONFIG_ENV,
    DEFAULT_CONFIG_NAME,
    Settings,
)
from embguard.errors import ConfigError


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
        if any(key.endswith(s) for _, s in SECRET_KEYS):
            shown = "<secret>"
        msg = err["msg"].removeprefix("Value error, ")
        problems.append(f"{key} = {shown}: {msg}")
    return ConfigError(scrub(f"invalid config ({source}): " + "; ".join(problems), secrets or []))


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        args = getattr(ann, "__args__", ())
        sub = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if sub is None:
            return None
        model = sub
    return model


def _field_is_text(section: str, key: str) -> bool:
    model = _section_model((section,))
    field = model.model_fields.get(key) if model else None
    if field is None:
        return False
    text_types = (str, Path, SecretStr)
    ann = field.annotation
    if ann in text_types:
        return True
    # Only an optional text (``str | None``) is text; ``tuple[str, ...]`` has str among its arguments too, but
    # its value is a TOML array and must be parsed.
    return get_origin(ann) in (Union, types.UnionType) and any(a in text_types for a in get_args(ann))


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
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


def _absolutise(settings: Settings, base: Path) -> Settings:
    def fix(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    return settings.model_copy(
        update={
            "lite": settings.lite.model_copy(update={"data_dir": fix(settings.lite.data_dir)}),
            "model": settings.model.model_copy(update={"store_dir": fix(settings.model.store_dir)}),
            "state": settings.state.model_copy(update={"dir": fix(settings.state.dir)}),
        }
    )


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
            raise ConfigError(
                f"config file {str(cfg_path)!r} does not exist; pass --config PATH or set "
                f"{CONFIG_ENV}, or run without one to use the defaults"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} cannot be read: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {str(cfg_path)!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        reject_file_secrets(data, cfg_path)
        source = str(cfg_path)
    env = _env_overrides(environ)
    if env:
        source += " + EMBGUARD_* environment"
    raw = _merge(data, env)
    if "source" in raw:
        raise ConfigError(f"unknown key 'source' in {source}")
    resolve_secrets(raw, environ)
    try:
        settings = Settings.model_validate({**raw, "source": source})
    except ValidationError as exc:
        raise _format(exc, source, secret_values(raw, environ)) from None
    # A webhook URL is read from the environment or a file, so it is checked here, by the same function the
    # sender uses: `config check` refuses what serve would refuse. (An unset *_env variable is not a load error:
    # only serve needs it; `config check` and the sender report it through Settings.check_alerts.)
    bad_urls = [p for t in settings.alerts if (p := alert_url_problem(t))]
    if bad_urls:
        raise ConfigError(scrub(f"invalid config ({source}): " + "; ".join(bad_urls), secret_values(raw, environ)))
    base = cfg_path.parent.resolve() if cfg_path is not None else Path.cwd()
    return _absolutise(settings, base)


_TYPE_NAMES: dict[Any, str] = {
    str: "str",
    int: "int",
    float: "float",
    bool: "bool",
    Path: "path",
    SecretStr: "secret",
    type(None): "unset",
}


def _type_name(annotation: Any) -> str:
    """A settings field's type as a reader writes it: ``int``, ``list[str]``, ``tuple[int, int]``, ``one of: a, b``,
    ``path (optional)``; constraints (Strict, bounds) are left to the meaning column. Never a ``|`` (the reference is
    a Markdown table)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in args)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        text = " or ".join(_type_name(a) for a in present)
        return f"{text} (optional)" if len(present) < len(args) else text
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            inner = _type_name(args[0])
            return f"list, each {inner}" if inner.startswith("one of: ") else f"list[{inner}]"
        return "tuple[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin in (list, set, frozenset):
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return f"table[{', '.join(_type_name(a) for a in args)}]" if args else "table"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation)).replace("|", " or ")


def reference_markdown() -> str:
    """The configuration reference, generated from the settings classes (docs/configuration.md is built from it)."""
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for section, field in Settings.model_fields.items():
        if section == "source":
            continue
        ann = field.annotation
        model = (
            ann
            if isinstance(ann, type) and issubclass(ann, BaseModel)
            else next(
                (a for a in getattr(ann, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)), None
            )
        )
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
