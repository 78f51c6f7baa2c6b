"""Undoing and retiring: abort an unfinished swap, roll an alias back, and drop versioned collections no alias
serves any more (``embguard gc``), once past ``swap.retention_s``.

gc drops a collection only when all of these hold, and says why it keeps each one it does not:

- it is one of a watched alias's versioned collections (``<alias>__v<N>``) and embguard created it (it carries
  ``embguard.created_at``): a hand-made ``docs__backup``, or a collection adopted, is never touched;
- no alias serves it, and no unfinished swap names it (a crashed swap resumes into its target);
- it is not the rollback target: the collection the alias served before its last switch, while that switch
  stands (no rollback since), is what `embguard rollback` returns to;
- it stopped serving (or, never served, was created) at least ``retention_s`` ago; a collection without a
  readable creation time counts as new.

Another collection's dual-write mark pointing at it goes first. The caller holds every watched alias's swap lock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from embguard.client.retention import Pins
from embguard.config.settings import Settings
from embguard.config.units import duration
from embguard.errors import EmbguardError, MilvusError, MilvusUnavailable, SwapError
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import (
    CREATED_PROPERTY,
    DUAL_WRITE_PROPERTY,
    SWITCHED_PROPERTY,
    is_versioned,
    read_routes,
)
from embguard.models.registry import ModelRegistry
from embguard.swap.routing import open_routes
from embguard.swap.state import SwapEvent, SwapState, SwapStore

__all__ = ["Retirement", "abort_swap", "drop_retired", "gc_plan", "roll_back"]


@dataclass(frozen=True)
class Retirement:
    """gc's decision on one collection of a watched alias: drop it or keep it, and why."""

    collection: str
    alias: str
    drop: bool
    reason: str

    def line(self) -> str:
        return f"{'drop' if self.drop else 'keep'} {self.collection}: {self.reason}"


def _created_at(props: dict[str, str]) -> float | None:
    try:
        created = float(props.get(CREATED_PROPERTY, ""))
    except ValueError:
        return None
    return created if created > 0 else None


def _served(milvus: Milvus, alias: str) -> str | None:
    try:
        return milvus.resolve(alias)
    except MilvusUnavailable:
        raise
    except MilvusError:  # a watched alias not created yet serves nothing
        return None


def rollback_target(state: SwapState | None) -> SwapEvent | None:
    """The last switch of an alias while it stands (no rollback since): its ``source`` is the rollback target."""
    switches = state.switches() if state else []
    return switches[-1] if switches and switches[-1].action == "switch" else None


def gc_plan(
    settings: Settings, milvus: Milvus, store: SwapStore, retention_s: int, now: float | None = None
) -> list[Retirement]:
    """What gc would do with every collection named after a watched alias (``<alias>__*``), and why."""
    m = milvus
    now = time.time() if now is None else now
    aliases = [c.name for c in settings.collections]
    served = {a: s for a in aliases if (s := _served(m, a)) is not None}
    states = {st.alias: st for st in store.all()}
    in_swap = {n: st for st in states.values() if st.phase != "done" for n in (st.source, st.target)}
    targets = {ev.source: a for a, st in states.items() if (ev := rollback_target(st)) is not None}
    plan: list[Retirement] = []
    for name in sorted(m.list_collections()):
        alias = max((a for a in aliases if name.startswith(f"{a}__")), key=len, default=None)
        if alias is None:
            continue

        def keep(reason: str, name: str = name, alias: str = alias) -> None:
            plan.append(Retirement(name, alias, False, reason))

        serving = [a for a, s in served.items() if s == name]
        if serving:
            keep(f"serves alias {', '.join(serving)}")
            continue
        if name in targets:
            keep(
                f"rollback target of {targets[name]} (served it before the last switch; "
                f"`embguard rollback --collection {targets[name]}` returns to it)"
            )
            continue
        if name in in_swap:
            st = in_swap[name]
            keep(f"named by the unfinished swap of {st.alias} (phase {st.phase}); finish or abort that swap first")
            continue
        routes = read_routes(m.properties(name))  # a switch's routing aliases go with the collection
        routing = set(routes[1].values()) if routes else set()
        other_aliases = [a for a in m.aliases_of(name) if a not in routing]
        if other_aliases:
            keep(f"has the alias(es) {', '.join(other_aliases)}")
            continue
        if not is_versioned(alias, name):
            keep(f"not one of embguard's versioned names ({alias}__v<N>); embguard never drops it")
            continue
        created = _created_at(m.properties(name))
        if created is None:
            keep(f"embguard did not create it (no {CREATED_PROPERTY} property), or its creation time is unknown")
            continue
        retired = [h.at for st in states.values() for h in st.switches() if h.source == name and st.alias == alias]
        since = max([created, *retired])
        what = "stopped serving" if retired and max(retired) >= created else "created"
        if now - since < retention_s:
            keep(f"{what} {duration(now - since)} ago, within swap.retention_s={retention_s}")
            continue
        plan.append(
            Retirement(
                name,
                alias,
                True,
                f"no alias serves it; {what} {duration(now - since)} ago, past retention {retention_s} s",
            )
        )
    return plan


def drop_retired(
    settings: Settings,
    milvus: Milvus,
    store: SwapStore,
    retention_s: int,
    dry_run: bool,
    say: Callable[[str], None] | None = None,
) -> list[str]:
    """Say gc's plan (every decision with its reason), then drop what it marks ``drop`` unless ``dry_run``."""
    m = milvus
    plan = gc_plan(settings, m, store, retention_s)
    say = say or (lambda _: None)
    for item in plan:
        say(("would " if dry_run and item.drop else "") + item.line())
    dropped = [item.collection for item in plan if item.drop]
    if dry_run:
        return dropped
    served = {s for c in settings.collections if (s := _served(m, c.name)) is not None}
    for name in dropped:
        for other in served:  # nothing may dual-write into a collection about to go
            if m.properties(other).get(DUAL_WRITE_PROPERTY) == name:
                m.drop_properties(other, [DUAL_WRITE_PROPERTY])
        m.drop_collection(name)
        say(f"dropped {name}")
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


def roll_back(
    milvus: Milvus,
    store: SwapStore,
    registry: ModelRegistry,
    pins: Pins,
    alias: str,
    window_s: float = 0.0,
    say: Callable[[str], None] = print,
) -> SwapEvent:
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
    open_routes(milvus, alias, [current, back], window_s, say=say)
    # The old collection has kept receiving dual writes since the switch, so it is current.
    milvus.set_properties(back, {DUAL_WRITE_PROPERTY: current, SWITCHED_PROPERTY: str(time.time())})
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
