"""The traffic benchmark's simulated stream (benchmarks/traffic.py) has the Zipf head, the daily cycle, the bursts
and the shift it claims. It is built on the real model's embeddings of the stdlib corpus (cached under .cache/, but
the model runs whenever the cache misses), so it is an integration test."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import traffic as tr


@pytest.fixture(scope="module")
def corpus() -> tr.Corpus:
    return tr.load_corpus()


def test_stream_has_a_zipf_head_bursts_and_a_daily_cycle(corpus: tr.Corpus) -> None:
    t = tr.Traffic(corpus, seed=1)
    _, rows = t.queries(0, tr.DAY)
    assert 0.8 * 24 * t.rate_per_hour < len(rows) < 1.3 * 24 * t.rate_per_hour
    _, counts = np.unique(rows, return_counts=True)
    # The top head query alone takes several percent of traffic; most distinct queries are rare.
    assert counts.max() / len(rows) > 0.03 and np.median(counts) <= 2 and len(counts) > 1000
    assert not np.isin(corpus.family[rows], t.new_family).any()
    night = corpus.family[t.queries(0, 3 * tr.HOUR)[1]]
    noon = corpus.family[t.queries(12 * tr.HOUR, 15 * tr.HOUR)[1]]
    table = np.stack([np.bincount(night, minlength=12), np.bincount(noon, minlength=12)])
    assert chi2_contingency(table[:, table.sum(0) > 0])[1] < 1e-3  # the topic mix moves with the hour


def test_shift_moves_the_stated_share_to_the_new_family(corpus: tr.Corpus) -> None:
    t = tr.Traffic(corpus, seed=2, shift_start=tr.DAY, shift_share=0.2)
    _, before = t.queries(tr.DAY - 6 * tr.HOUR, tr.DAY)
    _, after = t.queries(tr.DAY, tr.DAY + 6 * tr.HOUR)
    assert (corpus.family[before] == t.new_family).sum() == 0
    k = int((corpus.family[after] == t.new_family).sum())
    ci = binomtest(k, len(after)).proportion_ci(0.999)
    # Bursts repeat a known query, so the share can sit a little under 0.2.
    assert ci.low <= 0.2 and ci.high >= 0.16
