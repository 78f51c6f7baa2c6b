"""The access layer against a real Milvus Lite server and the real default model."""

from __future__ import annotations

import numpy as np
import pytest

from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import MilvusError, UnsupportedIndex
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.training.stdlib_corpus import by_topic, stdlib_corpus

pytestmark = pytest.mark.integration


@pytest.fixture()
def milvus(milvus_settings: Settings):
    m = Milvus.connect(milvus_settings)
    yield m
    m.close()


def test_connects_and_knows_its_backend(milvus: Milvus, milvus_settings: Settings, backend) -> None:
    # The real server reports "v2.3.5-lite" (the PyPI package's build name): the backend is not told by "lite".
    assert milvus.is_lite == (backend.name == "lite") and milvus.uri == milvus_settings.milvus_uri
    assert milvus.ping()


def test_lite_refuses_index_types_it_cannot_build(milvus: Milvus, milvus_settings: Settings, backend) -> None:
    if backend.name == "lite":
        with pytest.raises(UnsupportedIndex, match=r"'IVF_PQ' cannot be built by Milvus Lite .*use one of FLAT, HNSW"):
            milvus.create_collection(milvus_settings.collection("pq"), 8)
        assert not milvus.has_collection("pq")  # refused before anything was created
    else:  # a real server builds it
        milvus.create_collection(milvus_settings.collection("pq"), 8)
        assert milvus.has_collection("pq")
        milvus.drop_collection("pq")


def test_insert_and_search_round_trip_with_the_real_model(milvus: Milvus, milvus_settings: Settings, embedder) -> None:
    spec = milvus_settings.collection("docs")
    groups = by_topic(stdlib_corpus())
    passages = groups["statistics"][:20] + groups["email"][:50] + groups["asyncio"][:50]
    name = milvus.create_collection(
        spec, embedder.dimension, name="docs__v1", properties={MODEL_ID_PROPERTY: embedder.model_id}
    )
    milvus.create_alias(name, "docs")
    vecs = embedder.encode([p.text for p in passages])
    assert vecs.shape == (len(passages), 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert milvus.insert(
        "docs", [{"id": p.id, "vector": v.tolist(), "text": p.text} for p, v in zip(passages, vecs, strict=True)]
    ) == len(passages)
    milvus.flush(name)
    assert milvus.count("docs") == len(passages)
    assert milvus.resolve("docs") == name
    assert milvus.properties(name)[MODEL_ID_PROPERTY] == embedder.model_id

    # Each passage's own docstring summary should find it: real retrieval, not an echo of the vector.
    queries = passages[::3]
    hits = milvus.search("docs", embedder.encode([p.query for p in queries]), limit=10, output_fields=["text"])
    found = [p.id in [h["id"] for h in row] for p, row in zip(queries, hits, strict=True)]
    assert np.mean(found) >= 0.7, f"recall@10 {np.mean(found):.2f}"
    top = hits[0][0]
    assert top["entity"]["text"] and -1.0 <= top["distance"] <= 1.0

    topical = milvus.search("docs", embedder.encode(["arithmetic mean and standard deviation of data"]), limit=3)
    ids = {p.id: p.topic for p in passages}
    assert ids[topical[0][0]["id"]] == "statistics"


def test_errors_name_the_object(milvus: Milvus) -> None:
    with pytest.raises(MilvusError, match="no collection or alias named 'nope'"):
        milvus.resolve("nope")
    with pytest.raises(MilvusError, match="search on 'docs' needs a 2-D array"):
        milvus.search("docs", np.zeros(384))


def test_iterate_pages_every_row_once_in_key_order(milvus: Milvus) -> None:
    """Paging by key must see every row: Lite answers a plain limited query with *any* matching rows."""
    spec = CollectionSettings(name="paged", index_type="FLAT")
    milvus.create_collection(spec, 4)
    ids = list(range(3000))
    np.random.default_rng(0).shuffle(ids)
    for i in range(0, len(ids), 500):
        milvus.insert("paged", [{"id": int(k), "vector": [1.0, 0.0, 0.0, 0.0], "text": ""} for k in ids[i : i + 500]])
    seen = [r["id"] for batch in milvus.iterate("paged", ["id"], batch_size=97) for r in batch]
    assert seen == sorted(ids)
    assert [r["id"] for b in milvus.iterate("paged", ["id"], filter="id >= 2990", batch_size=3) for r in b] == list(
        range(2990, 3000)
    )
    milvus.drop_collection("paged")
