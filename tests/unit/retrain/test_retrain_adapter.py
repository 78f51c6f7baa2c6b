import numpy as np
import pytest

from retrain import AdapterConfig, DataError, apply_adapter, evaluate_embeddings, load_adapter, train_adapter
from retrain.retrieval import normalize


def _task(seed: int = 0, n: int = 400, d: int = 24):  # type: ignore[no-untyped-def]
    """Queries are a fixed linear distortion of their documents: a linear adapter can undo it."""
    rng = np.random.default_rng(seed)
    docs = normalize(rng.normal(size=(n, d)))
    distort = np.eye(d) + 2.0 * rng.normal(size=(d, d)) / np.sqrt(d)
    queries = normalize(docs @ distort + 0.2 * rng.normal(size=(n, d)))
    return queries, docs


def test_untrained_adapter_is_the_identity() -> None:
    q, _ = _task()
    np.testing.assert_allclose(apply_adapter(q, np.eye(q.shape[1], dtype=np.float32)), q, atol=1e-6)


def test_adapter_improves_held_out_retrieval_without_touching_documents(tmp_path) -> None:  # type: ignore[no-untyped-def]
    q, docs = _task()
    tr, te = np.arange(300), np.arange(300, 400)
    ids = list(range(len(docs)))
    rel = [{int(i)} for i in te]
    base = evaluate_embeddings(q[te], docs, ids, rel)
    ad = train_adapter(q[tr], docs[tr], AdapterConfig(epochs=30, lr=1e-2, identity_l2=0.0, seed=0))
    cand = evaluate_embeddings(ad.apply(q[te]), docs, ids, rel)
    assert cand.mean() > base.mean() + 0.05
    assert ad.losses[-1] < ad.losses[0]
    loaded = load_adapter(ad.save(tmp_path / "adapter"))
    np.testing.assert_allclose(loaded.apply(q[te]), ad.apply(q[te]), atol=1e-6)
    assert loaded.config == ad.config


def test_adapter_training_is_seeded() -> None:
    q, docs = _task(1, n=100)
    a = train_adapter(q, docs, AdapterConfig(epochs=2, seed=3))
    b = train_adapter(q, docs, AdapterConfig(epochs=2, seed=3))
    np.testing.assert_array_equal(a.weight, b.weight)


def test_shape_errors_name_the_fix() -> None:
    with pytest.raises(DataError, match="adapter"):
        apply_adapter(np.zeros((2, 5)), np.eye(4))
    with pytest.raises(DataError):
        train_adapter(np.zeros((3, 4)), np.zeros((2, 4)))
