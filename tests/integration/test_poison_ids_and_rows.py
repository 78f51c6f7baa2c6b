"""Ids never widen a filter, and poison inputs are refused at the door or skipped (and counted) by the readers,
never fatal to the loop. On each backend."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from embguard.checks.references import ReferenceStore
from embguard.checks.windows import query_window
from embguard.client.client import Client
from embguard.client.tap import ensure_feedback_collection, feedback_row, tap_row
from embguard.errors import FeedbackError, InvalidInput, MilvusError
from embguard.milvus.filters import check_ids, literal
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION
from embguard.training.feedback import feedback_records

pytestmark = pytest.mark.integration
INJECTIONS = ["0] or id > 0 or id in [0", "1 or 1 == 1", '" or id != "', 'x\\" or id > 0 or "', ") or (id > 0"]


@pytest.fixture()
def world(milvus_world):
    s = milvus_world.settings
    with Client(s, query_rate=1.0) as c:
        c.create_collection("scratch", index_type="FLAT")
        c.insert("scratch", [{"id": i, "text": f"document number {i}"} for i in range(20)])
        m = Milvus.connect(s)
        yield s, c, m
        m.close()


def _ids(m: Milvus, collection: str) -> set:
    return {r["id"] for b in m.iterate(collection, ["id"]) for r in b}


def test_crafted_ids_delete_nothing_and_name_the_bad_id(world) -> None:
    s, c, m = world
    before = _ids(m, "scratch__v0000")
    for bad in INJECTIONS + [None, 1.5, True, {"id": 1}, [1], 2**70]:
        with pytest.raises(InvalidInput) as err:
            c.delete("scratch", [bad])
        assert "INT64" in str(err.value)
    with pytest.raises(InvalidInput, match="must be a list of document ids"):
        c.delete("scratch", "0] or id > 0 or id in [0")  # a bare string is not a list of ids
    assert _ids(m, "scratch__v0000") == before
    c.delete("scratch", [3, 4])
    assert _ids(m, "scratch__v0000") == before - {3, 4}
    c.delete("scratch", [])  # nothing named, nothing deleted
    assert _ids(m, "scratch__v0000") == before - {3, 4}


def test_varchar_keys_and_filter_literals_are_escaped(milvus_world) -> None:
    from embguard.config.settings import CollectionSettings

    m = Milvus.connect(milvus_world.settings)
    spec = CollectionSettings(name="vk", index_type="FLAT")
    m.create_collection(spec, 4, id_type="str")
    keys = ["plain", 'with "quotes"', "back\\slash", '0] or id != "', "ünïcode ✓"]
    m.insert("vk", [{"id": k, "vector": [1.0, 0.0, 0.0, 0.0], "text": k} for k in keys])
    for k in keys:  # each key selects exactly itself
        assert [r["id"] for r in m.query("vk", ids=[k], output_fields=["id"])] == [k]
        assert [r["id"] for r in m.query("vk", filter=f"text == {literal(k)}", output_fields=["id"])] == [k]
    m.delete("vk", ids=['0] or id != "'])
    assert sorted(r["id"] for b in m.iterate("vk", ["id"]) for r in b) == sorted(set(keys) - {'0] or id != "'})
    with pytest.raises(InvalidInput, match="VARCHAR"):
        check_ids([7], int_keys=False)
    m.close()


def test_feedback_refuses_ids_that_are_not_documents(world) -> None:
    s, c, m = world
    res = c.search("scratch", ["document number 5"], limit=3, consistency_level="Strong")
    qid = res.query_ids[0]
    for bad in (None, {"a": 1}, [1], "5", 1.0, True, 10_000):
        with pytest.raises(FeedbackError):
            c.feedback(qid, bad)
    with pytest.raises(FeedbackError, match="must be a number"):
        c.feedback(qid, res.hits[0][0].id, weight="abc")  # type: ignore[arg-type]
    assert c.feedback(qid, 19)  # a real document that was not in the hits is fine
    assert c.feedback(qid, res.hits[0][0].id)
    for bad_input in ([], [None], ["ok", 3]):
        with pytest.raises(InvalidInput):
            c.search("scratch", bad_input)
    for vectors in (np.full((1, 384), np.nan), [["a"] * 384], np.zeros((0, 384))):
        with pytest.raises(InvalidInput):
            c.search("scratch", vectors=vectors)
    with pytest.raises(InvalidInput, match="string 'text'"):
        c.insert("scratch", [{"id": 99, "text": None}])


def test_poison_rows_already_stored_are_skipped_not_fatal(world) -> None:
    """Rows written before validation existed (or by hand): a NaN query vector and a dict doc_id."""
    s, c, m = world
    res = c.search("scratch", [f"document number {i}" for i in range(30)], limit=3, consistency_level="Strong")
    c.flush_tap()
    t0 = int(time.time() * 1000) - 60_000
    nan = tap_row(
        query_id="poison",
        vector=np.full(384, np.nan, dtype=np.float32),
        alias="scratch",
        collection="scratch__v0000",
        model_id=res.model_id,
        text="x",
        store_text=False,
        hits=[],
    )
    try:
        m.insert(TAP_COLLECTION, [{k: v for k, v in nan.items() if k != "_collection"}])
        poisoned = 1
    except MilvusError as exc:  # a real server refuses NaN vectors itself; Lite stores them
        assert "NaN" in str(exc)
        poisoned = 0
    window = query_window(m, "scratch", t0, int(time.time() * 1000) + 1)
    assert window.meta["skipped_rows"] == poisoned and "poison" not in window.ids
    assert np.isfinite(window.vectors).all() and window.size == 30
    ReferenceStore(s.state.dir).capture("scratch", window)  # a baseline over the window works

    ensure_feedback_collection(m)
    bad = feedback_row(
        query_id=res.query_ids[0],
        doc_id=1,
        alias="scratch",
        collection="scratch__v0000",
        model_id=res.model_id,
        signal="click",
        weight=1.0,
        query_text="document number 1",
    )
    bad["doc_id"] = json.dumps({"a": 1})
    m.insert(FEEDBACK_COLLECTION, [bad])
    c.feedback(res.query_ids[2], res.hits[2][0].id, query_text="document number 2")
    records, ids = feedback_records(m, "scratch")
    assert len(records) == 1 and records[0].doc_id == res.hits[2][0].id and bad["feedback_id"] not in ids


def test_a_forced_tap_from_feedback_counts_as_sampled(world) -> None:
    """Feedback force-taps its query; counting it as written but not sampled made the drop ratio read high."""
    s, _, m = world
    with Client(s, query_rate=0.0) as c:
        res = c.search("scratch", ["document number 7"], limit=3, consistency_level="Strong")
        assert c.tap_stats.snapshot()["sampled"] == 0
        c.feedback(res.query_ids[0], res.hits[0][0].id)
        c.flush_tap()
        snap = c.tap_stats.snapshot()
    assert snap["sampled"] == 1 and snap["written"] == 1 and snap["dropped_full"] + snap["dropped_error"] == 0
