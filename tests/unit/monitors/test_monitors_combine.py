"""The combined decision: Holm and Cauchy combinations of real detectors' p-values hold their family-wise level.

No-drift trials draw fresh windows, so trials are independent and the observed family-wise rate is binomial: its
99% Clopper-Pearson interval must contain the stated level (or, for the dependent case, lie at or below alpha).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from monitors_data import unit_mixture

from monitors import (
    CombinedDetector,
    DriftResult,
    ExactMMDDetector,
    MMDDetector,
    MonitorInputError,
    RetrievalClusterDetector,
    SequentialDetector,
    Top1SimilarityDetector,
    cauchy_p_value,
    combine,
    holm_adjusted,
)

ALPHA = 0.05
# Permutation p-values take values (1 + e) / (1 + B): with B = 399 the Holm level alpha / 4 = 5 / 400 is attainable
# exactly, so the stated level is exact rather than conservative.
B = 399


def _members(seed: int) -> dict[str, Any]:
    docs = np.arange(60)
    return {
        "mmd": MMDDetector(alpha=ALPHA, n_permutations=B, n_features=64, seed=seed),
        "mmd_exact": ExactMMDDetector(alpha=ALPHA, n_permutations=B, seed=seed),
        "retrieval": RetrievalClusterDetector(docs, docs % 6, alpha=ALPHA, n_permutations=B, seed=seed),
        "top1": Top1SimilarityDetector(alpha=ALPHA, alternative="two-sided"),
    }


def _window(rng: np.random.Generator, centres: np.ndarray, n: int) -> dict[str, Any]:
    """A no-drift window for every member, drawn independently per member."""
    return {
        "mmd": unit_mixture(rng, n, centres[:5])[:, :8],
        "mmd_exact": unit_mixture(rng, n, centres[:5])[:, :8],
        "retrieval": rng.integers(0, 60, (n, 5)),
        "top1": rng.uniform(0.2, 0.9, n),
    }


def test_holm_and_cauchy_arithmetic() -> None:
    adj = holm_adjusted({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adj == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert cauchy_p_value({"a": 0.2}) == pytest.approx(0.2)
    assert cauchy_p_value({"a": 0.3, "b": 0.3, "c": 0.3}) == pytest.approx(0.3)
    assert cauchy_p_value({"a": 1e-20, "b": 0.9}) < 1e-14


def test_a_real_shift_is_carried_by_the_monitor_that_sees_it(centres: np.ndarray) -> None:
    rng = np.random.default_rng(43)
    det = CombinedDetector(_members(0), alpha=ALPHA).fit(_window(rng, centres, 200))
    cur = _window(rng, centres, 200)
    cur["top1"] = rng.uniform(0.1, 0.6, 200)  # the corpus stopped answering well
    res = det.check(cur)
    assert res.drift and res.details["carried_by"][0] == "top1"
    assert res.p_value == pytest.approx(min(1.0, 4 * res.details["p_values"]["top1"]))
    assert "any dependence" in res.params["guarantee"]


def test_sequential_page_over_the_combined_decision(centres: np.ndarray) -> None:
    rng = np.random.default_rng(44)
    page = SequentialDetector(CombinedDetector(_members(0), alpha=ALPHA), consecutive=2, window_alpha=ALPHA)
    page.fit(_window(rng, centres, 200))
    shifted = [{**_window(rng, centres, 200), "top1": rng.uniform(0.1, 0.6, 200)} for _ in range(2)]
    out = [page.check(w) for w in shifted]
    assert [r.drift for r in out] == [False, True]
    assert out[1].details["window"].details["carried_by"] == ("top1",)


def test_combine_needs_p_values() -> None:
    fixed = DriftResult("evidently_distance", 0.3, None, 0.2, True, None, 10, 10)
    with pytest.raises(MonitorInputError, match="none of e has a p-value"):
        combine({"e": fixed})
    ok = DriftResult("mmd", 0.0, 0.5, None, False, 0.05, 10, 10)
    res = combine({"e": fixed, "mmd": ok})
    assert res.params["ignored"] == ("e",) and not res.drift and math.isclose(res.p_value, 0.5)
