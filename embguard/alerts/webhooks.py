"""What each kind of alert target receives: Slack messages, PagerDuty events and signed generic webhooks.

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

Building a request sends nothing and needs no HTTP library: :mod:`embguard.alerts.sender` posts what is built here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from embguard.alerts.incidents import Alert, Told
from embguard.alerts.wording import clip, code, escape, fmt, iso, plain
from embguard.config.alert_targets import AlertTarget
from embguard.config.credentials import secret
from embguard.config.units import duration

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# PagerDuty rejects longer summaries and dedup keys; Slack rejects longer header/section texts.
_PD_SUMMARY_MAX = 1024
_PD_DEDUP_MAX = 255
_SLACK_HEADER_MAX = 150
_SLACK_TEXT_MAX = 3000
# A page is read on a phone: the biggest clusters and a few examples each say enough.
_SLACK_CLUSTERS = 5
_SLACK_EXAMPLES = 3
_EXAMPLE_MAX = 200
_SLACK_MARK = {
    "critical": ":rotating_light:",
    "error": ":red_circle:",
    "warning": ":warning:",
    "info": ":information_source:",
}


@dataclass(frozen=True)
class Request:
    """One ready-to-send POST. ``url`` may embed a token: it must never reach a log or an error."""

    url: str
    body: bytes
    headers: dict[str, str]


def build(target: AlertTarget, action: str, alert: Alert, told: Told | None, now: float) -> Request:
    """The request that tells ``target`` about ``action`` ("trigger", "repeat", "resolve") on ``alert`` at ``now``;
    ``told`` is what the target heard before (it words "still active for ..." and "resolved after ...")."""
    if target.kind == "slack":
        body = _slack(action, alert, told, now)
        return Request(secret(target.url), _dumps(body), {"Content-Type": "application/json"})
    if target.kind == "pagerduty":
        body = _pagerduty(secret(target.routing_key), action, alert, now)
        return Request(secret(target.url) or PAGERDUTY_EVENTS_URL, _dumps(body), {"Content-Type": "application/json"})
    return _webhook(target, action, alert, now)


def dedup_key(key: str) -> str:
    """The PagerDuty dedup key of an alert key: stable, so trigger, repeats and resolve hit one incident."""
    out = "embguard:" + key
    if len(out) > _PD_DEDUP_MAX:
        out = "embguard:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return out


def sign(secret_value: str, timestamp: str, body: bytes) -> str:
    """The ``X-Embguard-Signature`` value for ``body`` sent at ``timestamp`` (for receivers and tests)."""
    return "sha256=" + hmac.new(secret_value.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


def _pagerduty(routing_key: str, action: str, alert: Alert, now: float) -> dict[str, Any]:
    if action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key(alert.key)}
    as_json = alert.as_dict()
    details: dict[str, Any] = dict(as_json["details"])
    details.update(
        {"alert": alert.name, "key": alert.key, "clusters": as_json["clusters"], "next_command": alert.next_command}
    )
    payload: dict[str, Any] = {
        "summary": clip(alert.summary or alert.name, _PD_SUMMARY_MAX),
        "source": "embguard",
        "severity": alert.severity,
        "timestamp": iso(now),
        "custom_details": details,
    }
    if alert.collection:
        payload["component"] = alert.collection
    # A repeat is another trigger on the same dedup key: PagerDuty appends it to the open incident.
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(alert.key),
        "payload": payload,
    }


def _webhook(target: AlertTarget, action: str, alert: Alert, now: float) -> Request:
    body = _dumps({"event": action, "alert": alert.as_dict(), "sent_at": iso(now)})
    ts = str(int(now))
    headers = {"Content-Type": "application/json", "X-Embguard-Timestamp": ts}
    key = secret(target.secret)
    if key:
        # Sign the exact bytes sent, so receivers verify the raw body before parsing it.
        headers["X-Embguard-Signature"] = sign(key, ts, body)
    return Request(secret(target.url), body, headers)


def _slack(action: str, alert: Alert, told: Told | None, now: float) -> dict[str, Any]:
    where = f" ({alert.collection})" if alert.collection else ""
    if action == "resolve":
        since = f" after {duration(now - told.first_sent)}" if told else ""
        text = f"RESOLVED: {alert.name}{where}{since}"
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {
                    "type": "plain_text",
                    "text": clip(f":white_check_mark: {text}", _SLACK_HEADER_MAX),
                    "emoji": True,
                },
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip(
                        f"*RESOLVED* — the condition cleared.\nLast seen: {escape(alert.summary)}", _SLACK_TEXT_MAX
                    ),
                },
            },
            _slack_context(alert, now),
        ]
        return {"text": text, "blocks": blocks}
    still = ""
    if action == "repeat":
        still = f" (still active for {duration(now - told.first_sent)})" if told else " (still active)"
    title = f"[{alert.severity.upper()}] {alert.name}{where}{still}"
    blocks = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": clip(f"{_SLACK_MARK[alert.severity]} {title}", _SLACK_HEADER_MAX),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": clip(escape(alert.summary) or "_no summary_", _SLACK_TEXT_MAX)},
        },
    ]
    if alert.details:
        lines = [f"• `{code(str(k))}`: {escape(fmt(v))}" for k, v in plain(dict(alert.details)).items()]
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": clip("*Numbers*\n" + "\n".join(lines), _SLACK_TEXT_MAX)},
            }
        )
    if alert.clusters:
        lines = [
            _slack_cluster(i, cluster) for i, cluster in enumerate(plain(list(alert.clusters))[:_SLACK_CLUSTERS], 1)
        ]
        blocks.append(
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": clip("*Top new query clusters*\n" + "\n".join(lines), _SLACK_TEXT_MAX),
                },
            }
        )
    if alert.next_command:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": clip(f"*Next:* `{code(alert.next_command)}`", _SLACK_TEXT_MAX)},
            }
        )
    blocks.append(_slack_context(alert, now))
    text = f"{title}: {alert.summary}"
    if alert.next_command:
        text += f" — next: {alert.next_command}"
    return {"text": text, "blocks": blocks}


def _slack_cluster(i: int, cluster: Any) -> str:
    # Monitors report clusters as dicts; anything else is shown as its own single example rather than dropped.
    c = cluster if isinstance(cluster, dict) else {"examples": [cluster]}
    facts = []
    if c.get("terms"):
        facts.append("about " + escape(clip(", ".join(map(str, c["terms"])), _EXAMPLE_MAX)))
    if "size" in c:
        facts.append(f"{fmt(c['size'])} queries")
    if isinstance(c.get("share"), int | float):
        facts.append(f"{c['share']:.1%} of the window")
    if "distance" in c:
        facts.append(f"distance {fmt(c['distance'])}")
    examples = [f"“{escape(clip(str(e), _EXAMPLE_MAX))}”" for e in (c.get("examples") or [])[:_SLACK_EXAMPLES]]
    line = f"{i}. {', '.join(facts) or 'cluster'}"
    if examples:
        line += "\n    e.g. " + " · ".join(examples)
    return line


def _slack_context(alert: Alert, now: float) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip(f"embguard · key `{code(alert.key)}` · {iso(now)}", _SLACK_TEXT_MAX)}
        ],
    }
