"""``roll_back`` and ``abort_swap`` (embguard.swap.retire) and the managed-collection listing
(embguard.milvus.managed), on the in-memory Milvus of tests/fakes.py: the real logic, fake storage."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from builders import make_settings
from fakes import FakeMilvus, milvus_contract_scenario

from embguard.client.client import DUAL_WRITE_PROPERTY
from embguard.client.retention import Pins
from embguard.config.settings import Settings
from embguard.errors import SwapError
from embguard.milvus import managed
from embguard.milvus.milvus import MODEL_ID_PROPERTY
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION, collection_name, version_for_model
from embguard.models.registry import ModelRegistry
from embguard.swap.retire import abort_swap, roll_back
from embguard.swap.state import SwapEvent, SwapState, SwapStore


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, EMBGUARD_COLLECTIONS='[{name="kb"}]')


@pytest.fixture()
def store(settings: Settings) -> SwapStore:
    return SwapStore(settings.state.dir)


def two_versions(settings: Settings, serving: str = "kb__v0002") -> FakeMilvus:
    m = FakeMilvus()
    for name, model in (("kb__v0001", "m1"), ("kb__v0002", "m2")):
        m.create_collection(settings.collection("kb"), 4, name=name, properties={MODEL_ID_PROPERTY: model})
    m.create_alias(serving, "kb")
    return m


def test_the_fake_keeps_the_facades_contract(settings: Settings) -> None:
    milvus_contract_scenario(FakeMilvus(), settings.collection("kb"))


def test_roll_back_points_the_alias_at_the_previous_collection_and_records_it(
    settings: Settings, store: SwapStore
) -> None:
    m = two_versions(settings)
    st = SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="done")
    st.history.append(SwapEvent("switch", time.time() - 10, "kb__v0001", "kb__v0002", "m1", "m2"))
    store.save(st)
    m.set_properties("kb__v0002", {DUAL_WRITE_PROPERTY: "kb__v0001"})
    registry, pins = ModelRegistry(settings.model.store_dir), Pins(settings.state.dir)
    event = roll_back(m, store, registry, pins, "kb")
    assert (event.action, event.source, event.target) == ("rollback", "kb__v0002", "kb__v0001")
    assert m.resolve("kb") == "kb__v0001"
    # The collection rolled away from now receives the dual writes; the one rolled back to no longer sends them.
    assert m.properties("kb__v0001")[DUAL_WRITE_PROPERTY] == "kb__v0002"
    assert DUAL_WRITE_PROPERTY not in m.properties("kb__v0002")
    saved = store.load("kb")
    assert saved is not None and [h.action for h in saved.history] == ["switch", "rollback"]
    # The rollback is now the last switch recorded: rolling back again returns to what it replaced.
    again = roll_back(m, store, registry, pins, "kb")
    assert (again.source, again.target) == ("kb__v0001", "kb__v0002") and m.resolve("kb") == "kb__v0002"


def test_roll_back_refuses_without_a_switch_or_when_the_alias_was_moved_by_hand(
    settings: Settings, store: SwapStore
) -> None:
    registry, pins = ModelRegistry(settings.model.store_dir), Pins(settings.state.dir)
    m = two_versions(settings, serving="kb__v0001")
    with pytest.raises(SwapError, match="no recorded switch"):
        roll_back(m, store, registry, pins, "kb")
    st = SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="done")
    st.history.append(SwapEvent("switch", time.time(), "kb__v0001", "kb__v0002", "m1", "m2"))
    store.save(st)
    with pytest.raises(SwapError, match="resolve by hand"):
        roll_back(m, store, registry, pins, "kb")
    assert m.resolve("kb") == "kb__v0001"


def test_roll_back_refuses_when_gc_already_dropped_the_target(settings: Settings, store: SwapStore) -> None:
    m = two_versions(settings)
    st = SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="done")
    st.history.append(SwapEvent("switch", time.time(), "kb__v0001", "kb__v0002", "m1", "m2"))
    store.save(st)
    m.drop_collection("kb__v0001")
    with pytest.raises(SwapError, match="no longer exists"):
        roll_back(m, store, ModelRegistry(settings.model.store_dir), Pins(settings.state.dir), "kb")
    assert m.resolve("kb") == "kb__v0002"


def test_abort_before_the_switch_drops_the_target_and_the_dual_write_mark(settings: Settings, store: SwapStore) -> None:
    m = two_versions(settings, serving="kb__v0001")
    m.set_properties("kb__v0001", {DUAL_WRITE_PROPERTY: "kb__v0002"})
    store.save(SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="backfilled"))
    st = abort_swap(m, store, "kb")
    assert st.phase == "done" and st.history[-1].action == "abort" and st.history[-1].phase == "backfilled"
    assert set(m.collections) == {"kb__v0001"} and m.resolve("kb") == "kb__v0001"
    assert DUAL_WRITE_PROPERTY not in m.properties("kb__v0001")
    with pytest.raises(SwapError, match="no unfinished swap"):
        abort_swap(m, store, "kb")


def test_abort_after_the_switch_is_refused_and_touches_nothing(settings: Settings, store: SwapStore) -> None:
    m = two_versions(settings)
    store.save(SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="switched"))
    before = len(m.calls)
    with pytest.raises(SwapError, match="use `embguard rollback` instead"):
        abort_swap(m, store, "kb")
    assert m.calls[before:] == [] and set(m.collections) == {"kb__v0001", "kb__v0002"}


def test_collection_list_shows_each_alias_with_its_model_and_leaves_out_bookkeeping(settings: Settings) -> None:
    m = two_versions(settings)
    m.create_alias("kb__v0002", "kb_live")
    m.create_collection(settings.collection("kb"), 4, name=FEEDBACK_COLLECTION)
    m.create_collection(settings.collection("kb"), 4, name=f"{TAP_COLLECTION}_d4")
    m.create_collection(settings.collection("kb"), 8, name="hand_made")
    m.insert("kb__v0002", [{"id": 1, "vector": [0.0] * 4, "text": "a"}])
    rows = {(i.alias, i.collection): i for i in managed.list_collections(m)}
    assert set(rows) == {("", "hand_made"), ("", "kb__v0001"), ("kb", "kb__v0002"), ("kb_live", "kb__v0002")}
    kb = rows[("kb", "kb__v0002")]
    assert (kb.model_id, kb.rows, kb.dimension, kb.managed) == ("m2", 1, 4, True)
    assert not rows[("", "hand_made")].managed and rows[("", "hand_made")].dimension == 8


def test_managed_names_are_the_alias_and_the_models_store_version() -> None:
    assert collection_name("kb", version_for_model("v0003@abc")) == "kb__v0003"
    assert collection_name("kb", version_for_model("all-MiniLM-L6-v2@9144d0ed61bb")) == "kb__v0000"
