"""Text helpers for alert messages: JSON-safe copies, clipping, Slack escaping, numbers and durations for people.

Pure functions with no embguard imports, so the alert model, the payload builders and anything else that words
a message for a person can share them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any


def plain(value: Any) -> Any:
    """JSON-safe copy: monitors hand over numpy scalars/arrays, and NaN/inf are not JSON."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return plain(value.tolist())
    if hasattr(value, "item"):
        return plain(value.item())
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def iso(ts: float) -> str:
    """``ts`` (Unix seconds) as ISO-8601 UTC to the second, ``Z``-suffixed."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def escape(text: str) -> str:
    """``text`` safe inside Slack mrkdwn."""
    # Query examples are user text: unescaped, "<!channel>" in a query would ping a whole channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(text: str) -> str:
    """``text`` safe inside a Slack inline code span."""
    # A backtick would close the span early and let the rest render as mrkdwn.
    return escape(text).replace("`", "'")


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fmt(value: Any) -> str:
    """One value (a number, a flag, a nested structure) as a short human-readable string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
