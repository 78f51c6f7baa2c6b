"""gc's plan and drops (embguard.swap.retire), on the in-memory Milvus of tests/fakes.py: the real decision logic,
fake storage. A collection is dropped only when it is one of embguard's versioned collections, created by embguard,
served by nothing, not the rollback target, and retired for longer than the retention."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from builders import make_settings
from fakes import FakeMilvus

from embguard.client.client import DUAL_WRITE_PROPERTY
from embguard.config.settings import Settings
from embguard.errors import MilvusUnavailable
from embguard.milvus.names import CREATED_PROPERTY
from embguard.swap.retire import drop_retired, gc_plan
from embguard.swap.state import SwapEvent, SwapState, SwapStore

DAY = 86_400
LONG_AGO = time.time() - 30 * DAY


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, EMBGUARD_COLLECTIONS='[{name="kb"}]')


@pytest.fixture()
def store(settings: Settings) -> SwapStore:
    return SwapStore(settings.state.dir)


def served(settings: Settings, *old: str, created: float = LONG_AGO) -> FakeMilvus:
    """``kb`` -> ``kb__v0002``, plus the collections ``old``, every one created by embguard at ``created``."""
    m = FakeMilvus()
    for name in ("kb__v0002", *old):
        m.create_collection(settings.collection("kb"), 4, name=name, properties={CREATED_PROPERTY: str(created)})
    m.create_alias("kb__v0002", "kb")
    return m


def switched(store: SwapStore, source: str, target: str, at: float) -> None:
    """The swap record of a finished switch of ``kb`` from ``source`` to ``target`` at ``at``."""
    st = SwapState("kb", source, target, "m1", "v0002", "m2", phase="done")
    st.history.append(SwapEvent("switch", at, source, target, "m1", "m2"))
    store.save(st)


def decisions(settings: Settings, m: FakeMilvus, store: SwapStore, retention_s: int = DAY) -> dict[str, str]:
    return {r.collection: r.line() for r in gc_plan(settings, m, store, retention_s)}


def test_the_served_collection_and_the_rollback_target_are_kept_past_retention(
    settings: Settings, store: SwapStore
) -> None:
    m = served(settings, "kb__v0001", "kb__v0000")
    switched(store, "kb__v0001", "kb__v0002", at=LONG_AGO)
    plan = decisions(settings, m, store)
    assert plan["kb__v0002"].startswith("keep kb__v0002: serves alias kb")
    assert plan["kb__v0001"].startswith("keep kb__v0001: rollback target of kb")
    assert plan["kb__v0000"].startswith("drop kb__v0000: no alias serves it")


def test_a_rollback_ends_the_protection_of_the_old_target(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__v0001")
    st = SwapState("kb", "kb__v0001", "kb__v0002", "m1", "v0002", "m2", phase="done")
    st.history += [
        SwapEvent("switch", LONG_AGO, "kb__v0002", "kb__v0001", "m2", "m1"),
        SwapEvent("rollback", LONG_AGO + 1, "kb__v0001", "kb__v0002", "m1", "m2"),
    ]
    store.save(st)
    assert decisions(settings, m, store)["kb__v0001"].startswith("drop kb__v0001")


def test_hand_made_and_unversioned_collections_are_never_dropped(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__backup")
    m.create_collection(settings.collection("kb"), 4, name="kb__v0003")  # no creation time: made by hand
    m.create_collection(settings.collection("kb"), 4, name="other__v0001", properties={CREATED_PROPERTY: "1"})
    plan = decisions(settings, m, store)
    assert "not one of embguard's versioned names" in plan["kb__backup"]
    assert f"no {CREATED_PROPERTY} property" in plan["kb__v0003"]
    assert "other__v0001" not in plan  # not named after a watched alias: gc does not even look
    assert drop_retired(settings, m, store, DAY, dry_run=False) == []
    assert {"kb__backup", "kb__v0003", "other__v0001"} <= set(m.collections)


def test_an_unreadable_creation_time_counts_as_new(settings: Settings, store: SwapStore) -> None:
    m = served(settings)
    m.create_collection(settings.collection("kb"), 4, name="kb__v0001", properties={CREATED_PROPERTY: "yesterday"})
    assert "creation time is unknown" in decisions(settings, m, store)["kb__v0001"]


def test_retention_counts_from_when_a_collection_stopped_serving(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__v0001", "kb__v0000")
    switched(store, "kb__v0000", "kb__v0001", at=LONG_AGO)
    st = store.load("kb")
    assert st is not None
    st.history.append(SwapEvent("switch", time.time() - 60, "kb__v0001", "kb__v0002", "m1", "m2"))
    store.save(st)
    plan = decisions(settings, m, store)
    # kb__v0001 stopped serving a minute ago (and is the rollback target); kb__v0000 a month ago.
    assert plan["kb__v0001"].startswith("keep kb__v0001: rollback target")
    assert plan["kb__v0000"].startswith("drop kb__v0000: no alias serves it; stopped serving")
    assert "within swap.retention_s" in decisions(settings, m, store, retention_s=60 * DAY)["kb__v0000"]


def test_an_unfinished_swap_keeps_its_target(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__v0003")
    store.save(SwapState("kb", "kb__v0002", "kb__v0003", "m2", "v0003", "m3", phase="backfilled"))
    assert "named by the unfinished swap of kb (phase backfilled)" in decisions(settings, m, store)["kb__v0003"]


def test_drop_retired_says_its_plan_removes_dual_write_marks_and_drops(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__v0000")
    m.set_properties("kb__v0002", {DUAL_WRITE_PROPERTY: "kb__v0000"})
    said: list[str] = []
    assert drop_retired(settings, m, store, DAY, dry_run=True, say=said.append) == ["kb__v0000"]
    assert said[0].startswith("would drop kb__v0000") and "kb__v0000" in m.collections  # a dry run touches nothing
    said.clear()
    assert drop_retired(settings, m, store, DAY, dry_run=False, say=said.append) == ["kb__v0000"]
    assert said[-1] == "dropped kb__v0000" and "kb__v0000" not in m.collections
    assert DUAL_WRITE_PROPERTY not in m.properties("kb__v0002")
    assert m.resolve("kb") == "kb__v0002"


def test_gc_stops_when_milvus_goes_away(settings: Settings, store: SwapStore) -> None:
    m = served(settings, "kb__v0000")
    m.down = True
    with pytest.raises(MilvusUnavailable):
        gc_plan(settings, m, store, DAY)
