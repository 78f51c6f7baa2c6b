"""Undoing and retiring: abort an unfinished swap, roll an alias back, and drop versioned collections no alias
serves any more (``embguard gc``), once past ``swap.retention_s``.

Never a collection an unfinished swap names (a crashed swap resumes into its target), and never one another
collection still dual-writes into (that mark goes first). The caller holds every watched alias's swap lock.
"""

from __future__ import annotations

import contextlib
import time

from .client import DUAL_WRITE_PROPERTY
from .config import Settings
from .errors import EmbguardError, SwapError
from .milvus import Milvus
from .registry import ModelRegistry
from .retention import Pins
from .swapstate import SwapEvent, SwapState, SwapStore

CREATED_PROPERTY = "embguard.created_at"


def drop_retired(settings: Settings, milvus: Milvus, store: SwapStore, retention_s: int, dry_run: bool) -> list[str]:
    m = milvus
    served = {m.resolve(c.name) for c in settings.collections}
    in_swap = {n for st in store.all() if st.phase != "done" for n in (st.source, st.target)}
    dropped = []
    for name in m.list_collections():
        if not any(name.startswith(f"{c.name}__") or name == c.name for c in settings.collections):
            continue
        if name in served or name in in_swap or m.aliases_of(name):
            continue
        created = float(m.properties(name).get(CREATED_PROPERTY, 0) or 0)
        if time.time() - created < retention_s:
            continue
        dropped.append(name)
        if dry_run:
            continue
        for other in served:  # nothing may dual-write into a collection about to go
            if m.properties(other).get(DUAL_WRITE_PROPERTY) == name:
                m.drop_properties(other, [DUAL_WRITE_PROPERTY])
        m.drop_collection(name)
    return dropped


def abort_swap(milvus: Milvus, store: SwapStore, alias: str) -> SwapState:
    """Undo an unfinished swap of ``alias`` before its switch (the caller holds its swap lock)."""
    st = store.load(alias)
    if st is None or st.phase == "done":
        raise SwapError(f"alias {alias!r} has no unfinished swap to abort")
    if st.reached("switched"):
        raise SwapError(
            f"the swap of {alias!r} already switched the alias to {st.target}; use `embguard rollback` instead"
        )
    if milvus.properties(st.source).get(DUAL_WRITE_PROPERTY) == st.target:
        milvus.drop_properties(st.source, [DUAL_WRITE_PROPERTY])
    if milvus.has_collection(st.target) and milvus.resolve(alias) != st.target:
        milvus.drop_collection(st.target)
    st.history.append(SwapEvent("abort", time.time(), target=st.target, phase=st.phase))
    st.phase, st.error = "done", ""
    store.save(st)
    return st


def roll_back(milvus: Milvus, store: SwapStore, registry: ModelRegistry, pins: Pins, alias: str) -> SwapEvent:
    """Point ``alias`` back at what it served before its last switch (the caller holds its swap lock)."""
    st = store.load(alias)
    switches = st.switches() if st else []
    if st is None or not switches:
        raise SwapError(f"alias {alias!r} has no recorded switch to roll back")
    last = switches[-1]
    current = milvus.resolve(alias)
    if current != last.target:
        raise SwapError(
            f"alias {alias!r} serves {current!r}, not {last.target!r} as the last switch "
            "left it; resolve by hand (embguard status) before rolling back"
        )
    back = last.source
    if not milvus.has_collection(back):
        raise SwapError(f"collection {back!r} to roll back to no longer exists (dropped by gc?)")
    # The old collection has kept receiving dual writes since the switch, so it is current.
    milvus.set_properties(back, {DUAL_WRITE_PROPERTY: current})
    milvus.alter_alias(back, alias)
    with contextlib.suppress(EmbguardError):
        milvus.drop_properties(current, [DUAL_WRITE_PROPERTY])
    entry = SwapEvent("rollback", time.time(), current, back, last.target_model, last.source_model)
    st.history.append(entry)
    store.save(st)
    rolled = registry.by_model_id(last.target_model)
    if rolled is not None:
        registry.set_status(rolled.version, "rolled_back")
        pins.release(rolled.version)
    restored = registry.by_model_id(last.source_model)
    if restored is not None:
        registry.set_status(restored.version, "active")
    return entry
