"""A small run of the traffic benchmark through the real CollectionMonitor: a large sudden shift pages while the
same stream without it does not, and the defaults page a 20% new topic within three checks (benchmarks/traffic.py is
the full run: days of traffic, several shift sizes, Evidently peers)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import traffic as tr

from embguard.config.settings import DriftSettings


@pytest.fixture(scope="module")
def corpus() -> tr.Corpus:
    return tr.load_corpus()


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
    from embguard.config.settings import SamplingSettings, ScheduleSettings

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
