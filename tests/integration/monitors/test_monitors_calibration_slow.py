"""Calibration and power on synthetic embedding-like data, the many-repetition (slow) part.

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

from monitors import (
    ClassifierDetector,
    KNNOODDetector,
    MMDDetector,
    MonitorInputError,
    RetrievalClusterDetector,
    SequentialDetector,
)


@pytest.mark.parametrize(
    ("make", "trials", "n", "alpha"),
    [
        # 300 trials each (the exact MMD, <1 s, is a unit test: tests/unit/monitors/test_monitors_calibration.py).
        pytest.param(
            lambda s: MMDDetector(alpha=0.05, n_permutations=200, seed=s), 300, 100, 0.05, marks=pytest.mark.slow
        ),
        pytest.param(lambda s: ClassifierDetector(alpha=0.05, seed=s), 300, 100, 0.05, marks=pytest.mark.slow),
    ],
    ids=["mmd_rff", "classifier"],
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
    assert_rate_is(alarms, trials, 0.01)


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
    assert_rate_is(alarms, trials, 0.05)
    assert naive > 2 * trials * 0.05  # the hit-level chi-square is not a valid test here


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
    assert_rate_is(alarms, trials, 0.05)


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
    for i in range(100):
        cur = unit_mixture(rng, 200, centres[:30])
        counts["single"] += single.check(cur).drift
        counts["k3"] += k3.check(cur).drift
        if i < 25:  # 2,000 permutations a window: 25 quiet windows make the point at a quarter of the cost
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
