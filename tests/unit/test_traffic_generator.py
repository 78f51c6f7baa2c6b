"""The traffic benchmark's page counting (benchmarks/traffic.py). Its simulated stream, which needs the real
model's embeddings of the corpus, is checked in tests/integration/test_traffic_stream_shape.py."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import traffic as tr


def test_page_counting() -> None:
    assert tr.pages([False, True, True, False, True]) == 2
    assert tr.sustained_at([0.001, 0.001, 0.5, 0.001, 0.001, 0.001], 0.01, 3) == [False] * 5 + [True]
    assert tr.delay([False, False, False, True], 1) == 2 and tr.delay([False], 0) is None
    assert tr.empirical_threshold([0.5] * 99 + [0.0001], 0.01) <= 0.01
