"""The alert model and the notifier's memory of it: which target was told about which alert, and when.

The memory is what makes a restart safe: it is written to ``state.dir/alerts.json`` after every change, so a
restarted daemon neither re-pages an alert still inside its cooldown nor forgets to resolve one that cleared
while it was down. The file is JSON::

    {"version": 1,
     "alerts": {"<alert key>": {"alert": {...every Alert field...},
                                "told": {"<target name>": {"first_sent": <unix s>, "last_sent": <unix s>}}}}}

An unreadable file is moved aside (``alerts.json.corrupt``) and the notifier starts empty, and a file that
cannot be written is logged: either costs at most one duplicate page, whereas raising would stop alerting.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embguard.alerts.wording import plain
from embguard.config.statedir import write_atomic
from embguard.errors import AlertError

# The notifier's logger: one logging rule covers everything alerting says, whichever module says it.
log = logging.getLogger("embguard.alerts")

SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's set; embguard uses all but "error"
STATE_VERSION = 1
_UNWRITABLE: set[Path] = set()  # alert state files whose last write failed (logged once until one succeeds)


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
            raise AlertError(
                f"alert {self.key!r}: severity {self.severity!r} is not one of "
                f"{', '.join(SEVERITIES)}; use 'critical', 'warning' or 'info'"
            )

    def as_dict(self) -> dict[str, Any]:
        """Every field as plain JSON (numpy scalars, NaN and the like made serialisable)."""
        return {
            "key": self.key,
            "name": self.name,
            "collection": self.collection,
            "severity": self.severity,
            "summary": self.summary,
            "details": plain(dict(self.details)),
            "clusters": plain(list(self.clusters)),
            "next_command": self.next_command,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            key=str(data["key"]),
            name=str(data.get("name", "")),
            collection=str(data.get("collection", "")),
            severity=str(data.get("severity", "warning")),
            summary=str(data.get("summary", "")),
            details=dict(data.get("details") or {}),
            clusters=tuple(data.get("clusters") or ()),
            next_command=str(data.get("next_command", "")),
        )


@dataclass(frozen=True)
class Told:
    """What one target last heard about one key, and when (clock seconds)."""

    first_sent: float
    last_sent: float


# key -> the last known alert (kept after it clears, to word the resolve); key -> target name -> Told.
Alerts = dict[str, Alert]
Recipients = dict[str, dict[str, Told]]


def load(path: Path | None) -> tuple[Alerts, Recipients]:
    """The alerts and recipients remembered in ``path``; empty when there is no file or it is unreadable."""
    alerts: Alerts = {}
    told: Recipients = {}
    if path is None or not path.exists():
        return alerts, told
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
        for key, entry in data["alerts"].items():
            alerts[key] = Alert.from_dict(entry["alert"])
            told[key] = {name: Told(float(t["first_sent"]), float(t["last_sent"])) for name, t in entry["told"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, AlertError) as exc:
        # Refusing to start would silence every future page; starting empty risks one duplicate page.
        aside = path.with_name(path.name + ".corrupt")
        log.warning(
            "alert state %s is unreadable (%s: %s); starting empty (open alerts may page once more) "
            "and keeping the old file as %s",
            path,
            type(exc).__name__,
            exc,
            aside,
        )
        try:
            os.replace(path, aside)
        except OSError:
            pass
        return {}, {}
    return alerts, told


def save(path: Path | None, alerts: Alerts, told: Recipients) -> None:
    """Write ``alerts`` and who was told about them to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    data = {
        "version": STATE_VERSION,
        "alerts": {
            key: {
                "alert": alerts[key].as_dict(),
                "told": {
                    name: {"first_sent": t.first_sent, "last_sent": t.last_sent}
                    for name, t in told.get(key, {}).items()
                },
            }
            for key in alerts
        },
    }
    try:
        write_atomic(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError as exc:
        # Losing the state costs at most a duplicate page after a restart; raising would stop alerting now.
        # Said once while it lasts (the daemon reports the directory itself: embguard_state_writable, /readyz).
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        if path not in _UNWRITABLE:
            _UNWRITABLE.add(path)
            log.error(
                "could not write alert state %s ([%s] %s); open alerts may page again after a restart until "
                "the directory (state.dir) is writable again: free disk space or fix its permissions",
                path,
                code,
                exc.strerror or exc,
            )
        else:
            log.debug("could not write alert state %s ([%s] %s)", path, code, exc.strerror or exc)
        return
    if path in _UNWRITABLE:
        _UNWRITABLE.discard(path)
        log.info("alert state %s is written again", path)
