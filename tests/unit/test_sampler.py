"""embguard's reservoir sampler (sampling.reservoir) on plain streams: uniform, seeded, O(k), no Milvus.

The Milvus-backed document sampler streams every id through this function
(tests/integration/test_client_tap_and_search.py checks it end to end on both backends); here it is checked alone,
fast, with enough draws to see a positional bias.
"""

from __future__ import annotations

import random

import numpy as np
from scipy import stats

from embguard.checks.windows import reservoir

N, K, RUNS = 40, 8, 4000


def _inclusion_counts(n: int, k: int, runs: int) -> np.ndarray:
    counts = np.zeros(n)
    for seed in range(runs):
        chosen = reservoir(iter(range(n)), k, random.Random(seed))
        assert len(chosen) == k and len(set(chosen)) == k
        counts[chosen] += 1
    return counts


def test_every_position_of_the_stream_is_equally_likely() -> None:
    counts = _inclusion_counts(N, K, RUNS)
    # Each item is kept with probability k/n wherever it sits in the stream; the usual reservoir bugs (an
    # off-by-one in the replacement draw, replacing only the last slot) over- or under-weight the head or tail.
    lo, hi = stats.binom.interval(1 - 1e-4, RUNS, K / N)
    assert lo <= counts.min() and counts.max() <= hi, counts
    assert stats.chisquare(counts).pvalue > 0.001, counts
    head, tail = counts[:K].sum(), counts[-K:].sum()
    assert abs(head - tail) < 6 * np.sqrt(RUNS * K * K / N), (head, tail)


def test_a_short_stream_is_returned_whole_in_order() -> None:
    assert reservoir(iter(range(5)), 8, random.Random(0)) == [0, 1, 2, 3, 4]
    assert reservoir(iter(()), 3, random.Random(0)) == []
    assert reservoir(iter(range(10)), 0, random.Random(0)) == []


def test_the_seed_decides_the_sample() -> None:
    ids = [f"doc-{i}" for i in range(1000)]
    first = reservoir(iter(ids), 50, random.Random(7))
    assert reservoir(iter(ids), 50, random.Random(7)) == first
    assert reservoir(iter(ids), 50, random.Random(8)) != first
    # Any hashable id type passes through unchanged (Milvus ids are INT64 or VARCHAR).
    assert set(first) <= set(ids)
