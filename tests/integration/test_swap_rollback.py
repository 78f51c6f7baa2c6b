"""Approve and hot-swap on each backend (Lite and a real Milvus server) with the real default model.

The candidate is the default model with its last transformer layer perturbed and registered as a new
version: a genuinely different model (its own id, its own vectors) that still retrieves sensibly, so
the swap mechanics can be tested without paying for a training run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from backends import Backend
from builders import wait_until
from swap_world import World, edit_while_down, load_app

from embguard.client.client import DUAL_WRITE_PROPERTY
from embguard.client.retention import Pins
from embguard.config.settings import CollectionSettings
from embguard.errors import SwapError, SwapLocked
from embguard.milvus.milvus import MODEL_ID_PROPERTY
from embguard.models import loading as models
from embguard.swap.state import SwapStore
from embguard.swap.swapper import Swapper

pytestmark = pytest.mark.integration


@pytest.fixture()
def world(tmp_path: Path, candidate_dir: Path, backend: Backend):
    w = World(tmp_path, candidate_dir, backend=backend)
    yield w
    w.close()


def test_swap_rollback_and_gc(world: World) -> None:
    spec = world.settings.collection("kb")
    queries = [p.query for p in world.passages[:25]]
    pins = Pins(world.settings.state.dir)
    pins.pin(world.candidate.version, ["fb-used-for-v0001"], [])  # as build_candidate pins its labels
    before = world.client.search("kb", queries, limit=10)
    assert before.collection == "kb__v1"

    st = Swapper(world.settings, world.milvus, say=lambda s: None).approve(spec, world.candidate)
    assert pins.ids() == (set(), set())  # approved: the candidate's labels are released for pruning
    assert st.phase == "done" and st.target == "kb__v0001" and st.verify.ok
    assert st.verify.source_count == st.verify.target_count == len(world.passages)
    assert world.milvus.resolve("kb") == "kb__v0001"
    props = world.milvus.properties("kb__v0001")
    assert props[MODEL_ID_PROPERTY] == world.candidate.model_id and props[DUAL_WRITE_PROPERTY] == "kb__v1"
    assert DUAL_WRITE_PROPERTY not in world.milvus.properties("kb__v1")
    assert world.registry.get("v0001").status == "active"

    time.sleep(world.settings.milvus.alias_cache_s)  # on purpose: the client may reuse its alias lookup that long
    after = world.client.search("kb", queries, limit=10)
    assert after.collection == "kb__v0001" and after.model_id == world.candidate.model_id
    # The new collection's vectors are the candidate's, re-embedded from the stored text.
    cand = models.load_by_id(world.candidate.model_id, world.settings.model.store_dir)
    row = world.milvus.query("kb__v0001", ids=[world.passages[3].id], output_fields=["vector", "text"])[0]
    assert np.allclose(row["vector"], cand.encode([row["text"]])[0], atol=1e-5)
    old = world.milvus.query("kb__v1", ids=[world.passages[3].id], output_fields=["vector"])[0]
    assert not np.allclose(row["vector"], old["vector"], atol=1e-3)

    # A write after the switch reaches the old collection too, so rollback loses nothing.
    world.client.insert("kb", [{"id": 424242, "text": "written after the switch"}])
    world.milvus.flush("kb__v1")
    assert world.milvus.query("kb__v1", ids=[424242], output_fields=["text"])

    pins.pin(world.candidate.version, ["fb-used-for-v0001"], [])  # as an earlier embguard left it after approve
    Swapper(world.settings, world.milvus, say=lambda s: None).rollback(spec)
    assert pins.ids() == (set(), set())  # rolled back: nothing stays pinned for the candidate
    world.client.delete("kb", [424242])
    time.sleep(world.settings.milvus.alias_cache_s)  # on purpose: the client may reuse its alias lookup that long
    rolled = world.client.search("kb", queries, limit=10)
    assert rolled.collection == "kb__v1"
    # The same collection and model as before the swap: the same answers. A server searched its growing
    # segment exactly before and searches the sealed HNSW index now, so ranks 2-10 are compared as a set.
    for r, b in zip(rolled.hits, before.hits, strict=True):
        assert r[0].id == b[0].id
        assert len({h.id for h in r} & {h.id for h in b}) >= 8
        same = {h.id: h.score for h in b}
        assert all(abs(h.score - same[h.id]) < 1e-5 for h in r if h.id in same)
    assert world.registry.get("v0001").status == "rolled_back"

    sw = Swapper(world.settings, world.milvus, say=lambda s: None)
    assert sw.gc(retention_s=10**9) == []  # within retention: kept
    assert sw.gc(retention_s=0, dry_run=True) == ["kb__v0001"] and world.milvus.has_collection("kb__v0001")
    assert sw.gc(retention_s=0) == ["kb__v0001"]
    assert not world.milvus.has_collection("kb__v0001")
    assert DUAL_WRITE_PROPERTY not in world.milvus.properties("kb__v1")  # nothing writes into a dropped one
    assert world.client.insert("kb", [{"id": 5, "text": "still writable"}]) == 1


def test_collection_without_text_cannot_be_reindexed_and_nothing_is_touched(world: World) -> None:
    spec = CollectionSettings(name="notext", text_field=None, index_type="FLAT")
    world.milvus.create_collection(spec, 384, name="notext__v1", properties={MODEL_ID_PROPERTY: "x@1"})
    world.milvus.create_alias("notext__v1", "notext")
    before = set(world.milvus.list_collections())
    with pytest.raises(SwapError, match=r"has no text field None .*cannot be reindexed. Nothing was changed"):
        Swapper(world.settings, world.milvus).approve(
            CollectionSettings(name="notext", text_field=None), world.candidate
        )
    assert set(world.milvus.list_collections()) == before
    assert DUAL_WRITE_PROPERTY not in world.milvus.properties("notext__v1")
    with pytest.raises(SwapError, match="is a collection, not an alias"):
        Swapper(world.settings, world.milvus).approve(CollectionSettings(name="kb__v1"), world.candidate)


def test_a_second_approve_is_refused_while_one_runs(world: World) -> None:
    store = SwapStore(world.settings.state.dir)
    with store.lock("kb", "retrain --approve --candidate v0001"):
        with pytest.raises(SwapLocked, match=rf"already running: pid {os.getpid()} on .*retrain --approve"):
            Swapper(world.settings, world.milvus).approve(world.settings.collection("kb"), world.candidate)
    assert world.milvus.resolve("kb") == "kb__v1" and not world.milvus.has_collection("kb__v0001")


@pytest.mark.slow
def test_kill_9_mid_backfill_then_resume_gives_exactly_the_source(
    tmp_path: Path, candidate_dir: Path, backend: Backend
) -> None:
    w = World(tmp_path, candidate_dir, docs=300, backend=backend, EMBGUARD_SWAP__BATCH_SIZE="8")
    try:
        cmd = [sys.executable, "-m", "embguard.cli", "retrain", "--approve", "--candidate", "v0001"]
        env = {**os.environ, **w.env}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        store = SwapStore(w.settings.state.dir)

        def a_third_copied() -> bool:
            st = store.load("kb")
            return bool(st and st.total and st.done >= st.total // 3)

        wait_until(a_third_copied, 300, what="a third of the backfill")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        st = store.load("kb")
        assert st.phase == "dual_write" and 0 < st.done < st.total, st
        edited = edit_while_down(w)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "resuming the swap of kb to v0001" in res.stdout
        src, dst = w.ids("kb__v1"), w.ids("kb__v0001")
        assert sorted(src) == sorted(dst) and len(dst) == len(set(dst)) == w.milvus.count("kb__v0001")
        assert 777 in dst and not set(p.id for p in w.passages[10:15]) & set(dst)
        cand = models.load_by_id(w.candidate.model_id, w.settings.model.store_dir)
        rows = w.milvus.query("kb__v0001", ids=edited, output_fields=["text", "vector"])
        assert all(r["text"].startswith("edited text number") for r in rows)
        want = cand.encode([r["text"] for r in rows])
        assert np.allclose(np.array([r["vector"] for r in rows]), want, atol=1e-5)  # not the stale copy
        assert w.milvus.resolve("kb") == "kb__v0001"
    finally:
        w.close()


@pytest.mark.slow
def test_application_keeps_searching_and_inserting_through_the_swap(
    tmp_path: Path, candidate_dir: Path, backend: Backend
) -> None:
    w = World(tmp_path, candidate_dir, docs=200, backend=backend, EMBGUARD_SWAP__BATCH_SIZE="16")
    try:
        with load_app(w, tmp_path, pause_s=0.03) as finish:
            time.sleep(2)  # on purpose: the application searches and inserts a while before the swap starts
            res = subprocess.run(
                [sys.executable, "-m", "embguard.cli", "retrain", "--approve"],
                capture_output=True,
                text=True,
                timeout=900,
                env={**os.environ, **w.env},
            )
            assert res.returncode == 0, res.stderr[-2000:]
            time.sleep(3)  # on purpose: ... and a while on the new collection after the switch
            report = finish()
        assert report["failures"] == [], report["failures"][:5]
        assert report["searches"] > 50
        # Every search was served by a collection whose model embedded its query.
        assert report["served"] == {"kb__v1": [models.model_id_of("default")], "kb__v0001": [w.candidate.model_id]}
        inserted = {int(k): v for k, v in report["inserted"].items()}
        assert len(inserted) > 10
        rows = w.milvus.query("kb__v0001", ids=list(inserted), output_fields=["id", "text", "vector"])
        assert {r["id"] for r in rows} == set(inserted)  # zero lost inserts
        cand = models.load_by_id(w.candidate.model_id, w.settings.model.store_dir)
        got = np.array([r["vector"] for r in sorted(rows, key=lambda r: r["id"])])
        want = cand.encode([inserted[i] for i in sorted(inserted)])
        assert np.allclose(got, want, atol=1e-5)  # with the new model's vectors
        assert sorted(w.ids("kb__v1")) == sorted(w.ids("kb__v0001"))
    finally:
        w.close()


def test_abort_before_the_switch_leaves_only_the_old_collection(world: World) -> None:
    spec = world.settings.collection("kb")

    def crash(st) -> None:
        if st.phase == "dual_write" and st.done:
            raise KeyboardInterrupt("operator hit ctrl-c mid-backfill")

    with pytest.raises(KeyboardInterrupt):
        Swapper(world.settings, world.milvus, say=lambda s: None, progress=crash).approve(spec, world.candidate)
    st = SwapStore(world.settings.state.dir).load("kb")
    assert st.phase == "dual_write" and world.milvus.properties("kb__v1")[DUAL_WRITE_PROPERTY] == "kb__v0001"
    Swapper(world.settings, world.milvus).abort(spec)
    assert DUAL_WRITE_PROPERTY not in world.milvus.properties("kb__v1")
    assert not world.milvus.has_collection("kb__v0001") and world.milvus.resolve("kb") == "kb__v1"
    assert world.client.insert("kb", [{"id": 9, "text": "after the abort"}]) == 1
    with pytest.raises(SwapError, match="no unfinished swap to abort"):
        Swapper(world.settings, world.milvus).abort(spec)
