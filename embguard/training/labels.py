"""Labels from annotators: ``embguard label export`` hands them the queries worth labelling (see
:mod:`embguard.training.label_selection`), ``embguard label import`` loads their answers as feedback, all lines or none.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import retrain
from embguard.client.tap import LABEL_QUERY_PREFIX, new_id, now_ms, text_hash
from embguard.config.bounds import weight_problem
from embguard.config.settings import CollectionSettings, Settings
from embguard.errors import EmbguardError, InvalidLabels, LabelError
from embguard.milvus.filters import literal, surrogate_at
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION
from embguard.training.candidates import QUERY_TEXT_MAX
from embguard.training.evalcorpus import doc_texts


def _doc_id(stored: str) -> Any:
    try:  # feedback rows keep the id as JSON text (an int and a str id stay apart)
        return json.loads(stored)
    except (TypeError, ValueError):
        return stored


def click_rank(row: dict[str, Any], clicked: list[Any]) -> int:
    """The best 1-based rank a tapped query's clicks were shown at; 0 without a click, and 1 for a click on a
    document outside the tapped hits (the click says the user found it: not a miss)."""
    shown = list(row.get("top_ids") or [])
    ranks = [shown.index(d) + 1 for d in clicked if d in shown]
    return min(ranks) if ranks else (1 if clicked else 0)


def export_labels(
    settings: Settings,
    milvus: Milvus,
    spec: CollectionSettings,
    out: Path,
    budget: int,
    *,
    since_ms: int = 0,
    seed: int = 0,
    strategy: str = "auto",
) -> int:
    """Write the queries the active-learning strategy picks, with their current top-5 passages, to JSONL.

    ``strategy`` (embguard.training.label_selection): ``random``, ``drift`` (aimed at what the monitors flag),
    ``misses`` (the queries the live model failed first) or ``auto`` (drift-aimed while the daemon's last check
    found drift sustained, otherwise the misses)."""
    from embguard.client.tap import read_tap, tap_collection_name

    served = milvus.resolve(spec.name)
    tap = tap_collection_name(milvus.vector_dimension(served, spec.vector_field))
    rows = read_tap(
        milvus,
        tap,
        f'alias == {literal(spec.name)} and text != "" and ts_ms >= {int(since_ms)}',
        ["query_id", "text", "top_ids", "top_scores", "vector"],
    )
    # One row per distinct text, in a fixed order: the same tap and seed give the same picks.
    rows = sorted({text_hash(r["text"]): r for r in rows}.values(), key=lambda r: str(r["query_id"]))
    if not rows:
        raise LabelError(
            f"no tapped queries with text for {spec.name}: annotation needs query text, so set "
            "sampling.store_query_text = true (if your privacy policy allows) and let traffic flow"
        )
    from embguard.training.label_selection import pick

    clicks: dict[str, list[Any]] = {}
    if milvus.has_collection(FEEDBACK_COLLECTION):
        for r in milvus.query(
            FEEDBACK_COLLECTION,
            filter=f'alias == {literal(spec.name)} and signal == "click"',
            output_fields=["query_id", "doc_id"],
        ):
            clicks.setdefault(str(r["query_id"]), []).append(_doc_id(r["doc_id"]))
    picked = pick(
        settings,
        spec,
        strategy,
        np.array([r["vector"] for r in rows], dtype=np.float32),
        [r["top_scores"] or [] for r in rows],
        np.array([str(r["query_id"]) in clicks for r in rows]),
        min(budget, len(rows)),
        seed,
        np.array([click_rank(r, clicks.get(str(r["query_id"]), [])) for r in rows], dtype=np.int64),
    )
    tops = {int(i): list(rows[int(i)]["top_ids"] or [])[:5] for i in picked}
    texts = doc_texts(milvus, served, spec, [d for top in tops.values() for d in top])  # one read, not one a pick
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w") as fh:
        for i in picked:
            r, top = rows[int(i)], tops[int(i)]
            fh.write(
                json.dumps(
                    {
                        "query": r["text"],
                        "query_id": r["query_id"],
                        "candidates": [{"doc_id": d, "text": texts.get(d, "")[:500]} for d in top],
                        "doc_id": None,
                        "signal": "positive",
                    }
                )
                + "\n"
            )
    return len(picked)


def _line_problems(n: int, obj: dict[str, object]) -> list[tuple[int, str]]:
    """What the feedback collection cannot store from one label line: a weight float32 cannot hold (1e300 would
    be stored as inf and later skipped) and text that is not UTF-8 (a lone surrogate)."""
    out: list[tuple[int, str]] = []
    for key in ("query", "doc_id", "signal"):
        at = surrogate_at(obj.get(key))
        if at is not None:
            out.append(
                (
                    n,
                    f"{key!r}{at} is not valid UTF-8 text (a lone surrogate, e.g. a broken '\\ud800' escape); "
                    "fix the text or drop the character",
                )
            )
    weight = obj.get("weight", 1.0)
    problem = weight_problem(weight)
    if problem is not None:
        out.append((n, f"'weight': {problem}"))
    return out


def import_labels(settings: Settings, milvus: Milvus, spec: CollectionSettings, path: Path) -> int:
    """Validate an annotator file and load it as feedback. Any bad line: nothing is imported."""
    from embguard.client.tap import ensure_feedback_collection

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidLabels(f"{path}: not UTF-8 text (byte {exc.start}); nothing imported. Save it as UTF-8") from None
    cleaned = []
    limits: list[tuple[int, str]] = []  # what the feedback collection cannot store, caught before any insert
    for n, line in enumerate(lines, start=1):  # exported helper fields are allowed back; the validator sees labels
        try:
            obj = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            cleaned.append(line)
            continue
        if isinstance(obj, dict) and isinstance(obj.get("query"), str) and len(obj["query"]) > QUERY_TEXT_MAX:
            limits.append((n, f"query is {len(obj['query'])} characters, more than {QUERY_TEXT_MAX}; shorten it"))
        if isinstance(obj, dict):
            limits += _line_problems(n, obj)
            obj = {k: v for k, v in obj.items() if k not in ("query_id", "candidates")}
            cleaned.append(json.dumps(obj))
        else:
            cleaned.append(line)
    records, errors = retrain.validate_labels(cleaned)
    flagged = {n for n, _ in errors}  # one message a line: the validator's, else embguard's storage limits
    errors = sorted(errors + [(n, msg) for n, msg in limits if n not in flagged])
    if errors:
        shown = "; ".join(f"line {n}: {msg}" for n, msg in errors[:10])
        more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
        raise InvalidLabels(f"{path}: {len(errors)} bad line(s), nothing imported: {shown}{more}")
    served = milvus.resolve(spec.name)
    known = doc_texts(milvus, served, spec, [r.doc_id for r in records])
    unknown = sorted({r.doc_id for r in records if r.doc_id not in known}, key=str)
    if unknown:
        raise InvalidLabels(
            f"{path}: doc_id(s) {unknown[:10]} are not in {served}; nothing imported. Fix the "
            "ids (they must be the collection's primary keys)"
        )
    ensure_feedback_collection(milvus)
    model_id = milvus.properties(served).get(MODEL_ID_PROPERTY, "")
    rows = [
        {
            "feedback_id": new_id(),
            "query_id": f"{LABEL_QUERY_PREFIX}{text_hash(r.query)[:24]}",
            "doc_id": json.dumps(r.doc_id),
            "alias": spec.name,
            "collection": served,
            "model_id": model_id,
            "signal": r.signal,
            "weight": float(r.weight),
            "ts_ms": now_ms(),
            "query_text": r.query,
            "_v": [1.0, 0.0],
        }
        for r in records
    ]
    done: list[str] = []
    try:
        for i in range(0, len(rows), 1000):
            milvus.insert(FEEDBACK_COLLECTION, rows[i : i + 1000])
            done += [str(r["feedback_id"]) for r in rows[i : i + 1000]]
        milvus.flush(FEEDBACK_COLLECTION)
    except EmbguardError:
        if done:  # Milvus has no transactions: take back what went in so the import stays all-or-nothing
            milvus.delete(FEEDBACK_COLLECTION, ids=done)
        raise
    return len(rows)
