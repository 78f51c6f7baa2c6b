"""CollectionMonitor on real query text without Milvus: inputs from the one table, the combined page, carried_by.

Windows are built the way ``sampling`` builds them from tap rows (vectors, top-k ids, top-k scores); the corpus
lookup is a dict, as Milvus would return vectors by id.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from monitors_data import load_real_embeddings

from embguard.checks.monitor import CollectionMonitor
from embguard.checks.reports import COMBINED
from embguard.checks.windows import Window
from embguard.config.settings import DriftSettings

# Loads the real model to embed the stdlib corpus (about a minute on 2 cores) unless .cache/monitors holds it.
pytestmark = pytest.mark.integration

NEW_TOPICS = ["tkinter", "turtle"]


@pytest.fixture(scope="module")
def world() -> dict[str, Any]:
    real = load_real_embeddings()
    sims = real.query @ real.text.T
    top = np.argsort(-sims, axis=1)[:, :10]
    new = np.isin(real.topics, NEW_TOPICS)
    return {
        "real": real,
        "top": top,
        "scores": np.take_along_axis(sims, top, axis=1),
        "a": np.flatnonzero(~new),
        "b": np.flatnonzero(new),
    }


def _window(world: dict[str, Any], rows: np.ndarray, model_id: str = "m") -> Window:
    real = world["real"]
    ids = real.ids
    return Window(
        kind="queries",
        collection="docs",
        model_id=model_id,
        start_ms=0,
        end_ms=1,
        ids=tuple(range(len(rows))),
        vectors=real.query[rows],
        timestamps_ms=np.zeros(len(rows)),
        top_ids=tuple(tuple(int(ids[j]) for j in world["top"][r]) for r in rows),
        top_scores=world["scores"][rows],
    )


def _monitor(world: dict[str, Any], ref: np.ndarray, **settings: Any) -> CollectionMonitor:
    real = world["real"]
    sample = np.random.default_rng(0).choice(len(real.ids), 800, replace=False)
    corpus = Window(
        kind="documents",
        collection="docs",
        model_id="m",
        start_ms=0,
        end_ms=1,
        ids=tuple(int(i) for i in real.ids[sample]),
        vectors=real.text[sample],
        timestamps_ms=np.zeros(len(sample)),
    )
    by_id = dict(zip(real.ids.tolist(), real.text, strict=True))

    def lookup(ids: Any) -> dict[Any, np.ndarray]:
        return {i: by_id[i] for i in ids}

    drift = DriftSettings(**settings)
    return CollectionMonitor("docs", drift, _window(world, ref), 1, corpus=corpus, lookup=lookup)


def test_page_is_one_combined_decision_that_names_its_monitors(world: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    mon = _monitor(world, rng.choice(world["a"], 400), consecutive=2)
    assert set(mon.monitors) == {"mmd", "retrieval", "neighbours", "ood", "top1"}
    quiet = mon.check(_window(world, rng.choice(world["a"], 300)), "docs_v1")
    combined = quiet.combined
    assert combined is not None and combined.monitor == COMBINED and combined.p_value is not None
    assert {o.monitor for o in quiet.outcomes} == {"mmd", "retrieval", "neighbours", "ood", "top1", COMBINED}
    # The page's members (drift.page) share one null: the page p-value lies between its best member's p-value and
    # that times the member count (never the Holm/Bonferroni worst case when the members agree).
    page = DriftSettings().page
    assert page == ("retrieval", "neighbours") and combined.details["method"] == "shared permutation minP"
    ps = [o.p_value for o in quiet.outcomes if o.monitor in page and o.p_value is not None]
    assert min(ps) <= combined.p_value <= len(page) * min(ps) + 1e-12
    shifted = [np.r_[rng.choice(world["a"], 150), rng.choice(world["b"], 150)] for _ in range(2)]
    reports = [mon.check(_window(world, rows), "docs_v1") for rows in shifted]
    assert [r.sustained for r in reports] == [False, True]
    assert reports[1].carried_by and set(reports[1].carried_by) <= set(page)
    assert "combined" in reports[1].summary() and reports[1].carried_by[0] in reports[1].summary()
    assert mon.consecutive[COMBINED] == 2
    assert reports[1].to_json()["sustained"] is True


def test_evidently_monitors_are_reported_but_not_combined(world: dict[str, Any]) -> None:
    rng = np.random.default_rng(6)
    mon = _monitor(world, rng.choice(world["a"], 300), monitors=("top1", "evidently_distance"))
    report = mon.check(_window(world, rng.choice(world["a"], 200)), "docs_v1")
    by_name = {o.monitor: o for o in report.outcomes}
    assert by_name["evidently_distance"].p_value is None
    assert report.combined is not None
    assert report.combined.p_value == pytest.approx(by_name["top1"].p_value)


def test_window_from_another_model_is_skipped(world: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    mon = _monitor(world, rng.choice(world["a"], 300), monitors=("top1",))
    report = mon.check(_window(world, rng.choice(world["a"], 200), model_id="other"), "docs_v1")
    assert "capture a new baseline" in report.skipped and report.combined is None
