"""``[[alerts]]`` targets: their settings and the one check of whether a target can send (run by `config check`
and by the sender when serve starts; loading settings does not need the targets' secrets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, StrictFloat, StrictInt

from embguard.config.bounds import MAX_SECONDS, Section
from embguard.config.credentials import secret
from embguard.errors import AlertConfigError


class AlertTarget(Section):
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
        3600, description="minimum time between repeats"
    )
    timeout_s: Annotated[StrictFloat, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        5.0, description="per-request timeout of a delivery to this target (each retry gets its own)"
    )


ALERT_URL_SCHEMES = ("http", "https")


def alert_url_problem(target: AlertTarget) -> str | None:
    """Why ``target``'s URL cannot be posted to (None when it can, or when it has none): the one check of a
    webhook URL, run when settings are loaded (so `config check` reports it) and by the sender (serve).
    The URL is a secret (Slack's embeds the token): the message names only its scheme."""
    url = secret(target.url)
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    scheme = parts.scheme.lower() if parts is not None else ""
    if scheme in ALERT_URL_SCHEMES and host:
        return None
    shown = f" (scheme {scheme!r})" if scheme.isalnum() and len(scheme) <= 10 else ""
    return (
        f"alert target {target.name!r} ({target.kind}): the configured URL{shown} is not an http:// or https:// URL "
        f"with a host; fix the value in url_env/url_file"
    )


def alert_target_problems(i: int, target: AlertTarget) -> list[str]:
    """Everything that keeps ``target`` (``alerts[i]``) from sending: an unset ``*_env`` variable, no URL or routing
    key, a URL that is not http(s). Empty when it can send."""
    out = []
    for key in ("url", "routing_key", "secret"):
        var = getattr(target, f"{key}_env")
        if var and getattr(target, key) is None:
            out.append(
                f"alert target {target.name!r} ({target.kind}): alerts[{i}].{key}_env = {var!r}: environment variable "
                f"{var} is not set; set it where `embguard serve` runs" + (" (or use url_file)" if key == "url" else "")
            )
    if target.kind == "pagerduty":
        if not secret(target.routing_key) and not target.routing_key_env:
            out.append(
                f"alert target {target.name!r} (pagerduty) has no routing key; set "
                "routing_key_env to the variable holding the integration's routing key"
            )
    elif not secret(target.url) and not target.url_env:
        out.append(
            f"alert target {target.name!r} ({target.kind}) has no URL; set url_env or url_file "
            "to where the webhook URL is kept"
        )
    url_problem = alert_url_problem(target)
    if url_problem:
        out.append(url_problem)
    return out


def check_alert_targets(targets: Sequence[AlertTarget]) -> None:
    """Raise :class:`AlertConfigError` (a ConfigError) naming every ``[[alerts]]`` target that cannot send.

    What serve needs of ``[[alerts]]`` and loading settings does not: the sender runs it when it is built, and
    `embguard config check` runs it so a missing variable is found before serve starts."""
    problems = [p for i, t in enumerate(targets) for p in alert_target_problems(i, t)]
    if problems:
        raise AlertConfigError("; ".join(problems))
