"""Delivering one alert message to one target: the one module that imports httpx and holds the targets' secrets.

:meth:`Sender.deliver` builds the request (:mod:`embguard.alerts.webhooks`), posts it and reports a :class:`Delivery`;
it never raises, so one target's failure cannot stop the others or the daemon.

Retries
-------
Each post is retried within one call on connection errors, timeouts, 429 (``Retry-After`` honoured, capped at
:data:`RETRY_AFTER_MAX_S`) and 5xx, with exponential backoff (``backoff_s * 2**n`` through the injected
``sleep``); other 4xx mean the request itself is wrong, so they are reported and not retried. Redirects are
not followed: a webhook that redirects is misconfigured, and following it could send the body elsewhere.

Secrets
-------
Webhook URLs (which embed a token for Slack), PagerDuty routing keys and HMAC secrets never appear in an error
or a log record: :meth:`Sender.redact` replaces them (and the URL path and query pieces where tokens live) with
``<redacted>``, and a filter on the ``httpx`` logger redacts the request line httpx logs at INFO.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

try:
    import httpx
except ModuleNotFoundError as exc:  # the core install is the application-side client only
    raise ModuleNotFoundError(
        "alert delivery needs httpx, which is not installed; run: pip install 'embguard[serve]'", name=exc.name
    ) from exc

from embguard.alerts.incidents import Alert, Told
from embguard.alerts.webhooks import Request, build
from embguard.config.alert_targets import AlertTarget, check_alert_targets
from embguard.config.credentials import secret
from embguard.errors import AlertConfigError

# The notifier's logger: one logging rule covers everything alerting says, whichever module says it.
log = logging.getLogger("embguard.alerts")

ACTIONS = ("trigger", "repeat", "resolve")

# A receiver asking for minutes of patience would stall every other target and the daemon's next check.
RETRY_AFTER_MAX_S = 60.0
_BODY_SNIPPET = 200  # enough of a receiver's error body to say what it disliked, not enough to flood the log
_TOKEN_MIN = 16  # URL path/query pieces this long are treated as tokens and redacted on their own

# Named here so callers can type a transport without importing httpx themselves.
Transport = httpx.BaseTransport


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message to one target. ``error`` names the failure, never a URL or key."""

    target: str
    key: str
    action: str  # one of ACTIONS
    ok: bool
    attempts: int
    status: int | None
    error: str


class Outcome(NamedTuple):
    """How one post ended. ``error`` is already redacted; ``status`` is None when no response came back."""

    ok: bool
    attempts: int
    status: int | None
    error: str


class Sender:
    """Delivers alert messages to the configured targets, with retries, over one shared HTTP client.

    Construction validates every target (:class:`~embguard.errors.AlertConfigError` names the one that is
    unusable) and installs the ``httpx`` log filter; :meth:`close` removes it again.
    """

    def __init__(
        self,
        targets: Sequence[AlertTarget],
        *,
        sleep: Callable[[float], None],
        max_attempts: int,
        backoff_s: float,
        timeout_s: float,
        transport: Transport | None = None,
    ) -> None:
        _check_settings(targets, max_attempts, backoff_s, timeout_s)
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._timeout_s = timeout_s
        # Every target's secrets, redacted from every message: a receiver may echo another target's key.
        self.secrets = tuple(sorted({s for t in targets for s in _target_secrets(t)}, key=len, reverse=True))
        self._filter = _RedactSecrets(self.secrets)
        logging.getLogger("httpx").addFilter(self._filter)
        self._client = httpx.Client(
            transport=transport, timeout=timeout_s, follow_redirects=False, headers={"User-Agent": "embguard-notifier"}
        )

    def redact(self, text: str) -> str:
        """``text`` with every configured secret replaced by ``<redacted>``."""
        return _redact(text, self.secrets)

    def deliver(self, target: AlertTarget, action: str, alert: Alert, told: Told | None, now: float) -> Delivery:
        """Tell ``target`` about ``action`` on ``alert``; ``told`` is what it heard before (None: nothing)."""
        try:
            ok, attempts, status, error = self._post(target, build(target, action, alert, told, now))
        except Exception as exc:  # a bug in payload building must not stop the other targets or the daemon
            ok, attempts, status = False, 0, None
            error = self.redact(f"could not build the {target.kind} message ({type(exc).__name__}: {exc})")
        if ok:
            log.info("alert %r (%s): %s sent to target %r", alert.key, alert.name, action, target.name)
        else:
            log.warning(
                "alert %r (%s): %s to target %r failed after %d attempt(s): %s; it is retried on the next check",
                alert.key,
                alert.name,
                action,
                target.name,
                attempts,
                error,
            )
        return Delivery(
            target=target.name, key=alert.key, action=action, ok=ok, attempts=attempts, status=status, error=error
        )

    def _post(self, target: AlertTarget, request: Request) -> Outcome:
        status: int | None = None
        error = ""
        for attempt in range(1, self._max_attempts + 1):
            delay = self._backoff_s * 2 ** (attempt - 1)
            try:
                response = self._client.post(
                    request.url, content=request.body, headers=request.headers, timeout=self._target_timeout(target)
                )
            except httpx.TimeoutException as exc:
                status, error = None, f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                status, error = None, self.redact(f"connection failed ({type(exc).__name__}: {exc})")
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return Outcome(True, attempt, status, "")
                error = f"HTTP {status}"
                snippet = response.text[:_BODY_SNIPPET].strip()
                if snippet:
                    error += f": {self.redact(snippet)}"
                if status == 429:
                    delay = _retry_after(response.headers.get("Retry-After"), delay)
                elif status < 500:
                    if 300 <= status < 400:
                        error += " (the webhook URL redirects; configure the final URL)"
                    return Outcome(False, attempt, status, error)
            if attempt < self._max_attempts:
                self._sleep(delay)
        return Outcome(False, self._max_attempts, status, error)

    def close(self) -> None:
        self._client.close()
        logging.getLogger("httpx").removeFilter(self._filter)

    def _target_timeout(self, target: AlertTarget) -> float:
        # A slow receiver may be given more time without slowing every other target down to its pace.
        return target.timeout_s if "timeout_s" in target.model_fields_set else self._timeout_s


class _RedactSecrets(logging.Filter):
    """Rewrites records that would carry a webhook URL or key.

    httpx logs every request line (URL included) at INFO on the ``httpx`` logger; a Slack URL *is* the
    credential, so any deployment with INFO logging would leak it without this.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to fix; let logging report it
            return True
        redacted = _redact(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _check_settings(targets: Sequence[AlertTarget], max_attempts: int, backoff_s: float, timeout_s: float) -> None:
    if max_attempts < 1:
        raise AlertConfigError(f"max_attempts={max_attempts} must be at least 1 (1 means no retries)")
    if backoff_s < 0 or timeout_s <= 0:
        raise AlertConfigError(f"backoff_s={backoff_s} must be >= 0 and timeout_s={timeout_s} > 0")
    names = [t.name for t in targets]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AlertConfigError(
            f"alert targets: duplicate name(s) {', '.join(map(repr, dup))}; "
            "give every [[alerts]] entry a unique name (state and metrics are keyed by it)"
        )
    # The same check `config check` runs (settings.check_alert_targets): unset *_env variables, no URL or
    # routing key, a URL that is not http(s).
    check_alert_targets(targets)
    for target in targets:
        if target.kind == "webhook" and target.secret is None:
            log.warning(
                "alert target %r (webhook) has no secret: its requests are unsigned and receivers "
                "cannot verify them; set secret_env for this target",
                target.name,
            )


def _parse_url(url: str) -> httpx.URL | None:
    try:
        return httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return None


def _target_secrets(target: AlertTarget) -> tuple[str, ...]:
    out = [secret(target.url), secret(target.routing_key), secret(target.secret)]
    url = secret(target.url)
    parsed = _parse_url(url) if url else None
    if parsed is not None:
        # The path and query are where webhook tokens live; a receiver's error may quote them without the
        # host, or quote just the token segment. Short segments ("services", IDs) are not the credential.
        if len(parsed.path) > 1:
            out.append(parsed.path)
            out += [seg for seg in parsed.path.split("/") if len(seg) >= _TOKEN_MIN]
        query = parsed.query.decode(errors="replace")
        if query:
            out.append(query)
            out += [v for part in query.split("&") for v in part.split("=", 1)[1:] if len(v) >= _TOKEN_MIN]
    return tuple(s for s in out if s)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for s in sorted(secrets, key=len, reverse=True):
        if s:
            text = text.replace(s, "<redacted>")
    return text


def _retry_after(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        seconds = float(value.strip())
    except ValueError:
        return default  # an HTTP-date is rare for webhooks; the backoff is a sane stand-in
    if not math.isfinite(seconds) or seconds < 0:
        return default
    return min(seconds, RETRY_AFTER_MAX_S)
