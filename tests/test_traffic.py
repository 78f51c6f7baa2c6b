"""The traffic benchmark's simulator and page counting, and a small run through the real CollectionMonitor.

The full run (days of traffic, several shift sizes, Evidently peers) is benchmarks/traffic.py; this keeps its parts
honest in seconds: the stream has the Zipf head, the daily cycle, the bursts and the shift it claims, and a large
sudden shift pages while the same stream without it does not.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import traffic as tr

from embguard.config import DriftSettings


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


def test_page_counting() -> None:
    assert tr.pages([False, True, True, False, True]) == 2
    assert tr.sustained_at([0.001, 0.001, 0.5, 0.001, 0.001, 0.001], 0.01, 3) == [False] * 5 + [True]
    assert tr.delay([False, False, False, True], 1) == 2 and tr.delay([False], 0) is None
    assert tr.empirical_threshold([0.5] * 99 + [0.0001], 0.01) <= 0.01


@pytest.mark.integration  # ~6 s of windows: not the fast tier
def test_large_sudden_shift_pages_and_the_quiet_stream_does_not(corpus: tr.Corpus) -> None:
    """The daemon's deduplication: windows and the day reference piece by piece (bursts would page otherwise)."""
    drift = DriftSettings(monitors=("mmd", "retrieval", "top1"))
    quiet = tr.Traffic(corpus, seed=3)
    shifted = tr.Traffic(corpus, seed=3, shift_start=2 * tr.DAY, shift_share=0.5)
    ts, day0 = quiet.queries(0, tr.DAY)
    # drift.dedup_queries (the default) deduplicates the day hour by hour and every window as a whole.
    assert drift.dedup_queries
    mon = tr.make_monitor(corpus, drift, tr.window(corpus, day0, ts=ts), doc_sample=600, window_s=3600)
    rows: dict[str, Any] = {}
    for name, stream in (("quiet", quiet), ("shifted", shifted)):
        mon.reset()
        rows[name] = tr.run_checks(mon, stream, 2 * tr.DAY, 2 * tr.DAY + 12 * 300, 3600, 300)
    assert tr.pages([bool(r["s:combined"]) for r in rows["quiet"]]) == 0
    assert tr.delay([bool(r["s:combined"]) for r in rows["shifted"]], 0) is not None


@pytest.mark.integration
def test_the_defaults_page_a_20_percent_new_topic_within_three_checks_and_not_on_quiet_traffic(
    corpus: tr.Corpus,
) -> None:
    """The shipped schedule (hour windows checked hourly, 2 in a row, alpha 0.01, a day's reference), a small
    version of benchmarks/results/traffic.md: a sudden 20% new-topic family pages by the third check after its
    onset, and the same stream without it stays quiet for half a day."""
    from embguard.config import SamplingSettings, ScheduleSettings

    drift, window_s, interval_s = DriftSettings(), SamplingSettings().window_s, ScheduleSettings().check_interval_s
    assert (window_s, interval_s, drift.consecutive, drift.alpha) == (3600, 3600, 2, 0.01)
    quiet = tr.Traffic(corpus, seed=101)
    onset = 2 * tr.DAY + 9 * tr.HOUR + 1200  # a third into an interval: the first check sees 40 min of it
    shifted = tr.Traffic(corpus, seed=101, shift_start=onset, shift_share=0.2)
    ts, day0 = quiet.queries(0, tr.DAY)
    mon = tr.make_monitor(corpus, drift, tr.window(corpus, day0, ts=ts), doc_sample=2000, window_s=window_s)
    # Checks at whole hours: the quiet day's first 12, and the 3 within three intervals of the onset.
    runs = {"quiet": (quiet, 2 * tr.DAY + interval_s, 12), "shifted": (shifted, 2 * tr.DAY + 10 * tr.HOUR, 3)}
    rows: dict[str, Any] = {}
    for name, (stream, first, n) in runs.items():
        mon.reset()
        rows[name] = tr.run_checks(mon, stream, first, first + n * interval_s, window_s, interval_s)
    assert tr.pages([bool(r["s:combined"]) for r in rows["quiet"]]) == 0
    assert any(r["s:combined"] for r in rows["shifted"]), [r["p:combined"] for r in rows["shifted"]]
