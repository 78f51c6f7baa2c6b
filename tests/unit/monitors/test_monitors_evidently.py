"""Evidently's methods called directly agree with its Report; the HTML report builds; inputs stay untouched."""

from __future__ import annotations

import numpy as np
import pytest

from monitors import EvidentlyDetector
from monitors.evidently_methods import to_frame


@pytest.fixture(scope="module")
def windows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((120, 24)), rng.standard_normal((100, 24)) + 0.3


def test_fixed_thresholds_are_options(windows: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = windows
    strict = EvidentlyDetector("distance", threshold=100.0).fit(ref).check(cur)
    assert strict.threshold == 100.0 and not strict.drift and strict.params["threshold"] == 100.0


def test_model_method_does_not_mutate_frames_we_pass(windows: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = windows
    det = EvidentlyDetector("model").fit(ref)
    first = det.check(cur)
    # A second check on the same detector sees no leftover "target" column and gives the same answer.
    assert det.check(cur) == first
    assert list(to_frame(ref).columns)[:2] == ["e0", "e1"]
