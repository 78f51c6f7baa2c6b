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
from _monitors_data import unit_mixture
from scipy.stats import binomtest

from monitors import (
    ClassifierDetector,
    ExactMMDDetector,
    KNNOODDetector,
    MMDDetector,
    MonitorInputError,
    RetrievalClusterDetector,
    SequentialDetector,
    Top1SimilarityDetector,
)
from monitors.result import DriftResult


def _assert_rate_is(k: int, n: int, alpha: float) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.99, method="exact")
    assert ci.low <= alpha <= ci.high, f"{k}/{n} false alarms: 99% CI [{ci.low:.4f}, {ci.high:.4f}] excludes {alpha}"


@pytest.mark.parametrize(
    ("make", "trials", "n", "alpha"),
    [
        # 300 trials each; the exact MMD (small windows, <1 s) stays in the fast tier, the rest run on the slow tier.
        pytest.param(
            lambda s: MMDDetector(alpha=0.05, n_permutations=200, seed=s), 300, 100, 0.05, marks=pytest.mark.slow
        ),
        (lambda s: ExactMMDDetector(alpha=0.05, n_permutations=200, seed=s), 300, 60, 0.05),
        pytest.param(lambda s: ClassifierDetector(alpha=0.05, seed=s), 300, 100, 0.05, marks=pytest.mark.slow),
    ],
    ids=["mmd_rff", "mmd_exact", "classifier"],
)
def test_false_alarm_rate_matches_alpha(
    centres: np.ndarray, make: Callable[[int], Any], trials: int, n: int, alpha: float
) -> None:
    rng = np.random.default_rng(99)
    alarms = sum(
        make(t).fit(unit_mixture(rng, n, centres[:30])).check(unit_mixture(rng, n, centres[:30])).drift
        for t in range(trials)
    )
    _assert_rate_is(alarms, trials, alpha)


@pytest.mark.slow
def test_mmd_false_alarm_rate_at_alpha_001(centres: np.ndarray) -> None:
    rng = np.random.default_rng(7)
    trials = 600
    alarms = sum(
        MMDDetector(alpha=0.01, n_permutations=300, seed=t)
        .fit(unit_mixture(rng, 100, centres[:30]))
        .check(unit_mixture(rng, 100, centres[:30]))
        .drift
        for t in range(trials)
    )
    _assert_rate_is(alarms, trials, 0.01)


@pytest.mark.slow  # 200 permutation tests (~2 s): calibration, not the fast tier
def test_pvalues_are_uniform_under_no_drift(centres: np.ndarray) -> None:
    """Beyond one alpha: the whole p-value distribution of the RFF MMD is uniform (KS test)."""
    from scipy.stats import kstest

    rng = np.random.default_rng(5)
    ps = [
        MMDDetector(n_permutations=200, seed=t)
        .fit(unit_mixture(rng, 80, centres[:30]))
        .check(unit_mixture(rng, 80, centres[:30]))
        .p_value
        for t in range(200)
    ]
    # Permutation p-values live on the grid k / 201; compare with the matching discrete uniform.
    assert kstest(np.asarray(ps) - 0.5 / 201, "uniform").pvalue > 0.01


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
    _assert_rate_is(det_alarms, trials, 0.05)


def _topk_window(rng: np.random.Generator, n: int, k: int, n_docs: int, p_centre: np.ndarray) -> np.ndarray:
    """Each query's k hits are neighbouring documents, so its hits share clusters: dependent, as in real search."""
    centre = rng.choice(n_docs, n, p=p_centre)
    return (centre[:, None] + np.arange(k)[None, :]) % n_docs


@pytest.mark.slow  # 300 trials of a 199-permutation test (~3-7 s): calibration, not the fast tier
def test_retrieval_top_k_permutation_test_is_calibrated_with_dependent_hits() -> None:
    """Counting all k hits as independent draws would over-alarm; permuting whole queries keeps the level."""
    rng = np.random.default_rng(5)
    n_docs = 400
    labels = np.arange(n_docs) // 10  # neighbouring documents share a cluster
    w = rng.gamma(0.5, size=n_docs)
    p_centre = w / w.sum()
    alarms, naive, trials = 0, 0, 300
    for t in range(trials):
        ref = _topk_window(rng, 100, 10, n_docs, p_centre)
        cur = _topk_window(rng, 100, 10, n_docs, p_centre)
        # B = 199: p <= 0.05 exactly when at most 9 permutations reach the observed statistic, so the level is exact.
        det = RetrievalClusterDetector(np.arange(n_docs), labels, alpha=0.05, n_permutations=199, seed=t)
        res = det.fit(ref).check(cur)
        assert "permutation" in res.params["test"]
        alarms += res.drift
        flat = RetrievalClusterDetector(np.arange(n_docs), labels, alpha=0.05)
        naive += flat.fit(ref.ravel()).check(cur.ravel()).drift
    _assert_rate_is(alarms, trials, 0.05)
    assert naive > 2 * trials * 0.05  # the hit-level chi-square is not a valid test here


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


@pytest.mark.slow  # 200 kNN fits on 1000 rows (~3-6 s): calibration, not the fast tier
def test_knn_ood_flag_rate_is_the_quantile_and_window_test_is_calibrated(centres: np.ndarray) -> None:
    rng = np.random.default_rng(8)
    rates, alarms, trials = [], 0, 200
    for t in range(trials):
        det = KNNOODDetector(k=10, quantile=0.95, holdout=0.2, alpha=0.05, seed=t)
        det.fit(unit_mixture(rng, 1000, centres[:30]))
        res = det.evaluate(unit_mixture(rng, 300, centres[:30]))
        rates.append(res.rate)
        alarms += res.drift
        assert res.expected_rate <= 0.05
    assert abs(np.mean(rates) - 0.05) < 0.006
    _assert_rate_is(alarms, trials, 0.05)


@pytest.mark.slow  # 20 trials on 1000-row windows (~3 s per detector): not the fast tier
@pytest.mark.parametrize(
    "make", [lambda s: MMDDetector(seed=s), lambda s: ClassifierDetector(seed=s)], ids=["mmd_rff", "classifier"]
)
def test_power_for_a_new_topic_at_20_percent(centres: np.ndarray, make: Callable[[int], Any]) -> None:
    rng = np.random.default_rng(12)
    trials, hits = 20, 0
    for t in range(trials):
        ref = unit_mixture(rng, 1000, centres[:30])
        cur = np.r_[unit_mixture(rng, 800, centres[:30]), unit_mixture(rng, 200, centres[30:])]
        hits += make(t).fit(ref).check(cur).drift
    assert hits / trials >= 0.9


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
    _assert_rate_is(alarms, runs, 0.2**3)
    assert "0.008" in det.guarantee


@pytest.mark.integration  # ~5 s of simulated windows: not the fast tier
def test_sequential_modes_with_one_fixed_reference(centres: np.ndarray) -> None:
    """The daemon's case: dependent windows. k-in-a-row stays below a single check; Bonferroni stays silent."""
    rng = np.random.default_rng(21)
    ref = unit_mixture(rng, 200, centres[:30])
    single = SequentialDetector(MMDDetector(n_permutations=200), consecutive=1).fit(ref)
    k3 = SequentialDetector(MMDDetector(n_permutations=200), consecutive=3).fit(ref)
    with pytest.raises(MonitorInputError, match="could never alarm; use n_permutations >= 2000"):
        SequentialDetector.bonferroni(MMDDetector(n_permutations=200), family_alpha=0.05, horizon=100)
    bonf = SequentialDetector.bonferroni(MMDDetector(n_permutations=2000), family_alpha=0.05, horizon=100).fit(ref)
    counts = {"single": 0, "k3": 0, "bonf": 0}
    for _ in range(100):
        cur = unit_mixture(rng, 200, centres[:30])
        counts["single"] += single.check(cur).drift
        counts["k3"] += k3.check(cur).drift
        counts["bonf"] += bonf.check(cur).drift
    assert counts["k3"] <= counts["single"] <= 100 * 0.12
    assert counts["bonf"] == 0
    assert "Bonferroni" in bonf.guarantee
    # A persistent shift raises the alarm on the k-th consecutive drifted window, not before.
    k3.reset()
    drifted = [
        k3.check(np.r_[unit_mixture(rng, 160, centres[:30]), unit_mixture(rng, 40, centres[30:])]) for _ in range(3)
    ]
    assert [r.details["consecutive"] >= 3 for r in drifted] == [False, False, True]
    assert all(r.details["window_drift"] for r in drifted)
