"""The small interfaces ``retrain`` needs from the outside world (a model, a vector index)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

DocId = Hashable


@runtime_checkable
class Encoder(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 rows, one per text."""
        ...


@runtime_checkable
class Retriever(Protocol):
    def search(self, query_vectors: np.ndarray, k: int) -> list[list[tuple[DocId, float]]]:
        """For each query row, up to ``k`` ``(doc_id, score)`` best first (higher score = more similar)."""
        ...
