"""gc during a swap keeps the swap's target and refuses while the swap runs (it needs every watched alias's swap
lock)."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Any

import pytest

from embguard.config import loader as config
from embguard.errors import SwapLocked
from embguard.milvus.names import CREATED_PROPERTY
from embguard.swap.state import SwapState, SwapStore
from embguard.swap.swapper import Swapper


@pytest.mark.integration
def test_gc_during_a_swap_keeps_the_swap_target_and_refuses_while_the_swap_runs(milvus_world: Any) -> None:
    from embguard.milvus.milvus import Milvus

    settings = config.load(
        None, environ={**milvus_world.env, "EMBGUARD_COLLECTIONS": '[{name="gk", index_type="FLAT"}]'}
    )
    spec = settings.collection("gk")
    m = Milvus.connect(settings)
    try:
        old = {CREATED_PROPERTY: "1"}  # created long ago: past any retention
        for name in ("gk__v1", "gk__v0002", "gk__v0000"):
            m.create_collection(spec, 8, name=name, properties=old)
        m.create_alias("gk__v1", "gk")
        store = SwapStore(settings.state.dir)
        state = SwapState(
            alias="gk",
            source="gk__v1",
            target="gk__v0002",
            source_model_id="a",
            candidate_version="v0002",
            candidate_model_id="b",
            phase="dual_write",
            done=80,
            total=303,
        )
        store.save(state)
        swapper = Swapper(settings, m, say=lambda _: None)

        with store.lock("gk", "retrain --approve --candidate v0002"):  # the swap is running
            with pytest.raises(SwapLocked, match=rf"pid {os.getpid()} .*retrain --approve --candidate v0002"):
                swapper.gc(retention_s=0)
        assert set(m.list_collections()) >= {"gk__v1", "gk__v0002", "gk__v0000"}

        # The swap crashed (its lock is free) but is unfinished: gc still keeps its target.
        assert swapper.gc(retention_s=0) == ["gk__v0000"]
        assert m.has_collection("gk__v0002") and not m.has_collection("gk__v0000")

        store.save(SwapState(**{**asdict(state), "phase": "done"}))  # aborted or finished elsewhere
        assert swapper.gc(retention_s=0) == ["gk__v0002"]
    finally:
        m.close()
