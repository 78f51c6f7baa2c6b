"""Calibration and power on synthetic embedding-like data (unit vectors around random topic centres).

False-alarm tests draw a fresh reference and current window per trial, so trials are independent and the
observed rate has a binomial distribution: its 99% Clopper-Pearson interval must contain alpha. Seeds are fixed,
so the outcome is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from monitors_data import assert_rate_is, unit_mixture
from scipy.stats import binomtest

from monitors import (
    ExactMMDDetector,
    RetrievalClusterDetector,
    SequentialDetector,
    Top1SimilarityDetector,
)
from monitors.result import DriftResult


@pytest.mark.parametrize(
    ("make", "trials", "n", "alpha"),
    [
        # 300 trials; the exact MMD (small windows, <1 s) is a unit test, the RFF MMD and the classifier run in
        # tests/integration/monitors/test_monitors_calibration_slow.py.
        (lambda s: ExactMMDDetector(alpha=0.05, n_permutations=200, seed=s), 300, 60, 0.05),
    ],
    ids=["mmd_exact"],
)
def test_false_alarm_rate_matches_alpha(
    centres: np.ndarray, make: Callable[[int], Any], trials: int, n: int, alpha: float
) -> None:
    rng = np.random.default_rng(99)
    alarms = sum(
        make(t).fit(unit_mixture(rng, n, centres[:30])).check(unit_mixture(rng, n, centres[:30])).drift
        for t in range(trials)
    )
    assert_rate_is(alarms, trials, alpha)


def test_retrieval_g_test_is_calibrated_with_sparse_bins() -> None:
    """Many rare clusters force bin merging; without it the chi-square approximation over-alarms."""
    rng = np.random.default_rng(3)
    docs = np.arange(400)
    labels = docs % 40
    weights = np.r_[np.full(10, 8.0), np.full(30, 0.2)]
    p_doc = (weights / weights.sum())[labels] / np.bincount(labels)[labels]
    det_alarms = 0
    trials = 400
    for _ in range(trials):
        det = RetrievalClusterDetector(docs, labels, alpha=0.05)
        det.fit(rng.choice(docs, 150, p=p_doc))
        res = det.check(rng.choice(docs, 150, p=p_doc))
        assert res.details["bins_merged"] > 0
        det_alarms += res.drift
    assert_rate_is(det_alarms, trials, 0.05)


def test_top1_similarity_ks_is_calibrated_and_sees_a_drop() -> None:
    rng = np.random.default_rng(4)
    alarms = sum(Top1SimilarityDetector().fit(rng.beta(8, 3, 200)).check(rng.beta(8, 3, 200)).drift for _ in range(300))
    # KS p-values are slightly conservative for finite samples: the rate may sit below alpha, never above.
    assert binomtest(alarms, 300).proportion_ci(0.99).low <= 0.05
    ref = rng.beta(8, 3, 1000)
    cur = np.r_[rng.beta(8, 3, 800), rng.beta(3, 6, 200)]  # 20% of queries the corpus cannot answer well
    res = Top1SimilarityDetector().fit(ref).check(cur)
    assert res.drift and res.details["p50"] < res.details["reference_p50"]
    assert set(res.details) >= {"p5", "p50", "p95"}
    assert not Top1SimilarityDetector().fit(ref).check(np.r_[rng.beta(8, 3, 800), rng.beta(20, 2, 200)]).drift


class _UniformP:
    """A stand-in detector whose p-values are independent uniforms: the case the alpha^k guarantee assumes."""

    name = "uniform"
    input_kind = "vectors"
    alpha = 0.2

    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def fit(self, reference: Any) -> _UniformP:
        return self

    def check(self, current: Any) -> DriftResult:
        p = float(self.rng.uniform())
        return DriftResult("uniform", 0.0, p, None, p <= self.alpha, self.alpha, 10, 10)


def test_k_consecutive_rule_meets_its_independent_window_guarantee() -> None:
    inner = _UniformP()
    det = SequentialDetector(inner, consecutive=3)
    runs = 20_000
    alarms = 0
    # Independent runs of k checks, so the binomial interval applies: P(alarm at the k-th check) = alpha^k.
    for _ in range(runs):
        det.fit(None)
        results = [det.check(None) for _ in range(3)]
        assert [r.details["consecutive"] for r in results][-1] == det.consecutive
        assert not any(r.drift for r in results[:2])
        alarms += results[-1].drift
    assert_rate_is(alarms, runs, 0.2**3)
    assert "0.008" in det.guarantee
