"""embguard's own alert notifier, for teams without Alertmanager: Slack, PagerDuty and signed generic webhooks.

Design
------
The daemon calls :meth:`Notifier.update` after every check with the alerts that are active *now*; the notifier
turns that level signal into edge events per ``(alert key, target)``:

* a key no target has heard of -> ``trigger`` to every target;
* a key still active -> nothing, unless the target's ``cooldown_s`` has passed since it was last told -> ``repeat``;
* a key that is no longer active -> ``resolve`` to every target that was told about it (and only those: a
  resolve for a page that never arrived would only confuse).

The daemon calls it after every check *and* every Milvus watch tick (so MilvusDown pages within one watch
period), with ``settled``: a remembered key whose condition has not been evaluated since start (a drift alert
before the first check after a restart) is neither resolved nor repeated. The daemon's notifier is built with
``background=True``: ``update`` only queues, and one thread per target delivers from a bounded queue with the
target's own ``timeout_s``, so a host that never answers delays neither checks nor the other targets; an
edge that finds the queue full is dropped (counted) and offered again by the next ``update``.

A target counts as *told* only once a delivery succeeded, so a failed trigger is simply tried again on the next
``update`` and is eventually delivered; a failed resolve likewise. Each delivery is retried within one call on
connection errors, timeouts, 429 (``Retry-After`` honoured, capped) and 5xx, with exponential backoff
(``backoff_s * 2**n`` through the injected ``sleep``); other 4xx mean the request itself is wrong, so they are
recorded and not retried. Nothing raised by a delivery escapes ``update``: alerting must never take the daemon
down. What each target was told, and when, is written atomically (temp file + rename) to ``state_path`` after
every change, so a restart neither re-pages an alert still inside its cooldown nor forgets to resolve one that
cleared while the daemon was down: keys remembered but not active get resolved once their condition has been
evaluated again (``settled``).

Secrets (webhook URLs, which embed a token for Slack; PagerDuty routing keys; HMAC secrets) never appear in an
error, a :class:`Delivery` or a log record: messages name the target instead, and a filter on the ``httpx``
logger redacts the request line httpx logs at INFO.

Payloads
--------
* ``slack``: an incoming-webhook message ``{"text": <fallback>, "blocks": [...]}``: what drifted and how much,
  the numbers, the top new query clusters with example queries, and the command to run next.
* ``pagerduty``: Events API v2 (``POST`` to the target's ``url`` if set, else :data:`PAGERDUTY_EVENTS_URL`);
  trigger and resolve share ``dedup_key = "embguard:" + alert key`` so PagerDuty folds repeats into one incident.
* ``webhook``: ``{"event": "trigger"|"repeat"|"resolve", "alert": {...every Alert field...}, "sent_at": ISO-8601}``
  signed with HMAC-SHA256 when the target has a ``secret``.

Verifying a generic webhook
---------------------------
Each request carries ``X-Embguard-Timestamp: <unix seconds>`` and
``X-Embguard-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + raw body)>``. The receiver recomputes
the HMAC over the *raw* request bytes (before any JSON parsing), compares in constant time, and rejects stale
timestamps so a captured request cannot be replayed::

    import hashlib, hmac, time

    def verify(secret: bytes, headers, body: bytes, tolerance_s: int = 300) -> bool:
        ts = headers["X-Embguard-Timestamp"]
        if abs(time.time() - int(ts)) > tolerance_s:
            return False
        expected = hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest("sha256=" + expected, headers["X-Embguard-Signature"])

A webhook target without a ``secret`` sends unsigned requests (and the notifier warns once, at construction).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import httpx
except ModuleNotFoundError as exc:  # the core install is the application-side client only
    raise ModuleNotFoundError("alert delivery needs httpx, which is not installed; "
                              "run: pip install 'embguard[serve]'", name=exc.name) from exc
from prometheus_client import CollectorRegistry, Counter, Gauge

from .config import AlertTarget, secret
from .errors import AlertConfigError, AlertError

log = logging.getLogger(__name__)

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's set; embguard uses all but "error"
ACTIONS = ("trigger", "repeat", "resolve")
STATE_VERSION = 1
# A receiver asking for minutes of patience would stall every other target and the daemon's next check.
RETRY_AFTER_MAX_S = 60.0
# PagerDuty rejects longer summaries and dedup keys; Slack rejects longer header/section texts.
_PD_SUMMARY_MAX = 1024
_PD_DEDUP_MAX = 255
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
_SLACK_CLUSTERS = 5
_SLACK_EXAMPLES = 3
_EXAMPLE_MAX = 200
_BODY_SNIPPET = 200
_TOKEN_MIN = 16  # URL path/query pieces this long are treated as tokens and redacted on their own


@dataclass(frozen=True)
class Alert:
    """One active condition. ``key`` must stay the same while the condition lasts: it is the dedup key."""

    key: str
    name: str
    collection: str
    severity: str
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)
    clusters: tuple[Mapping[str, Any], ...] = ()
    next_command: str = ""

    def __post_init__(self) -> None:
        if not self.key:
            raise AlertError(f"alert {self.name!r} has an empty key; give it a stable key such as 'drift:<alias>'")
        if self.severity not in SEVERITIES:
            raise AlertError(f"alert {self.key!r}: severity {self.severity!r} is not one of "
                             f"{', '.join(SEVERITIES)}; use 'critical', 'warning' or 'info'")

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (numpy scalars, NaN and the like made serialisable)."""
        return {
            "key": self.key,
            "name": self.name,
            "collection": self.collection,
            "severity": self.severity,
            "summary": self.summary,
            "details": _plain(dict(self.details)),
            "clusters": _plain(list(self.clusters)),
            "next_command": self.next_command,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(key=str(data["key"]), name=str(data.get("name", "")), collection=str(data.get("collection", "")),
                   severity=str(data.get("severity", "warning")), summary=str(data.get("summary", "")),
                   details=dict(data.get("details") or {}), clusters=tuple(data.get("clusters") or ()),
                   next_command=str(data.get("next_command", "")))


@dataclass(frozen=True)
class Delivery:
    """The outcome of one message to one target. ``error`` names the failure, never a URL or key."""

    target: str
    key: str
    action: str  # "trigger" | "repeat" | "resolve"
    ok: bool
    attempts: int
    status: int | None
    error: str


@dataclass(frozen=True)
class _Request:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class _Told:
    """What one target last heard about one key, and when (clock seconds)."""

    first_sent: float
    last_sent: float


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


class Notifier:
    """Turns "alerts active now" into trigger/repeat/resolve deliveries to the configured targets.

    Collaborators are injected so behaviour is deterministic in tests: ``clock`` (seconds), ``sleep`` (backoff
    waits), ``transport`` (httpx transport) and ``registry`` (Prometheus metrics; none registered without it).
    """

    def __init__(self, targets: Sequence[AlertTarget], *, state_path: Path | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 max_attempts: int = 4, backoff_s: float = 1.0, timeout_s: float = 5.0,
                 transport: httpx.BaseTransport | None = None, registry: CollectorRegistry | None = None,
                 background: bool = False, queue_size: int = 100) -> None:
        if max_attempts < 1:
            raise AlertConfigError(f"max_attempts={max_attempts} must be at least 1 (1 means no retries)")
        if backoff_s < 0 or timeout_s <= 0:
            raise AlertConfigError(f"backoff_s={backoff_s} must be >= 0 and timeout_s={timeout_s} > 0")
        if queue_size < 1:
            raise AlertConfigError(f"queue_size={queue_size} must be at least 1")
        self._timeout_s = timeout_s
        names = [t.name for t in targets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise AlertConfigError(f"alert targets: duplicate name(s) {', '.join(map(repr, dup))}; "
                                   "give every [[alerts]] entry a unique name (state and metrics are keyed by it)")
        for target in targets:
            _validate(target)
        self._targets: tuple[AlertTarget, ...] = tuple(targets)
        self._state_path = state_path
        self._clock = clock
        self._sleep = sleep
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending: set[tuple[str, str]] = set()  # (key, target) queued or in flight
        self._finished: list[Delivery] = []
        self._current: set[str] = set()
        self._closing = threading.Event()
        # Every target's secrets, redacted from every message: a receiver may echo another target's key.
        self._secrets = tuple(sorted({s for t in self._targets for s in _target_secrets(t)}, key=len, reverse=True))
        self._filter = _RedactSecrets(self._secrets)
        logging.getLogger("httpx").addFilter(self._filter)
        # No redirects: a webhook that redirects is misconfigured, and following it could send the body elsewhere.
        self._client = httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False,
                                    headers={"User-Agent": "embguard-notifier"})
        self._sent: Counter | None = None
        self._active: Gauge | None = None
        if registry is not None:
            self._sent = Counter("embguard_alerts_sent_total", "Alert deliveries by target, action and outcome",
                                 ("target", "action", "outcome"), registry=registry)
            self._active = Gauge("embguard_alerts_active", "Alert keys active after the last check",
                                 registry=registry)
        for target in self._targets:
            if target.kind == "webhook" and target.secret is None:
                log.warning("alert target %r (webhook) has no secret: its requests are unsigned and receivers "
                            "cannot verify them; set secret_env for this target", target.name)
        # key -> last known alert (kept after it clears, to word the resolve) and key -> target -> _Told.
        self._alerts: dict[str, Alert] = {}
        self._told: dict[str, dict[str, _Told]] = {}
        self._load()
        # Background delivery: one bounded queue and one thread per target, so a target that never answers
        # delays neither the checks that call update() nor the other targets.
        self._queues: dict[str, queue.Queue[Any]] = {}
        self._workers: list[threading.Thread] = []
        if background:
            for target in self._targets:
                q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
                self._queues[target.name] = q
                worker = threading.Thread(target=self._worker, args=(target, q), daemon=True,
                                          name=f"embguard-alerts-{target.name}")
                worker.start()
                self._workers.append(worker)

    # -- public -------------------------------------------------------------------------------------------------

    def update(self, active: Sequence[Alert], settled: Callable[[str], bool] | None = None) -> list[Delivery]:
        """Called after every check with the alerts that are active NOW. New key -> trigger to every target;
        still active -> nothing, unless the target's cooldown_s has passed since its last send -> a repeat;
        key no longer active -> resolve to every target that was told.

        ``settled(key)`` says whether the condition behind a remembered key has been evaluated since start:
        a key that is not active and not settled is left open (no resolve, no repeat), so a restart does not
        resolve alerts before the first check has actually looked. Without it every key counts as settled.

        Synchronous notifiers deliver here and return what was sent; background ones queue the deliveries
        for their target's thread and return at once (an empty list; :meth:`drain` collects outcomes)."""
        with self._lock:
            now = self._clock()
            current: dict[str, Alert] = {}
            for alert in active:
                current[alert.key] = alert  # the last one of a duplicated key carries the freshest numbers
            self._current = set(current)
            if self._active is not None:
                self._active.set(len(current))
            deliveries: list[Delivery] = []
            changed = False
            for key, alert in current.items():
                previous = self._alerts.get(key)
                # Compared as plain JSON: numpy arrays in details make dataclass equality ambiguous.
                if previous is None or previous.as_dict() != alert.as_dict():
                    changed = True
                self._alerts[key] = alert
                told = self._told.setdefault(key, {})
                for target in self._targets:
                    if (key, target.name) in self._pending:
                        continue  # a delivery for this key is in flight; its outcome decides what comes next
                    seen = told.get(target.name)
                    if seen is None:
                        action = "trigger"
                    elif now - seen.last_sent >= target.cooldown_s:
                        action = "repeat"
                    else:
                        continue
                    delivery = self._send(target, action, alert, seen, now)
                    if delivery is not None:
                        deliveries.append(delivery)
                        changed = self._apply(target, action, alert, seen, delivery, now) or changed
            by_name = {t.name: t for t in self._targets}
            for key in [k for k in self._alerts if k not in current]:
                if settled is not None and not settled(key):
                    continue  # not looked at since start: neither resolved nor repeated until it is
                alert = self._alerts[key]
                told = self._told.get(key, {})
                for name in list(told):
                    if (key, name) in self._pending:
                        continue
                    target = by_name.get(name)
                    if target is None:
                        # Removed from the config while the alert was open: nothing left to send the resolve to.
                        log.warning("alert %r: target %r is no longer configured; its open alert cannot be "
                                    "resolved by embguard, resolve it by hand", key, name)
                        del told[name]
                        changed = True
                        continue
                    delivery = self._send(target, "resolve", alert, told[name], now)
                    if delivery is not None:
                        deliveries.append(delivery)
                        changed = self._apply(target, "resolve", alert, told.get(name), delivery, now) or changed
                changed = self._forget_if_done(key) or changed
            if changed:
                self._save()
            return deliveries

    def drain(self, timeout_s: float = 30.0) -> list[Delivery]:
        """Wait until no delivery is queued or in flight (or ``timeout_s`` passed); return the outcomes of the
        background deliveries finished since the last call (for tests and shutdown)."""
        deadline = time.monotonic() + timeout_s
        with self._idle:
            while self._pending and time.monotonic() < deadline:
                self._idle.wait(min(0.05, max(deadline - time.monotonic(), 0.001)))
            done, self._finished = self._finished, []
        return done

    @property
    def pending(self) -> int:
        """Deliveries queued or in flight (always 0 for a synchronous notifier)."""
        with self._lock:
            return len(self._pending)

    def close(self) -> None:
        self._closing.set()
        for q in self._queues.values():
            with contextlib.suppress(queue.Full):
                q.put_nowait(None)
        for worker in self._workers:
            worker.join(timeout=1.0)  # one stuck on a host that never answers is abandoned (a daemon thread)
        self._client.close()
        logging.getLogger("httpx").removeFilter(self._filter)

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- background delivery ------------------------------------------------------------------------------------

    def _send(self, target: AlertTarget, action: str, alert: Alert, told: _Told | None,
              now: float) -> Delivery | None:
        """Deliver now (synchronous) or queue for the target's thread (background; None is returned)."""
        q = self._queues.get(target.name)
        if q is None:
            return self._deliver(target, action, alert, told, now)
        try:
            q.put_nowait((action, alert, told, now))
        except queue.Full:
            # The target is far behind; this edge is not lost, the next update offers it again.
            if self._sent is not None:
                self._sent.labels(target=target.name, action=action, outcome="dropped").inc()
            log.warning("alert %r: %s to target %r not queued, its queue of %d is full (the target is slow or "
                        "down); it is offered again on the next check", alert.key, action, target.name, q.maxsize)
            return None
        self._pending.add((alert.key, target.name))
        return None

    def _apply(self, target: AlertTarget, action: str, alert: Alert, told: _Told | None, delivery: Delivery,
               now: float) -> bool:
        """Record a finished delivery (caller holds the lock). Returns whether the state changed."""
        if not delivery.ok:
            return False
        if action == "resolve":
            self._told.get(alert.key, {}).pop(target.name, None)
        else:
            self._alerts.setdefault(alert.key, alert)
            self._told.setdefault(alert.key, {})[target.name] = _Told(told.first_sent if told else now, now)
        return True

    def _forget_if_done(self, key: str) -> bool:
        """Forget a key that is not active, that nobody must still hear about and that has nothing in flight."""
        if key in self._current or self._told.get(key) or any(k == key for k, _ in self._pending):
            return False
        had = key in self._alerts or key in self._told
        self._alerts.pop(key, None)
        self._told.pop(key, None)
        return had

    def _worker(self, target: AlertTarget, q: queue.Queue[Any]) -> None:
        while not self._closing.is_set():
            item = q.get()
            if item is None:
                return
            action, alert, told, now = item
            try:
                delivery = self._deliver(target, action, alert, told, now)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any bug in one delivery
                delivery = Delivery(target=target.name, key=alert.key, action=action, ok=False, attempts=0,
                                    status=None, error=_redact(f"{type(exc).__name__}: {exc}", self._secrets))
            with self._idle:
                self._pending.discard((alert.key, target.name))
                changed = self._apply(target, action, alert, told, delivery, now)
                changed = self._forget_if_done(alert.key) or changed
                if changed:
                    self._save()
                self._finished.append(delivery)
                del self._finished[:-1000]  # nobody draining (the daemon) must not grow this forever
                self._idle.notify_all()

    # -- delivery -----------------------------------------------------------------------------------------------

    def _deliver(self, target: AlertTarget, action: str, alert: Alert, told: _Told | None, now: float) -> Delivery:
        try:
            request = _build(target, action, alert, told, now)
            ok, attempts, status, error = self._post(target, request)
        except Exception as exc:  # a bug in payload building must not stop the other targets or the daemon
            ok, attempts, status = False, 0, None
            error = _redact(f"could not build the {target.kind} message ({type(exc).__name__}: {exc})",
                            self._secrets)
        if self._sent is not None:
            self._sent.labels(target=target.name, action=action, outcome="ok" if ok else "failed").inc()
        if ok:
            log.info("alert %r (%s): %s sent to target %r", alert.key, alert.name, action, target.name)
        else:
            log.warning("alert %r (%s): %s to target %r failed after %d attempt(s): %s; it is retried on the "
                        "next check", alert.key, alert.name, action, target.name, attempts, error)
        return Delivery(target=target.name, key=alert.key, action=action, ok=ok, attempts=attempts, status=status,
                        error=error)

    def _post(self, target: AlertTarget, request: _Request) -> tuple[bool, int, int | None, str]:
        secrets = self._secrets
        status: int | None = None
        error = ""
        for attempt in range(1, self._max_attempts + 1):
            delay = self._backoff_s * 2 ** (attempt - 1)
            try:
                response = self._client.post(request.url, content=request.body, headers=request.headers,
                                             timeout=self._target_timeout(target))
            except httpx.TimeoutException as exc:
                status, error = None, f"timed out ({type(exc).__name__})"
            except httpx.TransportError as exc:
                status, error = None, _redact(f"connection failed ({type(exc).__name__}: {exc})", secrets)
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return True, attempt, status, ""
                error = f"HTTP {status}"
                snippet = response.text[:_BODY_SNIPPET].strip()
                if snippet:
                    error += f": {_redact(snippet, secrets)}"
                if status == 429:
                    delay = _retry_after(response.headers.get("Retry-After"), delay)
                elif status < 500:
                    if 300 <= status < 400:
                        error += " (the webhook URL redirects; configure the final URL)"
                    return False, attempt, status, error
            if attempt < self._max_attempts:
                self._sleep(delay)
        return False, self._max_attempts, status, error

    def _target_timeout(self, target: AlertTarget) -> float:
        # The target's own timeout_s when the config sets one, else the notifier's.
        return target.timeout_s if "timeout_s" in target.model_fields_set else self._timeout_s

    # -- state --------------------------------------------------------------------------------------------------

    def _load(self) -> None:
        path = self._state_path
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text())
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            for key, entry in data["alerts"].items():
                self._alerts[key] = Alert.from_dict(entry["alert"])
                self._told[key] = {name: _Told(float(t["first_sent"]), float(t["last_sent"]))
                                   for name, t in entry["told"].items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, AlertError) as exc:
            # Refusing to start would silence every future page; starting empty risks one duplicate page.
            aside = path.with_name(path.name + ".corrupt")
            log.warning("alert state %s is unreadable (%s: %s); starting empty (open alerts may page once more) "
                        "and keeping the old file as %s", path, type(exc).__name__, exc, aside)
            self._alerts.clear()
            self._told.clear()
            try:
                os.replace(path, aside)
            except OSError:
                pass

    def _save(self) -> None:
        path = self._state_path
        if path is None:
            return
        data = {
            "version": STATE_VERSION,
            "alerts": {key: {"alert": self._alerts[key].as_dict(),
                             "told": {name: {"first_sent": t.first_sent, "last_sent": t.last_sent}
                                      for name, t in self._told.get(key, {}).items()}}
                       for key in self._alerts},
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Temp file in the same directory + rename: a crash mid-write leaves the old state, never half a file.
            fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w") as fh:
                    json.dump(data, fh, indent=1, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # Losing the state costs at most a duplicate page after a restart; raising would stop alerting now.
            log.error("could not write alert state %s (%s: %s); check the directory is writable (state.dir)",
                      path, type(exc).__name__, exc.strerror or exc)


# -- validation ---------------------------------------------------------------------------------------------------


def _validate(target: AlertTarget) -> None:
    url = secret(target.url)
    if target.kind == "pagerduty":
        if not secret(target.routing_key):
            raise AlertConfigError(f"alert target {target.name!r} (pagerduty) has no routing key; set "
                                   "routing_key_env to the variable holding the integration's routing key")
    elif not url:
        raise AlertConfigError(f"alert target {target.name!r} ({target.kind}) has no URL; set url_env or url_file "
                               "to where the webhook URL is kept")
    if url:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
            raise AlertConfigError(f"alert target {target.name!r} ({target.kind}): the configured URL is not an "
                                   "http:// or https:// URL; fix the value in url_env/url_file")


def _target_secrets(target: AlertTarget) -> tuple[str, ...]:
    out = [secret(target.url), secret(target.routing_key), secret(target.secret)]
    url = secret(target.url)
    if url:
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            parsed = None
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


# -- payloads -----------------------------------------------------------------------------------------------------


def _build(target: AlertTarget, action: str, alert: Alert, told: _Told | None, now: float) -> _Request:
    if target.kind == "slack":
        body = _slack(action, alert, told, now)
        return _Request(secret(target.url), _dumps(body), {"Content-Type": "application/json"})
    if target.kind == "pagerduty":
        body = _pagerduty(secret(target.routing_key), action, alert, now)
        return _Request(secret(target.url) or PAGERDUTY_EVENTS_URL, _dumps(body),
                        {"Content-Type": "application/json"})
    return _webhook(target, action, alert, now)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def dedup_key(key: str) -> str:
    """The PagerDuty dedup key of an alert key: stable, so trigger, repeats and resolve hit one incident."""
    out = "embguard:" + key
    if len(out) > _PD_DEDUP_MAX:
        out = "embguard:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return out


def _pagerduty(routing_key: str, action: str, alert: Alert, now: float) -> dict[str, Any]:
    if action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(alert.key)}
    plain = alert.as_dict()
    details: dict[str, Any] = dict(plain["details"])
    details.update({"alert": alert.name, "key": alert.key, "clusters": plain["clusters"],
                    "next_command": alert.next_command})
    payload: dict[str, Any] = {
        "summary": _clip(alert.summary or alert.name, _PD_SUMMARY_MAX),
        "source": "embguard",
        "severity": alert.severity,
        "timestamp": _iso(now),
        "custom_details": details,
    }
    if alert.collection:
        payload["component"] = alert.collection
    # A repeat is another trigger on the same dedup key: PagerDuty appends it to the open incident.
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup_key(alert.key),
            "payload": payload}


def _webhook(target: AlertTarget, action: str, alert: Alert, now: float) -> _Request:
    body = _dumps({"event": action, "alert": alert.as_dict(), "sent_at": _iso(now)})
    ts = str(int(now))
    headers = {"Content-Type": "application/json", "X-Embguard-Timestamp": ts}
    key = secret(target.secret)
    if key:
        # Sign the exact bytes sent, so receivers verify the raw body before parsing it.
        mac = hmac.new(key.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers["X-Embguard-Signature"] = "sha256=" + mac
    return _Request(secret(target.url), body, headers)


def sign(secret_value: str, timestamp: str, body: bytes) -> str:
    """The ``X-Embguard-Signature`` value for ``body`` sent at ``timestamp`` (for receivers and tests)."""
    return "sha256=" + hmac.new(secret_value.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


_SLACK_MARK = {"critical": ":rotating_light:", "error": ":red_circle:", "warning": ":warning:",
               "info": ":information_source:"}


def _slack(action: str, alert: Alert, told: _Told | None, now: float) -> dict[str, Any]:
    where = f" ({alert.collection})" if alert.collection else ""
    if action == "resolve":
        since = f" after {_duration(now - told.first_sent)}" if told else ""
        text = f"RESOLVED: {alert.name}{where}{since}"
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(f":white_check_mark: {text}",
                                                                            _SLACK_HEADER_MAX), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(
                f"*RESOLVED* — the condition cleared.\nLast seen: {_esc(alert.summary)}", _SLACK_TEXT_MAX)}},
            _slack_context(alert, now),
        ]
        return {"text": text, "blocks": blocks}
    still = ""
    if action == "repeat":
        still = f" (still active for {_duration(now - told.first_sent)})" if told else " (still active)"
    title = f"[{alert.severity.upper()}] {alert.name}{where}{still}"
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(f"{_SLACK_MARK[alert.severity]} {title}",
                                                                        _SLACK_HEADER_MAX), "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(_esc(alert.summary) or "_no summary_",
                                                                     _SLACK_TEXT_MAX)}},
    ]
    if alert.details:
        lines = [f"• `{_code(str(k))}`: {_esc(_fmt(v))}" for k, v in _plain(dict(alert.details)).items()]
        blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                   "text": _clip("*Numbers*\n" + "\n".join(lines), _SLACK_TEXT_MAX)}})
    if alert.clusters:
        lines = []
        for i, cluster in enumerate(_plain(list(alert.clusters))[:_SLACK_CLUSTERS], 1):
            c = cluster if isinstance(cluster, dict) else {"examples": [cluster]}
            facts = []
            if "size" in c:
                facts.append(f"{_fmt(c['size'])} queries")
            if isinstance(c.get("share"), int | float):
                facts.append(f"{c['share']:.1%} of the window")
            if "distance" in c:
                facts.append(f"distance {_fmt(c['distance'])}")
            examples = [f"“{_esc(_clip(str(e), _EXAMPLE_MAX))}”" for e in (c.get("examples") or [])[:_SLACK_EXAMPLES]]
            line = f"{i}. {', '.join(facts) or 'cluster'}"
            if examples:
                line += "\n    e.g. " + " · ".join(examples)
            lines.append(line)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(
            "*Top new query clusters*\n" + "\n".join(lines), _SLACK_TEXT_MAX)}})
    if alert.next_command:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(
            f"*Next:* `{_code(alert.next_command)}`", _SLACK_TEXT_MAX)}})
    blocks.append(_slack_context(alert, now))
    text = f"{title}: {alert.summary}"
    if alert.next_command:
        text += f" — next: {alert.next_command}"
    return {"text": text, "blocks": blocks}


def _slack_context(alert: Alert, now: float) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(
        f"embguard · key `{_code(alert.key)}` · {_iso(now)}", _SLACK_TEXT_MAX)}]}


def _esc(text: str) -> str:
    # Query examples are user text: unescaped, "<!channel>" in a query would ping a whole channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return _esc(text).replace("`", "'")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def _plain(value: Any) -> Any:
    """JSON-safe copy: monitors hand over numpy scalars/arrays, and NaN/inf are not JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return _plain(value.tolist())
    if hasattr(value, "item"):
        return _plain(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
