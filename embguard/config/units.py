"""Durations for people, written one way everywhere (status lines, gc plans, alert texts)."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """``seconds`` in the two largest units that matter: ``42s``, ``7m``, ``3h 5m``, ``2d 4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"
