from __future__ import annotations

import time

import numpy as np
import pytest

from embguard.client.retention import Pins, prune
from embguard.client.tap import ensure_feedback_collection, ensure_tap_collection, feedback_row, tap_row
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION


@pytest.mark.integration
def test_prune_bounds_age_and_rows_and_keeps_pinned_rows(milvus_world) -> None:
    settings = milvus_world.settings
    m = Milvus.connect(settings)
    ensure_tap_collection(m, 384)
    ensure_feedback_collection(m)
    now = int(time.time() * 1000)
    day = 86_400_000
    vec = np.ones(384, dtype=np.float32) / np.sqrt(384)
    rows = [
        tap_row(
            query_id=f"q{i}",
            vector=vec,
            alias="docs",
            collection="docs__v1",
            model_id="m@1",
            text="x",
            store_text=False,
            hits=[],
            ts_ms=now - i * day // 10,
        )
        for i in range(100)
    ]
    m.insert(TAP_COLLECTION, [{k: v for k, v in r.items() if k != "_collection"} for r in rows])
    fb = []
    for i in range(10):
        r = feedback_row(
            query_id=f"q{90 + i}",
            doc_id=i,
            alias="docs",
            collection="docs__v1",
            model_id="m@1",
            signal="click",
            weight=1.0,
            query_text="old question",
        )
        r["ts_ms"] = now - (i * 10) * day
        fb.append(r)
    m.insert(FEEDBACK_COLLECTION, fb)
    pins = Pins(settings.state.dir)
    pins.pin("candidate-1", [fb[9]["feedback_id"]], ["q99"])  # the oldest label and its query

    res = prune(m, pins, tap_max_age_s=5 * 86400, tap_max_rows=30, feedback_max_age_s=45 * 86400, now_ms=now)
    left = {r["query_id"] for r in m.query(TAP_COLLECTION, filter="", output_fields=["query_id"])}
    # Age: q50..q99 are older than 5 days; rows: keep the newest 30 of the rest, plus pinned q99.
    assert left == {f"q{i}" for i in range(30)} | {"q99"}
    assert res.tap_deleted == 69
    fb_left = {r["feedback_id"] for r in m.query(FEEDBACK_COLLECTION, filter="", output_fields=["feedback_id"])}
    assert fb_left == {r["feedback_id"] for r in fb[:5]} | {fb[9]["feedback_id"]}
    pins.release("candidate-1")
    prune(m, pins, tap_max_age_s=5 * 86400, tap_max_rows=30, feedback_max_age_s=45 * 86400, now_ms=now)
    assert m.count(FEEDBACK_COLLECTION) == 5 and m.count(TAP_COLLECTION) == 30
    m.close()
