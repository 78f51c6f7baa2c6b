"""embguard.Client, the tap, feedback, windows and references on each backend (Lite and a real server).

The application runs in its own process (tests/apps/app_searches.py); this test process plays the
sidecar that reads what the application recorded, through the same server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from embguard.checks.references import ReferenceStore, check_model
from embguard.checks.windows import query_window, sample_documents
from embguard.client.client import DUAL_WRITE_PROPERTY, Client
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import FeedbackError, MissingModelId, ReferenceMismatch, ReferenceMissing
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION
from embguard.models import loading as models
from embguard.training.stdlib_corpus import by_topic, stdlib_corpus

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parents[1] / "apps" / "app_searches.py"


@pytest.fixture(scope="module")
def kb(milvus_settings: Settings, embedder):
    """Alias ``kb`` -> ``kb__v1``: 240 real passages from four topics, embedded by the default model."""
    m = Milvus.connect(milvus_settings)
    groups = by_topic(stdlib_corpus())
    passages = [p for t in ("email", "asyncio", "logging", "xml") for p in groups[t][:60]]
    if not m.has_collection("kb__v1"):
        m.create_collection(
            milvus_settings.collection("kb"),
            embedder.dimension,
            name="kb__v1",
            properties={MODEL_ID_PROPERTY: embedder.model_id},
        )
        m.create_alias("kb__v1", "kb")
        with Client(milvus_settings) as c:
            c.insert("kb", [{"id": p.id, "text": p.text[:400], "ts": 1000 + i} for i, p in enumerate(passages)])
    yield m, passages
    m.close()


def run_app(env: dict[str, str], **job) -> dict:
    res = subprocess.run(
        [sys.executable, str(APP), json.dumps({"env": env, **job})], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_app_process_taps_at_the_configured_rate_and_feedback_round_trips(milvus_env, kb) -> None:
    milvus, passages = kb
    rate, n = 0.3, 300
    queries = [p.query for p in passages] + [p.query for p in passages[: n - len(passages)]]
    t0 = int(time.time() * 1000)
    out = run_app(
        {**milvus_env, "EMBGUARD_SAMPLING__QUERY_RATE": str(rate)},
        alias="kb",
        queries=queries,
        feedback_every=25,
        seed=11,
    )
    t1 = int(time.time() * 1000) + 1

    window = query_window(milvus, "kb", t0, t1)  # read by this (sidecar) process
    lo, hi = stats.binom.interval(0.999, n, rate)
    sampled = out["stats"]["sampled"]
    assert lo <= sampled <= hi, f"{sampled} of {n} tapped at rate {rate}"
    assert out["stats"]["dropped_full"] == 0 and out["stats"]["flush_errors"] == 0
    # Every sampled query is in Milvus, plus queries force-tapped because feedback named them.
    app_ids = set(out["query_ids"])
    assert set(window.ids) <= app_ids
    assert out["stats"]["written"] == window.size >= sampled
    assert {f["query_id"] for f in out["feedback"]} <= set(window.ids)
    assert window.model_id == out["model_id"] == milvus.properties("kb__v1")[MODEL_ID_PROPERTY]
    assert window.vectors.shape == (window.size, 384) and not window.vectors.flags.writeable
    assert np.allclose(np.linalg.norm(window.vectors, axis=1), 1.0, atol=1e-4)
    assert all(len(t) == 5 for t in window.top_ids)
    assert np.all(np.diff(window.top_scores, axis=1) <= 1e-6)  # ranked hits
    assert window.texts == ("",) * window.size  # query text is off by default

    rows = milvus.query(
        FEEDBACK_COLLECTION,
        filter=f"ts_ms >= {t0}",
        output_fields=["feedback_id", "query_id", "doc_id", "signal", "query_text", "weight"],
    )
    got = {r["feedback_id"]: r for r in rows}
    assert len(out["feedback"]) == n // 25
    for f in out["feedback"]:
        row = got[f["feedback_id"]]
        assert row["query_id"] == f["query_id"] and json.loads(row["doc_id"]) == f["doc_id"]
        assert row["signal"] == "click" and row["query_text"] == f["query"] and row["weight"] == 1.0


def test_document_samples_are_uniform(milvus_settings: Settings) -> None:
    m = Milvus.connect(milvus_settings)
    spec = CollectionSettings(name="uniform", index_type="FLAT", timestamp_field="ts")
    rng = np.random.default_rng(0)
    if not m.has_collection("uniform"):
        m.create_collection(spec, 8, properties={MODEL_ID_PROPERTY: "synthetic@000000000000"})
        m.insert(
            "uniform", [{"id": i, "vector": rng.normal(size=8).tolist(), "text": f"d{i}", "ts": i} for i in range(2000)]
        )
    counts = np.zeros(20)
    samples = []
    for seed in range(20):
        w = sample_documents(m, spec, 100, seed=seed, with_text=False)
        assert w.size == 100 and len(set(w.ids)) == 100 and w.vectors.shape == (100, 8)
        np.add.at(counts, np.array(w.ids) // 100, 1)
        samples.append(frozenset(w.ids))
    # 2,000 draws over 20 equal id buckets (100 expected in each): a uniform sampler passes a chi-square test at 1%.
    assert stats.chisquare(counts).pvalue > 0.01, counts
    # The failures a chi-square on pooled counts can miss: every sample reaches the whole id range (a sampler
    # that keeps the first rows a page returns would not), the seed is honoured, and seeds give new samples.
    assert all(min(ids) < 500 and max(ids) >= 1500 for ids in samples)
    assert frozenset(sample_documents(m, spec, 100, seed=3, with_text=False).ids) == samples[3]
    assert len(set(samples)) == len(samples)
    recent = sample_documents(m, spec, 50, seed=1, filter="ts >= 1900", with_text=False)
    assert recent.size == 50 and min(recent.ids) >= 1900
    m.close()


def test_references_are_versioned_and_refuse_another_model(milvus_settings, kb, tmp_path: Path) -> None:
    milvus, _ = kb
    window = query_window(milvus, "kb", 0, int(time.time() * 1000) + 1)
    store = ReferenceStore(tmp_path)
    with pytest.raises(ReferenceMissing, match="no queries reference for 'kb'.*embguard baseline capture kb"):
        store.latest("kb")
    v1 = store.capture("kb", window)
    v2 = store.capture("kb", window)
    assert (v1.version, v2.version) == (1, 2) and len(store.list("kb")) == 2 and v1.path.exists()
    loaded = store.load(store.latest("kb"))
    assert np.array_equal(loaded.vectors, window.vectors) and loaded.ids == window.ids
    assert loaded.top_ids == window.top_ids
    check_model(v2, window.model_id, "kb")
    with pytest.raises(ReferenceMismatch, match=r"reference v0002 for 'kb' was made by model 'all-MiniLM-L6-v2@"):
        check_model(v2, "finetuned-v2@0123456789ab", "kb")


def test_search_follows_the_alias_to_the_right_model(
    milvus_settings, kb, tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    milvus, passages = kb
    # A second registered model version: same weights, its own id, so the switch is observable.
    store = Path(milvus_settings.model.store_dir)
    v2 = store / "kb-v2"
    if not v2.exists():
        shutil.copytree(embedder.path, v2)
        (v2 / "embguard.json").write_text(json.dumps({"model_id": f"kb-v2@{models.content_hash(v2)}"}))
    v2_id = f"kb-v2@{models.content_hash(v2)}"
    spec = milvus_settings.collection("kb")
    milvus.create_collection(spec, 384, name="kb__v2", properties={MODEL_ID_PROPERTY: v2_id})
    uncached = milvus_settings.model_copy(
        update={"milvus": milvus_settings.milvus.model_copy(update={"alias_cache_s": 0.0})}
    )
    try:
        with Client(uncached) as c, Client(milvus_settings) as cached:
            assert cached.search("kb", [passages[0].query], limit=3).collection == "kb__v1"
            before = c.search("kb", [passages[0].query], limit=3)
            assert before.collection == "kb__v1" and before.model_id == embedder.model_id
            # Dual writes while kb__v2 is being built: new documents land in both, with each one's model.
            milvus.set_properties("kb__v1", {DUAL_WRITE_PROPERTY: "kb__v2"})
            c.insert("kb", [{"id": 77, "text": "a brand new document about mailboxes", "ts": 5}])
            assert milvus.query("kb__v2", ids=[77], output_fields=["text"])[0]["text"].startswith("a brand new")
            assert milvus.query("kb__v1", ids=[77], output_fields=["text"])
            c.delete("kb", [77])
            assert not milvus.query("kb__v2", ids=[77], output_fields=["text"])
            assert not milvus.query("kb__v1", ids=[77], output_fields=["text"])
            milvus.alter_alias("kb__v2", "kb")
            after = c.search("kb", [passages[0].query], limit=3)  # the very next search
            assert after.collection == "kb__v2" and after.model_id == v2_id
            # A cached lookup may lag the switch by alias_cache_s, but never pairs a model with the other
            # collection's vectors.
            lagged = cached.search("kb", [passages[0].query], limit=3)
            assert (lagged.collection, lagged.model_id) in {("kb__v1", embedder.model_id), ("kb__v2", v2_id)}
            time.sleep(milvus_settings.milvus.alias_cache_s)  # on purpose: the alias cache's TTL passes
            fresh = cached.search("kb", [passages[0].query], limit=3)
            assert fresh.collection == "kb__v2" and fresh.model_id == v2_id

            # A rollback between the client's two reads (the alias, then its collection's marks) marks kb__v1, moves
            # the alias back and unmarks kb__v2: the write still lands in both, not only in the one no longer served.
            milvus.set_properties("kb__v2", {DUAL_WRITE_PROPERTY: "kb__v1"})
            conn = c._milvus
            read_marks = conn.properties

            def rolled_back_meanwhile(name: str) -> dict[str, str]:
                monkeypatch.setattr(conn, "properties", read_marks)
                milvus.set_properties("kb__v1", {DUAL_WRITE_PROPERTY: "kb__v2"})
                milvus.alter_alias("kb__v1", "kb")
                milvus.drop_properties("kb__v2", [DUAL_WRITE_PROPERTY])
                return read_marks(name)

            monkeypatch.setattr(conn, "properties", rolled_back_meanwhile)
            c.insert("kb", [{"id": 78, "text": "a document written during a rollback", "ts": 6}])
            assert milvus.query("kb__v1", ids=[78], output_fields=["text"])
            assert milvus.query("kb__v2", ids=[78], output_fields=["text"])
            c.delete("kb", [78])
    finally:
        milvus.alter_alias("kb__v1", "kb")
        milvus.drop_properties("kb__v1", [DUAL_WRITE_PROPERTY])
        milvus.drop_collection("kb__v2")


def test_feedback_and_search_input_errors_are_clear(milvus_settings, kb) -> None:
    milvus, passages = kb
    with Client(milvus_settings) as c:
        with pytest.raises(FeedbackError, match="query_id 'nope' is unknown to this client"):
            c.feedback("nope", 1)
        res = c.search("kb", [passages[1].query], limit=2)
        with pytest.raises(FeedbackError, match="signal 'like' is not one of click, positive, negative"):
            c.feedback(res.query_ids[0], res.hits[0][0].id, signal="like")
        with pytest.raises(Exception, match=r"must have shape \(n, 384\)"):
            c.search("kb", vectors=np.zeros((1, 5)))
        with pytest.raises(Exception, match="wrap a single query in a list"):
            c.search("kb", "just a string")  # type: ignore[arg-type]
    spec = CollectionSettings(name="orphan", index_type="FLAT")
    if not milvus.has_collection("orphan"):
        milvus.create_collection(spec, 384)
    with Client(milvus_settings) as c, pytest.raises(MissingModelId, match="embguard adopt orphan --model default"):
        c.search("orphan", ["hello"])


def test_tap_never_fails_the_application(backend, tmp_path: Path, caplog) -> None:
    """A full buffer and a tap collection that rejects writes: searches succeed, drops are counted, the
    failure is logged once (not once per flush) and recorded where `embguard status` reads it."""
    from embguard.client.tap import tap_health

    with backend.world(
        tmp_path,
        EMBGUARD_COLLECTIONS='[{name="t", index_type="FLAT"}]',
        EMBGUARD_SAMPLING__TAP_BUFFER_SIZE="5",
        EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S="3600",
    ) as world:
        settings = world.settings
        m = Milvus.connect(settings)
        m.create_collection(
            settings.collection("t"), 384, properties={MODEL_ID_PROPERTY: models.model_id_of("default")}
        )
        # A squatter with the tap's name and the wrong schema: every tap write fails.
        m.create_collection(CollectionSettings(name="embguard_queries", index_type="FLAT"), 2)
        caplog.set_level("WARNING", logger="embguard.tap")
        with Client(settings, query_rate=1.0) as c:
            c.insert("t", [{"id": i, "text": f"document number {i}"} for i in range(20)])
            for i in range(30):  # once the first (strong) search sees the rows, the rest do too
                level = "Strong" if i == 0 else None
                assert len(c.search("t", [f"query {i}"], limit=3, consistency_level=level).hits[0]) == 3
            snap = c.tap_stats.snapshot()
            assert snap["sampled"] == 30 and snap["dropped_full"] == 25  # buffer of 5, never flushed yet
            for _ in range(5):
                assert c.flush_tap() == 0
            assert c.tap_stats.flush_errors >= 5 and c.tap_stats.last_error
            for i in range(3):
                assert c.search("t", [f"after failure {i}"], limit=1).hits[0]
        final = c.tap_stats.snapshot()
        assert final["written"] == 0 and final["dropped_full"] + final["dropped_error"] == 33
        tap_logs = [r for r in caplog.records if r.name == "embguard.tap"]
        assert len(tap_logs) == 1, [r.getMessage() for r in tap_logs]  # loud once, not once per flush
        health = tap_health(m, "t")
        assert health is not None and not health.ok and health.error
        m.close()


def test_insert_is_an_upsert_on_every_backend(milvus_world) -> None:
    """Milvus Lite replaces a row inserted twice; a real server keeps both. Client.insert is an upsert."""
    settings = milvus_world.settings
    m = Milvus.connect(settings)
    spec = CollectionSettings(name="u", index_type="FLAT")
    m.create_collection(spec, 384, properties={MODEL_ID_PROPERTY: models.model_id_of("default")})
    s2 = settings.model_copy(update={"collections": (spec,)})
    with Client(s2) as c:
        c.insert("u", [{"id": i, "text": f"first version {i}"} for i in range(10)])
        c.insert("u", [{"id": i, "text": f"second version {i}"} for i in range(5)])
    assert m.count("u") == 10
    rows = {r["id"]: r["text"] for r in m.query("u", filter="id >= 0", output_fields=["text"])}
    assert rows[0] == "second version 0" and rows[9] == "first version 9"
    m.close()
