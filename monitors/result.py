"""Frozen result types shared by the detectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one ``check``.

    ``p_value`` is ``None`` for methods that compare a score with a fixed threshold (Evidently's); those set
    ``threshold`` instead. ``drift`` is the decision: ``p_value <= alpha`` for calibrated tests, Evidently's own
    rule otherwise. ``params`` and ``details`` are read-only mappings.
    """

    method: str
    statistic: float
    p_value: float | None
    threshold: float | None
    drift: bool
    alpha: float | None
    n_reference: int
    n_current: int
    params: Mapping[str, Any] = field(default_factory=_empty)
    details: Mapping[str, Any] = field(default_factory=_empty)
