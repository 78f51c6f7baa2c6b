import math

import numpy as np
import pytest

from retrain import evaluate_embeddings, mrr_at_k, ndcg_at_k, recall_at_k, score_rankings


def test_binary_metrics_by_hand() -> None:
    ranked = ["a", "b", "c", "d"]
    rel = {"b", "d", "z"}
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rel) == pytest.approx(dcg / idcg)
    assert recall_at_k(ranked, rel) == pytest.approx(2 / 3)
    assert mrr_at_k(ranked, rel) == pytest.approx(1 / 2)


def test_graded_ndcg_by_hand() -> None:
    ranked = ["x", "y", "z"]
    rel = {"x": 1, "y": 3}
    dcg = 1 + 3 / math.log2(3)
    idcg = 3 + 1 / math.log2(3)
    assert ndcg_at_k(ranked, rel) == pytest.approx(dcg / idcg)


def test_cutoff_and_edge_cases() -> None:
    ranked = list(range(20))
    assert ndcg_at_k(ranked, {15}) == 0.0 and recall_at_k(ranked, {15}) == 0.0 and mrr_at_k(ranked, {15}) == 0.0
    assert ndcg_at_k(ranked, {0}) == 1.0 and mrr_at_k(ranked, {0}) == 1.0
    assert ndcg_at_k(ranked, set()) == 0.0
    assert ndcg_at_k(ranked, {9}, k=10) == pytest.approx(1 / math.log2(11))


def test_exact_cosine_retrieval_feeds_metrics() -> None:
    docs = np.eye(3, dtype=np.float32)
    queries = np.array([[1, 0.1, 0], [0, 0.2, 1]], dtype=np.float32)
    sc = evaluate_embeddings(queries, docs, ["d0", "d1", "d2"], [{"d0"}, {"d1"}])
    assert sc.scores["mrr@10"].tolist() == [1.0, 0.5]
    assert sc.scores["recall@10"].tolist() == [1.0, 1.0]
    again = score_rankings([["d0", "d1"], ["d2", "d1"]], [{"d0"}, {"d1"}])
    np.testing.assert_allclose(again.scores["ndcg@10"], sc.scores["ndcg@10"])
