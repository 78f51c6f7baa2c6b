"""Credentials in settings: where secrets come from, and the places they must never appear.

Secrets (the Milvus token and password, webhook URLs, routing keys and signing secrets) are read from an
environment variable or a file holding only the secret, never from the config file; every URI printed
anywhere goes through :func:`redact_uri`; error messages are scrubbed of every secret value in play.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

from pydantic import BaseModel, SecretStr

from embguard.errors import ConfigError

ENV_PREFIX = "EMBGUARD_"

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s?#]*)@")


def redact_uri(text: str) -> str:
    """``text`` with the credentials of every URI in it masked: ``http://user:pass@host`` ->
    ``http://user:***@host`` (``http://***@host`` when there is no user name). The one helper every
    output of a URI goes through: settings, status, /readyz, logs and error messages."""

    def mask(m: re.Match[str]) -> str:
        user, sep, _ = m.group("userinfo").partition(":")
        return f"{m.group('scheme')}{user}:***@" if sep and user else f"{m.group('scheme')}***@"

    return _USERINFO.sub(mask, str(text))


def split_userinfo(uri: str) -> tuple[str, str, str]:
    """``(uri without credentials, user, password)``; credentials are percent-decoded."""
    m = _USERINFO.match(uri)
    if m is None:
        return uri, "", ""
    user, _, password = m.group("userinfo").partition(":")
    return m.group("scheme") + uri[m.end() :], unquote(user), unquote(password)


# Keys that hold secrets: the file may point at them (*_file / *_env) but never contain them.
SECRET_KEYS = {
    ("milvus", "token"),
    ("milvus", "password"),
    ("alerts", "url"),
    ("alerts", "routing_key"),
    ("alerts", "secret"),
}


def secret_values(raw: Mapping[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Every secret string the raw settings and the environment hold, to be scrubbed from messages."""
    out: list[str] = []

    def add(v: Any) -> None:
        text = v.get_secret_value() if isinstance(v, SecretStr) else v
        if isinstance(text, str) and len(text) >= 3:
            out.append(text)
            password = split_userinfo(text)[2]
            if len(password) >= 3:
                out.append(password)

    milvus = raw.get("milvus")
    if isinstance(milvus, dict):
        for key in ("token", "password"):
            add(milvus.get(key))
        uri = milvus.get("uri")
        if isinstance(uri, str):
            add(split_userinfo(uri)[2])
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


def scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "<secret>")
    return redact_uri(text)


def read_secret_file(path: Path, key: str) -> SecretStr:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(
            f"{key} = {str(path)!r}: cannot read the secret file ({exc.strerror}); check the path and its permissions"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"{key} = {str(path)!r}: the secret file is not UTF-8 text; write the secret as plain text"
        ) from None
    if not text:
        raise ConfigError(f"{key} = {str(path)!r}: the secret file is empty")
    return SecretStr(text)


def resolve_secrets(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Read the secrets ``raw`` points at (``*_file``, ``*_env``) into it. A secret file that cannot be read is a
    ConfigError; an alert target's unset ``*_env`` variable is left unset here (see the loop below)."""
    milvus = raw.get("milvus", {})
    if isinstance(milvus, dict):
        for key in ("token", "password"):
            ref = milvus.get(f"{key}_file")
            if ref and not milvus.get(key):
                milvus[key] = read_secret_file(Path(ref), f"milvus.{key}_file")
    for i, target in enumerate(raw.get("alerts", []) or []):
        if not isinstance(target, dict):
            continue
        for key in ("url", "routing_key", "secret"):
            var = target.get(f"{key}_env")
            # An unset variable leaves the value unset: only what sends alerts needs it (the application's
            # Client and `lite start` load the same settings), and building the sender names it
            # (settings.check_alert_targets, also run by `config check`).
            if isinstance(var, str) and var in environ:
                target[key] = SecretStr(environ[var])
        if target.get("url_file"):
            target["url"] = read_secret_file(Path(target["url_file"]), f"alerts[{i}].url_file")


def reject_file_secrets(data: dict[str, Any], path: Path) -> None:
    for section, key in SECRET_KEYS:
        entries = data.get(section)
        for entry in entries if isinstance(entries, list) else [entries]:
            if isinstance(entry, dict) and key in entry:
                if section == "milvus":
                    hint = f"set EMBGUARD_{section.upper()}__{key.upper()} or {section}.{key}_file"
                else:
                    hint = f'use {key}_env = "VAR"' + (" or url_file" if key == "url" else "")
                raise ConfigError(
                    f"{section}.{key} in {str(path)!r}: secrets are not read from the config file; {hint}"
                )


def masked(settings: BaseModel) -> dict[str, Any]:
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

    return cast(dict[str, Any], walk(data))  # data is a dict, so walk gives one back


def secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""
