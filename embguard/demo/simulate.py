"""Simulated application traffic over a real corpus, for the demo, the tests and the benchmarks.

The corpus is the standard library's documentation (``corpus.py``). A *topic mix* decides which topics
the simulated users ask about; a shift moves part of the traffic to topics the reference never saw.
Every query is a docstring summary whose own passage is the right answer, so the simulated user can
click the relevant result when the search finds it, as a real user would: with position bias, because a
user reads the list from the top and often stops early (``user_clicks``), so the deeper the right answer
is shown, the less often it is clicked. Training corrects for it (``retrain.position``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from embguard.client.client import Client
from embguard.training.stdlib_corpus import Passage, by_topic, stdlib_corpus
from retrain.position import DEFAULT_ETA, examination_propensity


@dataclass(frozen=True)
class TrafficStats:
    searches: int
    failures: int
    clicks: int
    found_at_10: int


def passages_for(topics: Sequence[str]) -> list[Passage]:
    groups = by_topic(stdlib_corpus())
    missing = [t for t in topics if t not in groups]
    if missing:
        raise ValueError(f"unknown corpus topics {missing}; available: {', '.join(sorted(groups))}")
    return [p for t in topics for p in groups[t]]


def index(client: Client, alias: str, passages: Sequence[Passage], batch: int = 64) -> int:
    n = 0
    for i in range(0, len(passages), batch):
        chunk = passages[i : i + batch]
        n += client.insert(alias, [{"id": p.id, "text": p.text[:1000]} for p in chunk])
    return n


def user_clicks(rng: random.Random, rank: int, click_rate: float, eta: float = DEFAULT_ETA) -> bool:
    """Whether a simulated user clicks the relevant result shown at 1-based ``rank``: they examine that rank
    with probability ``(1/rank)**eta`` (the position-based model training corrects for) and click it, once
    examined, with probability ``click_rate``. ``eta = 0`` is a user without position bias."""
    examined = rng.random() < examination_propensity(rank, eta)
    return examined and rng.random() < click_rate


class App(Protocol):
    """What the simulated users need of an application: search a query (the ranked ids, and the query id the
    application got if any) and record a click on a result."""

    def search(self, query: str, limit: int) -> tuple[list[Any], str | None]: ...
    def click(self, query: str, query_id: str | None, doc_id: Any) -> None: ...


class ClientApp:
    """An application written for ``embguard.Client``: searches the alias, sends clicks by query id."""

    def __init__(self, client: Client, alias: str):
        self.client, self.alias = client, alias

    def search(self, query: str, limit: int) -> tuple[list[Any], str | None]:
        res = self.client.search(self.alias, [query], limit=limit)
        return [h.id for h in res.hits[0]], res.query_ids[0]

    def click(self, query: str, query_id: str | None, doc_id: Any) -> None:
        assert query_id is not None
        self.client.feedback(query_id, doc_id, signal="click")


def traffic(
    client: Client | App,
    alias: str,
    base: Sequence[Passage],
    n: int,
    *,
    shifted: Sequence[Passage] = (),
    shift_share: float = 0.0,
    click_rate: float = 0.5,
    position_eta: float = DEFAULT_ETA,
    seed: int = 0,
) -> TrafficStats:
    """``n`` searches: a ``shift_share`` of them from ``shifted``, the rest from ``base``. A user whose right
    answer is among the hits clicks it as ``user_clicks`` decides; the same seed and hits give the same clicks.
    ``client`` is an ``embguard.Client`` (searching ``alias``) or any :class:`App`."""
    app: App = ClientApp(client, alias) if isinstance(client, Client) else client
    rng = random.Random(seed)
    failures = clicks = found = 0
    for _ in range(n):
        pool = shifted if shifted and rng.random() < shift_share else base
        p = rng.choice(pool)
        try:
            ids, query_id = app.search(p.query, 10)
        except Exception:  # counted: the caller asserts on it
            failures += 1
            continue
        if p.id in ids:
            found += 1
            if user_clicks(rng, ids.index(p.id) + 1, click_rate, position_eta):
                app.click(p.query, query_id, p.id)
                clicks += 1
    return TrafficStats(n, failures, clicks, found)
