"""The detector contract: ``fit(reference)`` once, then ``check(current)`` per window."""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable


from .result import DriftResult


@runtime_checkable
class Detector(Protocol):
    """Anything that learns a reference window and tests later windows against it.

    ``fit`` validates and stores the reference and returns the detector; ``check`` validates the current window
    (same dimension, finite, at least ``min_rows`` rows) and returns a frozen :class:`DriftResult`. Calling
    ``check`` before ``fit`` raises :class:`~monitors.errors.NotFittedError`; bad input raises
    :class:`~monitors.errors.MonitorInputError`.
    """

    name: str

    def fit(self, reference: Any) -> Self: ...

    def check(self, current: Any) -> DriftResult: ...
