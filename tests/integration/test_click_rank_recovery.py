"""Feedback quality: a click's rank recovered from the tapped query (real Milvus Lite, real model), and the
demo's simulated users clicking with position bias."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import retrain
from embguard.client.client import Client
from embguard.demo.simulate import index, passages_for
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import TAP_COLLECTION
from embguard.models import loading as models
from embguard.training.feedback import feedback_records
from embguard.training.labels import import_labels


@pytest.fixture()
def fq(backend, tmp_path):
    world = backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="fq", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__QUERY_RATE="1.0",
        EMBGUARD_SAMPLING__STORE_QUERY_TEXT="true",
    )
    settings = world.__enter__().settings
    m = Milvus.connect(settings)
    m.create_collection(
        settings.collection("fq"), 384, name="fq__v1", properties={MODEL_ID_PROPERTY: models.model_id_of("default")}
    )
    m.create_alias("fq__v1", "fq")
    passages = passages_for(["json", "csv"])[:30]
    client = Client(settings)
    index(client, "fq", passages)
    yield settings, m, client, passages
    client.close()
    m.close()
    world.__exit__(None, None, None)


@pytest.mark.integration
def test_a_clicks_rank_is_recovered_from_the_tapped_query(fq, tmp_path: Path) -> None:
    settings, m, client, passages = fq
    res = client.search("fq", [p.query for p in passages[:3]], limit=10, consistency_level="Strong")
    deep, top, pruned = res.hits[0][7].id, res.hits[1][0].id, res.hits[2][4].id
    client.feedback(res.query_ids[0], deep)  # shown at rank 8
    client.feedback(res.query_ids[0], deep)  # the same user clicks it again
    client.feedback(res.query_ids[1], top)  # shown at rank 1
    client.feedback(res.query_ids[2], pruned)
    client.feedback(res.query_ids[2], res.hits[2][1].id, signal="negative")  # explicit: no rank needed
    client.flush_tap()
    m.delete(TAP_COLLECTION, ids=[res.query_ids[2]])  # retention pruned this query's tap row
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"query": passages[0].query, "doc_id": deep, "signal": "negative"}) + "\n")
    import_labels(settings, m, settings.collection("fq"), labels)

    records, ids = feedback_records(m, "fq", ranks=True)
    assert len(records) == len(ids) == 6
    q0, q1, q2 = (retrain.normalize_query(p.query) for p in passages[:3])
    got = sorted(((retrain.normalize_query(r.query), r.doc_id, r.signal, r.origin, r.rank) for r in records), key=repr)
    assert got == sorted(
        [
            (q0, deep, "click", "click", 8),
            (q0, deep, "click", "click", 8),
            (q1, top, "click", "click", 1),
            (q2, pruned, "click", "click", None),  # no tapped row left: the click weighs 1
            (q2, res.hits[2][1].id, "negative", "feedback", None),
            (q0, deep, "negative", "label", None),
        ],
        key=repr,
    )
    assert all(r.ts_ms > 0 for r in records)
    assert all(r.rank is None for r in feedback_records(m, "fq")[0])  # the join runs only when asked for

    texts = {d: f"passage {d}" for d in (deep, top, pruned, res.hits[2][1].id)}
    tp = retrain.build_pairs(records, texts)
    # The annotator's negative outranks the user's two rank-8 clicks; the rank-1 click weighs 1.
    assert {(p.positive_id, p.weight) for p in tp.pairs} == {(top, 1.0), (pruned, 1.0)}
    assert tp.negatives[q0] == {deep}
    without_label = retrain.build_pairs([r for r in records if r.origin != "label"], texts)
    assert {p.positive_id: p.weight for p in without_label.pairs}[deep] == retrain.MAX_PAIR_WEIGHT  # 8 + 8, capped
