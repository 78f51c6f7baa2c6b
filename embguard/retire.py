"""Dropping versioned collections no alias serves any more (``embguard gc``), once past ``swap.retention_s``.

Never a collection an unfinished swap names (a crashed swap resumes into its target), and never one another
collection still dual-writes into (that mark goes first). The caller holds every watched alias's swap lock.
"""

from __future__ import annotations

import time

from .client import DUAL_WRITE_PROPERTY
from .config import Settings
from .milvus import Milvus
from .swapstate import SwapStore

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
