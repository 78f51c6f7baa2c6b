"""Every `[retrain] recipe` the product offers trains and loads on a tiny local model, and a recipe's missing
inputs are named before anything runs."""

from __future__ import annotations

import pytest

import retrain
from embguard.training import autorecipe
from retrain import Pair

PAIRS = tuple(
    Pair(
        query=f"how do I {verb} a {noun}",
        positive=f"use {verb}_{noun}() to {verb} the {noun} quickly",
        negative=f"the {noun} module has no {verb} function",  # as mined hard negatives would be
    )
    for verb in ("open", "close", "sort", "parse", "copy", "hash")
    for noun in ("file", "list", "socket", "string", "path")
)


def test_the_auto_validation_split_is_disjoint_from_the_gate_and_from_training() -> None:
    held = [f"how do I open a {n}" for n in ("file", "list")]
    pairs = tuple(p for p in PAIRS if p.query not in held)
    fit, val = autorecipe.validation_split(pairs, held, 0.2)
    retrain.assert_disjoint([p.query for p in fit], [p.query for p in val])
    retrain.assert_disjoint([p.query for p in val], held)
    assert {p.query for p in fit} | {p.query for p in val} == {p.query for p in pairs} and val
    with pytest.raises(retrain.LeakageError):  # training pairs that leak a gate query are refused
        autorecipe.validation_split(PAIRS, held, 0.2)


def test_a_click_rank_is_where_the_tapped_query_showed_it() -> None:
    from embguard.training.labels import click_rank

    row = {"top_ids": [7, 3, "a", 9]}
    assert click_rank(row, []) == 0  # no click: a miss
    assert click_rank(row, [9]) == 4 and click_rank(row, ["a", 9]) == 3  # the best rank a click was shown at
    assert click_rank(row, ["3"]) == 1  # "3" is not 3: a click outside the tapped hits still found something
