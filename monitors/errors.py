"""Exceptions raised by the monitors package. Messages name the argument, the offending value and the fix."""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of everything the monitors package raises on purpose."""


class MonitorInputError(MonitorError, ValueError):
    """An array or argument passed to a monitor has the wrong shape, type, size or contents."""


class NotFittedError(MonitorError, RuntimeError):
    """``check``/``score`` was called before ``fit``."""


class MissingDependencyError(MonitorError, ImportError):
    """An optional dependency (Evidently) is not installed."""
