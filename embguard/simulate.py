"""Simulated application traffic over a real corpus, for the demo, the tests and the benchmarks.

The corpus is the standard library's documentation (``corpus.py``). A *topic mix* decides which topics
the simulated users ask about; a shift moves part of the traffic to topics the reference never saw.
Every query is a docstring summary whose own passage is the right answer, so the simulated user can
click the relevant result when the search finds it, as a real user would.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .client import Client
from .corpus import Passage, by_topic, stdlib_corpus


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


def traffic(
    client: Client,
    alias: str,
    base: Sequence[Passage],
    n: int,
    *,
    shifted: Sequence[Passage] = (),
    shift_share: float = 0.0,
    click_rate: float = 0.5,
    seed: int = 0,
) -> TrafficStats:
    """``n`` searches: a ``shift_share`` of them from ``shifted``, the rest from ``base``."""
    rng = random.Random(seed)
    failures = clicks = found = 0
    for _ in range(n):
        pool = shifted if shifted and rng.random() < shift_share else base
        p = rng.choice(pool)
        try:
            res = client.search(alias, [p.query], limit=10)
        except Exception:  # counted: the caller asserts on it
            failures += 1
            continue
        ids = [h.id for h in res.hits[0]]
        if p.id in ids:
            found += 1
            if rng.random() < click_rate:
                client.feedback(res.query_ids[0], p.id, signal="click")
                clicks += 1
    return TrafficStats(n, failures, clicks, found)
