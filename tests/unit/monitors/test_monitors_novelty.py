"""What is new: a planted topic comes back as one cluster of its own queries, named by its words; known-topic
windows show nothing new."""

from __future__ import annotations

import numpy as np
import pytest
from monitors_data import unit_mixture

from monitors import MonitorInputError, new_clusters


def _texts(rng: np.random.Generator, n: int, words: list[str]) -> list[str]:
    filler = ["the", "a", "how", "to", "with", "for"]
    return [" ".join(rng.choice(words, 2).tolist() + rng.choice(filler, 2).tolist()) for _ in range(n)]


def test_a_planted_topic_is_one_cluster_of_its_own_queries_named_by_its_words(centres: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    ref = unit_mixture(rng, 300, centres[:30])
    known, new = unit_mixture(rng, 240, centres[:30]), unit_mixture(rng, 60, centres[31:32])
    cur = np.concatenate([known, new])
    texts = _texts(rng, 240, ["json", "csv", "parse", "file", "socket", "thread"]) + _texts(
        rng, 60, ["turtle", "drawing", "canvas"]
    )
    found = new_clusters(ref, cur, texts=texts)
    assert len(found) >= 1
    top = found[0]
    shown = np.array(top.rows)
    assert (shown >= 240).mean() >= 0.9 and top.size >= 30  # precision on the known label, and most of the topic
    assert top.share == pytest.approx(top.size / 300) and 0.5 < top.purity <= 1.0
    assert set(top.terms[:2]) <= {"turtle", "drawing", "canvas"}
    assert all(c.size >= 5 for c in found)


def test_known_topic_windows_show_nothing_new(centres: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    shown = sum(
        len(new_clusters(unit_mixture(rng, 300, centres[:30]), unit_mixture(rng, 300, centres[:30]))) for _ in range(10)
    )
    assert shown == 0


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(MonitorInputError, match="current"):
        new_clusters(np.ones((10, 4)), np.ones((10, 5)))
    with pytest.raises(MonitorInputError, match="k=0"):
        new_clusters(np.eye(10), np.eye(10), k=0)
