"""The pooled sub-corpus keeps the base model's score exact and can only flatter the candidate."""

import numpy as np
import pytest

from retrain import DataError, ExactRetriever, evaluate_embeddings
from retrain.retrieval import normalize
from retrain.subcorpus import neighbours, pool


def _world(seed: int = 0, n: int = 3000, d: int = 32, q: int = 80):  # type: ignore[no-untyped-def]
    """Base and candidate embed the same documents slightly differently; queries are noisy documents."""
    rng = np.random.default_rng(seed)
    base_docs = normalize(rng.normal(size=(n, d)))
    cand_docs = normalize(base_docs + 0.3 * rng.normal(size=(n, d)) / np.sqrt(d))
    held = rng.choice(n, size=q, replace=False)
    noise = rng.normal(size=(q, d)) / np.sqrt(d)
    return (
        base_docs,
        cand_docs,
        normalize(base_docs[held] + 0.9 * noise),
        normalize(cand_docs[held] + 0.9 * noise),
        [{int(i)} for i in held],
        rng,
    )


def test_base_score_is_exact_and_candidate_score_only_rises_on_the_pool() -> None:
    base_docs, cand_docs, bq, cq, rel, rng = _world()
    ids = list(range(len(base_docs)))
    live = ExactRetriever(ids, base_docs)
    sub = pool(
        [i for r in rel for i in r],
        neighbours(live, bq, 20),
        neighbours(live, cq, 20),
        rng.choice(len(ids), size=100, replace=False).tolist(),
    )
    assert len(sub.ids) == len(set(sub.ids)) < len(ids) // 2
    assert sub.relevant == len(rel) and sub.base_pool > 0 and sub.candidate_pool >= 0 and sub.distractors > 0
    sid = list(sub.ids)
    full_b = evaluate_embeddings(bq, base_docs, ids, rel).scores["ndcg@10"]
    pool_b = evaluate_embeddings(bq, base_docs[sid], sid, rel).scores["ndcg@10"]
    np.testing.assert_allclose(pool_b, full_b)  # the base's full top-10 is all pooled
    full_c = evaluate_embeddings(cq, cand_docs, ids, rel).scores["ndcg@10"]
    pool_c = evaluate_embeddings(cq, cand_docs[sid], sid, rel).scores["ndcg@10"]
    assert np.all(pool_c >= full_c - 1e-12)  # removing competitors never lowers a score
    # Pooling the candidate's own neighbours brings its pooled score closer to the truth.
    no_cand = list(pool([i for r in rel for i in r], neighbours(live, bq, 20), [], sub.ids[-100:]).ids)
    loose_c = evaluate_embeddings(cq, cand_docs[no_cand], no_cand, rel).scores["ndcg@10"]
    assert abs(pool_c.mean() - full_c.mean()) <= abs(loose_c.mean() - full_c.mean())


def test_pool_depth_must_reach_the_metric() -> None:
    with pytest.raises(DataError, match="pool depth k=0"):
        neighbours(ExactRetriever([0], np.ones((1, 4))), np.ones((1, 4)), 0)
