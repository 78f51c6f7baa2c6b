"""Validation of annotator label files (JSONL). All-or-nothing: any bad line means no records at all."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable

from .pairs import SIGNALS, FeedbackRecord

_FIELDS = {"query", "doc_id", "signal", "weight"}


def _check(obj: object) -> tuple[FeedbackRecord | None, str | None]:
    if not isinstance(obj, dict):
        return None, f"expected a JSON object, got {type(obj).__name__}"
    unknown = set(obj) - _FIELDS
    if unknown:
        return None, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}"
    query = obj.get("query")
    if not isinstance(query, str) or not query.strip():
        return None, f"'query' must be a non-empty string, got {query!r}"
    doc_id = obj.get("doc_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (int, str)) or doc_id == "":
        return None, f"'doc_id' must be an integer or non-empty string, got {doc_id!r}"
    signal = obj.get("signal", "positive")
    if signal not in SIGNALS:
        return None, f"'signal' is {signal!r}; use one of {', '.join(SIGNALS)}"
    weight = obj.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
        return None, f"'weight' must be a positive finite number, got {weight!r}"
    # An annotator's answer: it outranks users' feedback and clicks on the same pair (retrain.pairs).
    rec = FeedbackRecord(query=query.strip(), doc_id=doc_id, signal=signal, weight=float(weight), source="label")
    return rec, None


def validate_labels(lines: Iterable[str]) -> tuple[list[FeedbackRecord], list[tuple[int, str]]]:
    """Parse JSONL label lines ``{"query", "doc_id", "signal"?, "weight"?}``.

    Returns ``(records, errors)`` where errors are ``(1-based line number, message)``. If there is any
    error, ``records`` is empty: callers import nothing from a file that is partly wrong. Blank lines are
    ignored; an empty file is an error (nothing to import is almost always a wrong path).
    """
    records: list[FeedbackRecord] = []
    errors: list[tuple[int, str]] = []
    seen_any = False
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        seen_any = True
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append((n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        rec, err = _check(obj)
        if err is not None:
            errors.append((n, err))
        else:
            records.append(rec)  # type: ignore[arg-type]
    if not seen_any:
        errors.append((0, "no label lines found; the file is empty"))
    return ([] if errors else records), errors
