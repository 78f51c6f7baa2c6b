"""Routing aliases: how approve and rollback let the proxy pair each search with its vector's model exactly.

Before an alias switches, each collection of the switch gets a routing alias exactly as long as the application's
alias (so the proxy renames a Search's collection in place: no HTTP/2 frame, gRPC prefix or flow-control window
changes), and both collections record ``embguard.routes``: until when, and which routing alias serves each model.
The switch waits ``ROUTE_LEAD_S`` so every proxy (polling every 0.25 s) has the table before the alias moves.
Routing aliases are kept for the next switch (rollback) and dropped with their collection.
"""

from __future__ import annotations

import itertools
import string
import time
from collections.abc import Callable, Iterator, Sequence

from embguard.errors import EmbguardError, MilvusError
from embguard.milvus.milvus import Milvus, recorded_model_id
from embguard.milvus.names import ROUTES_PROPERTY, routes_value

ROUTE_LEAD_S = 1.0
# The routing window lasts this far past swap.grace_s: the endpoint follows an alias within milvus.alias_cache_s.
ROUTE_MARGIN_S = 5.0
_DIGITS = string.digits + string.ascii_lowercase


def candidate_names(alias: str) -> Iterator[str]:
    """Names as long as ``alias``: its head, ``_`` and a base-36 counter (``docs`` -> ``do_0``, ``do_1``...)."""
    width = len(alias)
    if width == 1:
        yield from (c for c in string.ascii_letters + "_" if c != alias)
        return
    for k in itertools.count():
        tag, n = "", k
        while True:
            tag = _DIGITS[n % 36] + tag
            n //= 36
            if not n:
                break
        if len(tag) + 1 > width:
            return
        yield alias[: width - len(tag) - 1] + "_" + tag


def _taken(milvus: Milvus, name: str) -> bool:
    try:
        milvus.resolve(name)
    except MilvusError:
        return False
    return True


def routing_alias(milvus: Milvus, alias: str, collection: str) -> str | None:
    """The routing alias of ``collection`` for ``alias``: the one it has, else a new free name (None if none is)."""
    mine = set(itertools.islice(candidate_names(alias), 256))
    for existing in milvus.aliases_of(collection):
        if existing in mine:
            return existing
    for name in candidate_names(alias):
        if not _taken(milvus, name):
            milvus.create_alias(collection, name)
            return name
    return None


def open_routes(
    milvus: Milvus, alias: str, collections: Sequence[str], window_s: float, say: Callable[[str], None] = print
) -> dict[str, str]:
    """Give each of ``collections`` a routing alias, record the table on all of them until ``window_s`` past the
    lead, and wait the lead. Returns ``{model id: routing alias}``; empty when routing could not be set up (said:
    the switch goes on, as exact as before routing existed)."""
    table: dict[str, str] = {}
    try:
        for collection in collections:
            name = routing_alias(milvus, alias, collection)
            if name is None:
                say(f"no free routing alias as long as {alias!r}; the proxy will not route searches in this switch")
                return {}
            table[recorded_model_id(milvus.properties(collection), collection)] = name
        until = time.time() + ROUTE_LEAD_S + window_s + ROUTE_MARGIN_S
        for collection in collections:
            milvus.set_properties(collection, {ROUTES_PROPERTY: routes_value(until, table)})
    except EmbguardError as exc:
        say(f"routing aliases for {alias!r} could not be set up ({exc}); the proxy will not route this switch")
        return {}
    time.sleep(ROUTE_LEAD_S)
    return table
