from __future__ import annotations

import random
from collections import Counter

from embguard.checks.windows import reservoir


def test_reservoir_is_uniform_and_bounded() -> None:
    rng = random.Random(0)
    counts: Counter[int] = Counter()
    for _ in range(3000):
        sample = reservoir(iter(range(50)), 5, rng)
        assert len(sample) == 5 and len(set(sample)) == 5
        counts.update(sample)
    from scipy import stats

    assert stats.chisquare([counts[i] for i in range(50)]).pvalue > 0.01
    assert reservoir(iter(range(3)), 5, rng) == [0, 1, 2]
