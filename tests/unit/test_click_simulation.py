"""Feedback quality: a click's rank recovered from the tapped query (real Milvus Lite, real model), and the
demo's simulated users clicking with position bias."""

from __future__ import annotations

import random

import pytest

from embguard.demo.simulate import user_clicks


def test_simulated_users_click_with_position_bias() -> None:
    def click_rate(rank: int) -> float:
        return sum(user_clicks(random.Random(seed), rank, click_rate=0.7) for seed in range(4000)) / 4000

    at = {r: click_rate(r) for r in (1, 2, 8)}
    assert at[1] == pytest.approx(0.7, abs=0.03)  # the top result is always examined
    assert at[1] > at[2] > at[8]
    assert at[8] == pytest.approx(0.7 / 8, abs=0.02)  # examined 1/8 of the time
    # Seeded: the same users make the same clicks; without position bias every rank is clicked alike.
    assert [user_clicks(random.Random(s), 5, 0.7) for s in range(50)] == [
        user_clicks(random.Random(s), 5, 0.7) for s in range(50)
    ]
    flat = sum(user_clicks(random.Random(s), 8, 0.7, eta=0.0) for s in range(4000)) / 4000
    assert flat == pytest.approx(0.7, abs=0.03)
