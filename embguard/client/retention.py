"""Retention of the tap and feedback collections: bounded by age and rows, never losing pending labels.

A training set that is being built or awaits approval *pins* the feedback rows it uses (and the tapped
queries they refer to) by writing ``state/training/pinned/<name>.json``; pruning skips pinned rows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embguard.config.statedir import write_json
from embguard.errors import PinError
from embguard.milvus.filters import literal
from embguard.milvus.milvus import Milvus
from embguard.milvus.names import FEEDBACK_COLLECTION, TAP_COLLECTION


@dataclass(frozen=True)
class PruneResult:
    tap_deleted: int
    feedback_deleted: int
    tap_collections: tuple[str, ...]
    pinned_feedback: int


class Pins:
    """Feedback ids (and their query ids) that pruning must keep."""

    def __init__(self, state_dir: Path):
        self.dir = Path(state_dir) / "training" / "pinned"

    def pin(self, name: str, feedback_ids: list[str], query_ids: list[str]) -> Path:
        pin = {"feedback_ids": sorted(set(feedback_ids)), "query_ids": sorted(set(query_ids)), "pinned_at": time.time()}
        return write_json(self.dir / f"{name}.json", pin, indent=None)

    def release(self, name: str) -> None:
        (self.dir / f"{name}.json").unlink(missing_ok=True)

    def ids(self) -> tuple[set[str], set[str]]:
        fb: set[str] = set()
        q: set[str] = set()
        if self.dir.is_dir():
            for p in self.dir.glob("*.json"):
                try:
                    d = json.loads(p.read_text())
                    fb.update(str(i) for i in d.get("feedback_ids", []))
                    q.update(str(i) for i in d.get("query_ids", []))
                except (OSError, ValueError, TypeError, AttributeError) as exc:  # UnicodeDecodeError: ValueError
                    # Pruning without knowing what is pinned could delete a pending training set's labels.
                    raise PinError(
                        f"training pin {p} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); pruning is "
                        "stopped until it is fixed: restore it, or remove it if its training set is no longer "
                        "pending (`embguard models list`)"
                    ) from None
        return fb, q


def _not_in(field: str, values: set[str]) -> str:
    if not values:
        return ""
    return f" and {field} not in [{', '.join(literal(v) for v in sorted(values))}]"


def _cutoff_for_cap(milvus: Milvus, collection: str, max_rows: int) -> int | None:
    ts = np.fromiter((r["ts_ms"] for b in milvus.iterate(collection, ["ts_ms"]) for r in b), dtype=np.int64)
    if len(ts) <= max_rows:
        return None
    # Keep the newest max_rows: delete everything strictly older than the max_rows-th newest timestamp.
    return int(np.partition(ts, len(ts) - max_rows)[len(ts) - max_rows])


def prune(
    milvus: Milvus,
    pins: Pins,
    *,
    tap_max_age_s: int,
    tap_max_rows: int,
    feedback_max_age_s: int,
    now_ms: int | None = None,
) -> PruneResult:
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    pinned_fb, pinned_q = pins.ids()
    taps = tuple(c for c in milvus.list_collections() if c == TAP_COLLECTION or c.startswith(TAP_COLLECTION + "_d"))
    tap_deleted = 0
    keep_q = _not_in("query_id", pinned_q)
    for coll in taps:
        before = milvus.count(coll)
        milvus.delete(coll, filter=f"ts_ms < {now_ms - tap_max_age_s * 1000}{keep_q}")
        cutoff = _cutoff_for_cap(milvus, coll, tap_max_rows)
        if cutoff is not None:
            milvus.delete(coll, filter=f"ts_ms < {cutoff}{keep_q}")
        milvus.flush(coll)
        tap_deleted += before - milvus.count(coll)
    fb_deleted = 0
    if milvus.has_collection(FEEDBACK_COLLECTION):
        before = milvus.count(FEEDBACK_COLLECTION)
        milvus.delete(
            FEEDBACK_COLLECTION,
            filter=f"ts_ms < {now_ms - feedback_max_age_s * 1000}{_not_in('feedback_id', pinned_fb)}",
        )
        milvus.flush(FEEDBACK_COLLECTION)
        fb_deleted = before - milvus.count(FEEDBACK_COLLECTION)
    return PruneResult(tap_deleted, fb_deleted, taps, len(pinned_fb))
