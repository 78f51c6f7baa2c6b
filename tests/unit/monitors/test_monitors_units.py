"""Focused behaviour of single detectors: retrieval bins, OOD scores, top-1 helper, explanations."""

from __future__ import annotations

import numpy as np
import pytest
from monitors_data import unit_mixture

from monitors import UNKNOWN, KNNOODDetector, MonitorInputError, RetrievalClusterDetector, explain_ood, top1_similarity


def test_retrieval_counts_unknown_ids_in_their_own_bin() -> None:
    docs = np.array(["a", "b", "c", "d"])
    det = RetrievalClusterDetector(docs, np.array([0, 0, 1, 1]), min_rows=4)
    assert det.labels_of(["a", "zzz", "d"]).tolist() == [0, UNKNOWN, 1]
    det.fit(np.array(["a", "c"] * 30))
    res = det.check(np.array(["a", "c"] * 20 + ["new-doc"] * 20))
    assert res.details["unknown_current"] == 20 and res.details["unknown_reference"] == 0
    assert res.drift  # a third of the window lands on documents the clustering never saw


def test_retrieval_detects_a_moved_histogram_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    docs = np.arange(200)
    det = RetrievalClusterDetector(docs, docs % 10).fit(rng.choice(docs, 500))
    assert not det.check(rng.choice(docs, 500)).drift
    shifted = np.r_[rng.choice(docs, 400), rng.choice(docs[docs % 10 == 3], 100)]
    res = det.check(shifted)
    assert res.drift and res.details["largest_share_changes"][0][0] == 3


def test_retrieval_with_everything_merged_is_not_a_drift() -> None:
    det = RetrievalClusterDetector(np.arange(4), np.arange(4), min_rows=2).fit(np.array([0, 1]))
    res = det.check(np.array([2, 3]))
    assert res.p_value == 1.0 and not res.drift and res.details["bins_tested"] == 1


def test_from_corpus_clusters_vectors(centres: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    corpus = unit_mixture(rng, 600, centres[:6], spread=0.1)
    det = RetrievalClusterDetector.from_corpus(np.arange(600), corpus, n_clusters=6)
    assert det.n_clusters == 6 and len(det.assignment) == 600
    with pytest.raises(MonitorInputError, match="vectors: 5 rows for 600 doc_ids"):
        RetrievalClusterDetector.from_corpus(np.arange(600), corpus[:5])


def test_knn_scores_are_distances_and_scale_free(centres: np.ndarray) -> None:
    rng = np.random.default_rng(2)
    ref = unit_mixture(rng, 500, centres[:5])
    det = KNNOODDetector(k=5).fit(ref)
    q = unit_mixture(rng, 50, centres[:5])
    np.testing.assert_allclose(det.score(q), det.score(q * 7.0), atol=1e-5)  # normalised first
    far = det.score(unit_mixture(rng, 50, centres[20:22]))
    assert far.min() > det.threshold > 0 and far.max() <= 2.0
    res = det.evaluate(q)
    with pytest.raises(ValueError):
        res.scores[0] = 0.0  # read-only


def test_top1_similarity_returns_best_hit_ids(centres: np.ndarray) -> None:
    corpus = centres[:5].astype(np.float32)
    sims, ids = top1_similarity(corpus[[3, 1]] * 2.0, corpus, corpus_ids=np.array([10, 11, 12, 13, 14]))
    assert ids.tolist() == [13, 11]
    np.testing.assert_allclose(sims, 1.0, atol=1e-5)
    with pytest.raises(MonitorInputError, match="corpus_ids: 2 ids for 5 corpus rows"):
        top1_similarity(corpus, corpus, corpus_ids=[1, 2])


def test_explanations_group_new_topics(centres: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    det = KNNOODDetector(k=10).fit(unit_mixture(rng, 2000, centres[:30]))
    known = unit_mixture(rng, 400, centres[:30])
    new_a = unit_mixture(rng, 60, centres[30:31])
    new_b = unit_mixture(rng, 30, centres[31:32])
    queries = np.concatenate([known, new_a, new_b])
    ids = np.array([f"k{i}" for i in range(400)] + [f"a{i}" for i in range(60)] + [f"b{i}" for i in range(30)])
    expl = explain_ood(det, queries, ids, max_clusters=4)
    assert expl[0].size >= 55 and all(i.startswith("a") for i in expl[0].representative_ids)
    assert any(all(i.startswith("b") for i in e.representative_ids) for e in expl[1:])
    assert expl[0].centroid_distance > 0.3
    with pytest.raises(MonitorInputError, match="ids: 3 ids for 490 query rows"):
        explain_ood(det, queries, ids[:3])


def test_rff_mmd_integer_permutation_statistics_are_exact(centres: np.ndarray) -> None:
    """The int8-feature permutation product is exact: equal splits give bit-identical statistics, and the values
    match a float64 computation on the same quantised features and a float32 one on the unquantised features."""
    import torch

    from monitors.mmd import MMDDetector
    from monitors.permutation import assignments

    rng = np.random.default_rng(3)
    ref, cur = unit_mixture(rng, 300, centres[:30]), unit_mixture(rng, 250, centres[:30])
    det = MMDDetector(n_features=256).fit(ref)
    pooled = torch.from_numpy(np.concatenate([ref, cur]))
    assigned = assignments(300, 250, 50, torch.Generator().manual_seed(0))
    assigned[1] = assigned[0]  # a "permutation" equal to the observed split
    stats = det._stats(pooled, assigned, 1.3)
    assert stats[1] == stats[0]

    feats = det._features(pooled, 1.3).double() / 127
    w = torch.where(assigned.bool(), 1 / 300, -1 / 250).double()
    w[assigned.bool()], w[~assigned.bool()] = 1 / 300, -1 / 250  # float64 weights, not float32 ones upcast
    exact = ((w @ feats) ** 2).sum(dim=1) * (2 / 256)
    assert torch.allclose(stats, exact, rtol=1e-10, atol=0)

    assert det._reference_projection is not None and det._phase is not None
    proj = torch.cat([det._reference_projection, pooled[300:] @ det._omega]) / 1.3 + det._phase
    unquantised = ((w.float() @ torch.cos(proj)) ** 2).sum(dim=1) * (2 / 256)
    # Rounding the features to 1/127 moves the statistic by well under 1%.
    assert torch.allclose(stats.float(), unquantised, rtol=1e-2)


def test_the_float32_fallback_of_the_integer_product_is_exact_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without torch's private int8 product the same integers come out of a float32 one."""
    import torch

    from monitors import mmd
    from monitors.permutation import assignments

    gen = torch.Generator().manual_seed(0)
    a = assignments(700, 600, 40, gen)
    b = torch.randint(-127, 128, (1300, 64), generator=gen, dtype=torch.int8)
    fast = mmd._int_matmul(a, b)
    monkeypatch.delattr(torch, "_int_mm")
    slow = mmd._int_matmul(a, b)
    assert slow.dtype == torch.int32 and torch.equal(fast, slow)
    assert torch.equal(slow, (a.long() @ b.long()).int())
