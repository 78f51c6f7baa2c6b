"""The detector contract: ``fit(reference)`` once, then ``check(current)`` per window."""

from __future__ import annotations

from typing import Any, Final, Literal, Protocol, Self, runtime_checkable

from .result import DriftResult

InputKind = Literal["vectors", "top_ids", "similarities", "inputs"]
# What a detector's fit/check take, so a caller builds inputs from one table instead of branching on names:
# "vectors": (rows, dim) query embeddings; "top_ids": per query, the ids of its top-k hits (a 1-D array of
# top-1 ids is the k = 1 case); "similarities": per query, the similarity of its best hit; "inputs": a mapping
# from member name to that member's input (CombinedDetector).
INPUT_KINDS: Final = ("vectors", "top_ids", "similarities", "inputs")


@runtime_checkable
class Detector(Protocol):
    """Anything that learns a reference window and tests later windows against it.

    ``fit`` validates and stores the reference and returns the detector; ``check`` validates the current window
    (same dimension, finite, at least ``min_rows`` rows) and returns a frozen :class:`DriftResult`. Calling
    ``check`` before ``fit`` raises :class:`~monitors.errors.NotFittedError`; bad input raises
    :class:`~monitors.errors.MonitorInputError`. ``input_kind`` says what ``fit`` and ``check`` take.
    """

    name: str
    input_kind: InputKind

    def fit(self, reference: Any) -> Self: ...

    def check(self, current: Any) -> DriftResult: ...
