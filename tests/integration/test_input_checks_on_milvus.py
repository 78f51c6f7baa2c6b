"""Inputs checked against a real Milvus: URI credentials never printed in later Milvus errors, unusable vectors
left out of windows, surrogates and bad weights refused by the client and by label import, writing nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embguard.checks.references import ReferenceStore
from embguard.checks.windows import query_window, sample_documents
from embguard.client.client import Client
from embguard.client.tap import ensure_tap_collection, tap_row
from embguard.config.settings import CollectionSettings
from embguard.errors import (
    InvalidFeedback,
    InvalidInput,
    InvalidLabels,
    LabelError,
    MilvusError,
)
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION
from embguard.models import loading as models

PW = "Uri-Pa55word-7f3e"
LONE = "abc\ud800"


def with_credentials(uri: str, user: str = "root", password: str = PW) -> str:
    scheme, rest = uri.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


# -- 1: credentials in Client(uri=...) --------------------------------------------------------------------------------


@pytest.mark.integration
def test_client_uri_credentials_never_printed_in_later_milvus_errors(
    milvus_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = milvus_world.settings
    if settings.milvus.token is not None or settings.milvus.user:
        pytest.skip("the external server is configured with its own credentials")
    caplog.set_level(logging.DEBUG)
    # Milvus Lite and a server without authentication accept (and ignore) the credentials.
    with Client(settings, uri=with_credentials(settings.milvus_uri)) as c:
        with pytest.raises(MilvusError) as err:
            c.search("no_such_alias", ["hello"])
        assert "no_such_alias" in str(err.value) and PW not in str(err.value)
        assert PW not in repr(c) and PW not in repr(c.milvus) and PW not in c.milvus.uri
        assert c.milvus.list_collections() is not None  # the connection itself works
    assert all(PW not in r.getMessage() for r in caplog.records)


# -- 5 and 11: alert variables are serve's business; one webhook URL validator ----------------------------------------


# -- 6: weights float32 cannot hold ----------------------------------------------------------------------------------


# -- 7: unusable vectors ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_windows_read_from_milvus_leave_out_unusable_vectors(
    milvus_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = milvus_world.settings
    m = Milvus.connect(settings)
    try:
        dim = 8
        spec = CollectionSettings(name="w", index_type="FLAT", metric_type="L2")
        m.create_collection(spec, dim, name="w__v1", properties={MODEL_ID_PROPERTY: "m@1"})
        m.create_alias("w__v1", "w")
        rng = np.random.default_rng(1)
        good = rng.normal(size=(6, dim)).astype(np.float32)
        bad = [np.zeros(dim, dtype=np.float32), np.full(dim, 3e38, dtype=np.float32)]
        docs = [{"id": i, "vector": v.tolist(), "text": f"doc {i}"} for i, v in enumerate([*good, *bad])]
        m.upsert("w__v1", docs)
        tap = ensure_tap_collection(m, dim)
        rows = []
        for i, v in enumerate([*good, *bad]):
            row = tap_row(
                query_id=f"q{i}",
                vector=v,
                alias="w",
                collection="w__v1",
                model_id="m@1",
                text=None,
                store_text=False,
                hits=[{"id": 0, "distance": 0.5}],
                ts_ms=1000 + i,
            )
            row.pop("_collection")
            rows.append(row)
        m.insert(tap, rows)
        m.flush(tap)
        m.flush("w__v1")
        caplog.set_level(logging.INFO, logger="embguard.checks.windows")
        window = query_window(m, "w", 0, 10_000)
        assert window.size == 6 and window.meta["skipped_rows"] == 2 and set(window.ids) == {f"q{i}" for i in range(6)}
        docs_window = sample_documents(m, spec, 100, seed=0, with_text=False)
        assert docs_window.size == 6 and docs_window.meta["skipped_rows"] == 2
        assert sum("left out 2 of 8 row(s)" in r.getMessage() for r in caplog.records) == 2
        info = ReferenceStore(settings.state.dir).capture("w", window)
        assert info.size == 6 and info.excluded == 2
    finally:
        m.close()


# -- 12: lone surrogates ---------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_the_client_refuses_surrogates_and_unusable_vectors_at_the_door(milvus_world: Any) -> None:
    settings = milvus_world.settings
    m = Milvus.connect(settings)
    spec = CollectionSettings(name="s", index_type="FLAT")
    m.create_collection(spec, 384, name="s__v1", properties={MODEL_ID_PROPERTY: models.model_id_of("default")})
    m.create_alias("s__v1", "s")
    try:
        with Client(settings.model_copy(update={"collections": (spec,)})) as c:
            assert c.insert("s", [{"id": 1, "text": "a plain document"}]) == 1
            with pytest.raises(InvalidInput, match="position 0: field 'text'.*lone surrogate"):
                c.insert("s", [{"id": 2, "text": LONE}])
            with pytest.raises(InvalidInput, match="search text at position 0.*lone surrogate"):
                c.search("s", [LONE])
            for vec in (np.zeros((1, 384)), np.full((1, 384), 3e38)):
                with pytest.raises(InvalidInput, match="vector at position 0"):
                    c.search("s", vectors=vec)
            res = c.search("s", ["a plain document"], limit=1, consistency_level="Strong")
            with pytest.raises(InvalidInput, match="query_text.*lone surrogate"):
                c.feedback(res.query_ids[0], 1, query_text=LONE)
            with pytest.raises(InvalidFeedback, match="1e\\+300"):
                c.feedback(res.query_ids[0], 1, weight=1e300)
            assert not m.has_collection(FEEDBACK_COLLECTION) or not m.query(
                FEEDBACK_COLLECTION, filter='alias == "s"', output_fields=["feedback_id"]
            )
        assert m.count("s__v1") == 1
    finally:
        m.close()


@pytest.mark.integration
def test_label_import_refuses_bad_weights_and_surrogates_writing_nothing(milvus_world: Any, tmp_path: Path) -> None:
    from embguard.training.labels import import_labels

    settings = milvus_world.settings
    m = Milvus.connect(settings)
    spec = CollectionSettings(name="lb", index_type="FLAT", metric_type="L2")
    m.create_collection(spec, 4, name="lb__v1", properties={MODEL_ID_PROPERTY: "m@1"})
    m.create_alias("lb__v1", "lb")
    m.upsert("lb__v1", [{"id": i, "vector": [1.0, float(i), 0.0, 0.0], "text": f"doc {i}"} for i in range(3)])
    m.flush("lb__v1")
    try:
        lines = [
            {"query": "fine", "doc_id": 0},
            {"query": "huge", "doc_id": 1, "weight": 1e300},
            {"query": LONE, "doc_id": 1},
            {"query": "tiny", "doc_id": 2, "weight": 1e-50},
        ]
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
        with pytest.raises(InvalidLabels) as err:
            import_labels(settings, m, spec, bad)
        text = str(err.value)
        assert isinstance(err.value, LabelError) and isinstance(err.value, InvalidInput)
        assert "3 bad line(s), nothing imported" in text, text
        assert "line 2: 'weight': weight 1e+300 must be a finite number" in text and "rescale" in text, text
        assert "line 3: 'query' (character 3) is not valid UTF-8" in text, text
        assert "line 4: 'weight': weight 1e-50" in text and "line 1" not in text, text
        assert not m.has_collection(FEEDBACK_COLLECTION) or m.count(FEEDBACK_COLLECTION) == 0
        good = tmp_path / "good.jsonl"
        good.write_text(json.dumps({"query": "fine", "doc_id": 0, "weight": 100}) + "\n")
        assert import_labels(settings, m, spec, good) == 1
        [row] = m.query(FEEDBACK_COLLECTION, filter='alias == "lb"', output_fields=["weight"])
        assert row["weight"] == 100.0
    finally:
        m.close()


# -- config reference, log levels ------------------------------------------------------------------------------------
