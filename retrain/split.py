"""Train / held-out split by *query*, and the leakage check that guards every evaluation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .errors import ConfigError, LeakageError
from .pairs import Pair


def _key(q: str) -> str:
    # Case and whitespace variants of one query are the same query for leakage purposes.
    return " ".join(q.lower().split())


@dataclass(frozen=True)
class QuerySplit:
    train: tuple[str, ...]
    held_out: tuple[str, ...]

    def __post_init__(self) -> None:
        assert_disjoint(self.train, self.held_out)


def split_queries(queries: Sequence[str], held_out_fraction: float = 0.3, seed: int = 0) -> QuerySplit:
    """Seeded split of the *distinct* queries; duplicates of a query always land on the same side."""
    if not 0 < held_out_fraction < 1:
        raise ConfigError(f"held_out_fraction={held_out_fraction!r} must be in (0, 1), e.g. 0.3")
    distinct: dict[str, str] = {}
    for q in queries:
        distinct.setdefault(_key(q), q)
    keys = sorted(distinct)
    if len(keys) < 2:
        raise ConfigError(f"need at least 2 distinct queries to split, got {len(keys)}; collect more feedback")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    n_out = max(1, min(len(keys) - 1, round(len(keys) * held_out_fraction)))
    held = {keys[i] for i in order[:n_out]}
    train = tuple(distinct[k] for k in keys if k not in held)
    out = tuple(distinct[k] for k in keys if k in held)
    return QuerySplit(train=train, held_out=out)


def split_queries_stratified(
    strata: Mapping[str, Sequence[str]], held_out_fraction: float = 0.3, seed: int = 0
) -> QuerySplit:
    """:func:`split_queries` within each stratum (e.g. clicked vs annotator-labelled queries), so every stratum
    is held out in proportion however small it is. A query in several strata counts in the first that has it;
    a stratum with fewer than 2 distinct queries goes to training whole."""
    train: list[str] = []
    held: list[str] = []
    seen: set[str] = set()
    for i, name in enumerate(sorted(strata)):
        qs = [q for q in dict.fromkeys(strata[name]) if _key(q) not in seen]
        seen.update(_key(q) for q in qs)
        if len({_key(q) for q in qs}) < 2:
            train += qs
            continue
        part = split_queries(qs, held_out_fraction, seed + i)
        train += part.train
        held += part.held_out
    return QuerySplit(train=tuple(train), held_out=tuple(held))


def assert_disjoint(train_queries: Iterable[str], held_out_queries: Iterable[str]) -> None:
    """Raise LeakageError if any held-out query (case/space-insensitive) is also a training query."""
    leaked = {_key(q) for q in train_queries} & {_key(q) for q in held_out_queries}
    if leaked:
        example = sorted(leaked)[:3]
        raise LeakageError(
            f"{len(leaked)} held-out queries also appear in the training data, e.g. {example}; "
            "drop them from the training pairs (split_pairs does) before evaluating"
        )


def split_pairs(pairs: Sequence[Pair], split: QuerySplit) -> tuple[tuple[Pair, ...], tuple[Pair, ...]]:
    """Partition pairs by the split's queries; pairs whose query is in neither side are dropped."""
    held = {_key(q) for q in split.held_out}
    train_keys = {_key(q) for q in split.train}
    train = tuple(p for p in pairs if _key(p.query) in train_keys and _key(p.query) not in held)
    test = tuple(p for p in pairs if _key(p.query) in held)
    assert_disjoint((p.query for p in train), (p.query for p in test))
    return train, test
