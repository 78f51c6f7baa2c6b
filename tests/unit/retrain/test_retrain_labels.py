import json

import pytest

from retrain import FeedbackRecord, LabelValidationError, build_pairs, validate_labels


def _line(**kw: object) -> str:
    return json.dumps(kw)


def test_valid_lines_become_records_and_blank_lines_are_skipped() -> None:
    lines = [_line(query="open a file", doc_id=7), "", _line(query="q2", doc_id="a", signal="negative", weight=2)]
    records, errors = validate_labels(lines)
    assert errors == []
    assert records == [
        FeedbackRecord("open a file", 7, "positive", 1.0, source="label"),
        FeedbackRecord("q2", "a", "negative", 2.0, source="label"),
    ]


def test_an_annotators_label_outranks_a_click_on_the_same_pair() -> None:
    clicked = FeedbackRecord("open a file", 7, "click", rank=6, ts_ms=100)  # a user's click, after the label
    labels, _ = validate_labels([_line(query="open a file", doc_id=7, signal="negative")])
    tp = build_pairs([clicked, *labels], {7: "open(path)"})
    assert tp.pairs == () and tp.negatives == {"open a file": frozenset({7})}


def test_bad_lines_are_reported_with_line_numbers_and_nothing_is_returned() -> None:
    lines = [
        _line(query="fine", doc_id=1),  # 1 ok
        "{not json",  # 2
        _line(query="", doc_id=1),  # 3 empty query
        _line(query="x", doc_id=1, signal="meh"),  # 4 bad signal
        _line(query="x", doc_id=1, weight=-1),  # 5 bad weight
        _line(query="x", doc_id=True),  # 6 bool id
        _line(query="x", doc_id=1, extra=1),  # 7 unknown field
        "[1, 2]",  # 8 not an object
        _line(query="also fine", doc_id=2),  # 9 ok
    ]
    records, errors = validate_labels(lines)
    assert records == []  # all-or-nothing: the two good lines are NOT returned
    assert [n for n, _ in errors] == [2, 3, 4, 5, 6, 7, 8]
    msgs = dict(errors)
    assert "signal" in msgs[4] and "meh" in msgs[4]
    assert "weight" in msgs[5]


def test_empty_input_is_an_error() -> None:
    records, errors = validate_labels(["", "  "])
    assert records == [] and errors and "empty" in errors[0][1]


def test_error_type_names_every_line() -> None:
    _, errors = validate_labels(["nope", _line(query="q", doc_id=None)])
    exc = LabelValidationError(errors)
    assert "line 1" in str(exc) and "line 2" in str(exc) and exc.errors == errors
    with pytest.raises(ValueError):
        raise exc
