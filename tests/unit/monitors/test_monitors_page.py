"""The page over a shared permutation null: calibrated, deterministic for a seed, never weaker than Bonferroni on
its own permutations, and each member's shared-null statistic is the statistic it reports on its own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from monitors_data import assert_rate_is, unit_mixture
from scipy.stats import ks_2samp

from monitors import (
    MMDDetector,
    MonitorInputError,
    NeighbourDetector,
    Page,
    RetrievalClusterDetector,
    Top1SimilarityDetector,
    cluster_corpus,
)
from monitors.permutation import assignments, split_p_values


def _members(seed: int, labels: np.ndarray, n_permutations: int = 199) -> dict[str, Any]:
    return {
        "mmd": MMDDetector(n_features=256, seed=seed),
        "neighbours": NeighbourDetector(k=5, seed=seed),
        "retrieval": RetrievalClusterDetector(np.arange(len(labels)), labels, top_k=5, seed=seed),
        "top1": Top1SimilarityDetector(),
    }


def _inputs(x: np.ndarray, corpus: np.ndarray) -> dict[str, Any]:
    sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ corpus.T
    top = np.argsort(-sims, axis=1)[:, :5]
    return {"vectors": x, "top_ids": top, "similarities": np.take_along_axis(sims, top[:, :1], axis=1)[:, 0]}


@pytest.fixture(scope="module")
def corpus(centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    docs = unit_mixture(np.random.default_rng(5), 400, centres[:33])
    return docs, cluster_corpus(docs, n_clusters=12, seed=0)


def test_the_page_is_calibrated_on_no_drift_windows(centres: np.ndarray, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    """Four members, 300 no-drift windows at alpha = 0.05: the page's false-alarm rate is alpha (99% interval), not
    up to 4 x alpha as four separate alarms would give."""
    docs, labels = corpus
    rng = np.random.default_rng(11)
    trials, alarms, any_member = 300, 0, 0
    for t in range(trials):
        ref, cur = unit_mixture(rng, 60, centres[:30]), unit_mixture(rng, 60, centres[:30])
        page = Page(_members(t, labels), alpha=0.05, seed=t).fit(_inputs(ref, docs))
        res = page.check(_inputs(cur, docs))
        alarms += res.drift
        any_member += any(p <= 0.05 for p in res.details["p_values"].values())
    assert_rate_is(alarms, trials, 0.05)
    assert any_member > alarms * 1.5  # the members' separate alarms would over-page; the shared null does not


def test_the_page_is_deterministic_for_a_seed(centres: np.ndarray, corpus: tuple[np.ndarray, np.ndarray]) -> None:
    docs, labels = corpus
    rng = np.random.default_rng(3)
    ref, cur = unit_mixture(rng, 1500, centres[:30]), unit_mixture(rng, 1500, centres[:32])
    runs = []
    for _ in range(2):
        # 3,000 pooled rows above max_rows=1,000: the neighbour graph's random subset comes from the seed too.
        members = _members(7, labels) | {"neighbours": NeighbourDetector(k=5, max_rows=1000, seed=7)}
        page = Page(members, alpha=0.01, seed=7).fit(_inputs(ref, docs))
        runs.append([page.check(_inputs(cur, docs)) for _ in range(2)])
    for a, b in zip(runs[0], runs[1], strict=True):
        assert a.p_value == b.p_value and dict(a.details["p_values"]) == dict(b.details["p_values"])
        assert {n: r.statistic for n, r in a.details["results"].items()} == {
            n: r.statistic for n, r in b.details["results"].items()
        }


def test_a_planted_topic_pages_and_the_page_is_never_weaker_than_bonferroni(
    centres: np.ndarray, corpus: tuple[np.ndarray, np.ndarray]
) -> None:
    """A topic the reference lacks at 30% of the window pages; on every window the page's p-value is at most
    (members) x the smallest member p-value on the same permutations (deterministically, not only on average)."""
    docs, labels = corpus
    rng = np.random.default_rng(8)
    pages = 0
    for t in range(10):
        ref = unit_mixture(rng, 150, centres[:30])
        cur = np.concatenate([unit_mixture(rng, 105, centres[:30]), unit_mixture(rng, 45, centres[31:32])])
        res = Page(_members(t, labels), alpha=0.01, seed=t).fit(_inputs(ref, docs)).check(_inputs(cur, docs))
        pages += res.drift
        p = dict(res.details["p_values"])
        assert res.p_value <= len(p) * min(p.values()) + 1e-12
        assert all(res.details["adjusted"][n] <= 0.01 for n in res.details["carried_by"])
        assert res.drift == bool(res.details["carried_by"])
    assert pages >= 9


def test_each_members_shared_null_statistic_is_its_own_statistic(
    centres: np.ndarray, corpus: tuple[np.ndarray, np.ndarray]
) -> None:
    """Row 0 (the observed split) of every member's split statistics is what that member reports on its own."""
    docs, labels = corpus
    rng = np.random.default_rng(4)
    ref, cur = unit_mixture(rng, 120, centres[:30]), unit_mixture(rng, 90, centres[:33])
    ri, ci = _inputs(ref, docs), _inputs(cur, docs)
    assigned = assignments(120, 90, 49, torch.Generator().manual_seed(0))
    for name, det in _members(0, labels).items():
        kind = det.input_kind
        own = det.fit(ri[kind]).check(ci[kind]).statistic
        det.fit(ri[kind])
        shared = det.split_statistics(ci[kind], assigned)
        assert shared.shape == (50,) and shared[0] == pytest.approx(own, rel=1e-9), name
    two_sided = Top1SimilarityDetector(alternative="two-sided").fit(ri["similarities"])
    stat = two_sided.split_statistics(ci["similarities"], assigned)[0]
    assert stat == pytest.approx(ks_2samp(ci["similarities"], ri["similarities"]).statistic, rel=1e-12)


def test_split_p_values_rank_every_split_against_all_of_them() -> None:
    stats = np.array([3.0, 1.0, 3.0, 5.0, 0.5])
    np.testing.assert_allclose(split_p_values(stats), [3 / 5, 4 / 5, 3 / 5, 1 / 5, 5 / 5])


def test_members_that_cannot_share_a_null_are_refused_with_the_alternative() -> None:
    from monitors import KNNOODDetector

    with pytest.raises(MonitorInputError, match=r"ood cannot share a permutation null .*CombinedDetector"):
        Page({"ood": KNNOODDetector(), "mmd": MMDDetector()})
    with pytest.raises(MonitorInputError, match="members: empty"):
        Page({})


def test_retrieval_split_statistics_in_blocks_equal_one_whole_product(corpus: tuple[np.ndarray, np.ndarray]) -> None:
    """More splits than one block (128): the blocked statistics equal the chi-square distance of the two mean
    profiles computed for all splits at once, so bounding memory changes no answer."""
    _, labels = corpus
    rng = np.random.default_rng(2)
    ref_ids, cur_ids = rng.integers(0, 400, (300, 5)), rng.integers(0, 400, (280, 5))
    det = RetrievalClusterDetector(np.arange(len(labels)), labels, top_k=5).fit(ref_ids)
    assigned = assignments(300, 280, 300, torch.Generator().manual_seed(1))
    stats = det.split_statistics(cur_ids, assigned)

    def profile(ids: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), labels.max() + 1))
        for i, row in enumerate(ids):
            np.add.at(out[i], labels[row], 1 / len(row))
        return out

    pooled = np.concatenate([profile(ref_ids), profile(cur_ids)])
    keep = pooled.sum(axis=0) > 0
    a = assigned.numpy().astype(bool)
    diff = np.stack([pooled[r][:, keep].mean(0) - pooled[~r][:, keep].mean(0) for r in a])
    whole = (diff**2 / pooled[:, keep].mean(0)).sum(axis=1) * (300 * 280 / 580)
    np.testing.assert_allclose(stats, whole, rtol=1e-9)


def test_the_neighbours_test_stays_calibrated_when_many_queries_are_one_repeated_vector(centres: np.ndarray) -> None:
    """A popular query repeated in both windows: its copies tie in the neighbour search, and ties must not break by
    which window a row came from (they did when the graph kept the pooled order: 23% false alarms at alpha 0.05)."""
    rng = np.random.default_rng(21)
    trials, alarms = 300, 0
    for t in range(trials):
        popular = unit_mixture(rng, 1, centres[:30])
        windows = []
        for _ in range(2):
            x = unit_mixture(rng, 100, centres[:30])
            x[rng.random(100) < 0.3] = popular
            windows.append(x)
        det = NeighbourDetector(alpha=0.05, n_permutations=199, seed=t).fit(windows[0])
        alarms += det.check(windows[1]).drift
    assert_rate_is(alarms, trials, 0.05)
