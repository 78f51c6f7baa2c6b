"""Reference windows: frozen samples that live windows are compared with, stored durably and versioned.

Layout under the state directory::

    references/<alias>/<kind>/v0001.npz     vectors, ids, timestamps, top-k ids/scores
    references/<alias>/<kind>/v0001.json    model id, window range, size, capture time

Capturing again writes ``v0002`` and keeps ``v0001``. A write goes to a temporary file that is renamed into
place, so a crash never leaves a half-written reference that looks valid. A reference made by one model
is never compared with vectors from another: ``check_model`` raises ``ReferenceMismatch``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embguard.checks.windows import Window
from embguard.client.tap import MAX_VECTOR_VALUE, usable_rows
from embguard.config.statedir import write_atomic
from embguard.errors import ReferenceCorrupt, ReferenceMismatch, ReferenceMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReferenceInfo:
    alias: str
    kind: str
    version: int
    model_id: str
    size: int
    captured_at: float
    start_ms: int
    end_ms: int
    path: Path
    excluded: int = 0  # rows of the captured window left out: their vector was not a usable embedding

    @property
    def age_s(self) -> float:
        return time.time() - self.captured_at


_VERSION = re.compile(r"^v(\d{4,})\.json$")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ReferenceStore:
    def __init__(self, state_dir: Path):
        self.root = Path(state_dir) / "references"

    def _dir(self, alias: str, kind: str) -> Path:
        for what, name in (("alias", alias), ("kind", kind)):
            # Names become directories: a '/' or '..' would read or write outside the state directory.
            if not _NAME.fullmatch(name):
                raise ReferenceMissing(
                    f"{what} {name!r} is not a collection name (letters, digits and '_', starting with a letter or '_')"
                )
        return self.root / alias / kind

    def list(self, alias: str | None = None, kind: str | None = None) -> list[ReferenceInfo]:
        out: list[ReferenceInfo] = []
        if not self.root.is_dir():
            return out
        for a in sorted(p for p in self.root.iterdir() if p.is_dir()):
            if alias is not None and a.name != alias:
                continue
            for k in sorted(p for p in a.iterdir() if p.is_dir()):
                if kind is not None and k.name != kind:
                    continue
                for meta in sorted(k.iterdir()):
                    m = _VERSION.match(meta.name)
                    if not m or not meta.with_suffix(".npz").is_file():
                        continue
                    try:
                        d = json.loads(meta.read_text())
                        out.append(
                            ReferenceInfo(
                                a.name,
                                k.name,
                                int(m.group(1)),
                                str(d["model_id"]),
                                int(d["size"]),
                                float(d["captured_at"]),
                                int(d["start_ms"]),
                                int(d["end_ms"]),
                                meta.with_suffix(".npz"),
                                int(d.get("excluded_rows", 0)),
                            )
                        )
                    except (OSError, ValueError, KeyError, TypeError) as exc:  # UnicodeDecodeError: ValueError
                        raise ReferenceCorrupt(
                            f"reference {meta} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); restore it "
                            f"from a backup, or remove it and {meta.with_suffix('.npz').name} and capture a new "
                            f"baseline with `embguard baseline capture {a.name}`"
                        ) from None
        return out

    def capture(self, alias: str, window: Window, min_size: int = 1) -> ReferenceInfo:
        """Freeze ``window`` as the newest reference for ``alias``; earlier versions are kept.

        Rows whose vector is not a usable embedding (NaN/inf, a value beyond +-MAX_VECTOR_VALUE, all zeros) never
        enter a reference: the windows read from Milvus leave them out already (``meta["skipped_rows"]``), and any
        still here are dropped and logged. Their count is kept as ``ReferenceInfo.excluded``."""
        window, dropped = _usable_window(window)
        if dropped:
            log.warning(
                "reference for %s (%s): left out %d row(s) whose vector is unusable (NaN/inf, a value beyond +-%g, "
                "or all zeros)",
                alias,
                window.kind,
                dropped,
                MAX_VECTOR_VALUE,
            )
        excluded = int(window.meta.get("skipped_rows", 0) or 0) + dropped
        if window.size < min_size:
            left_out = f" after leaving out {excluded} row(s) with unusable vectors" if excluded else ""
            raise ReferenceMissing(
                f"the {window.kind} window for {alias!r} holds {window.size} rows{left_out}; a reference "
                f"needs at least {min_size} (let more traffic be tapped, or widen the window)"
            )
        d = self._dir(alias, window.kind)
        d.mkdir(parents=True, exist_ok=True)
        existing = self.list(alias, window.kind)
        version = (existing[-1].version + 1) if existing else 1
        npz = d / f"v{version:04d}.npz"
        top_ids = np.array([json.dumps(list(t)) for t in window.top_ids], dtype=object) if window.top_ids else None
        arrays: dict[str, Any] = {
            "vectors": window.vectors,
            "timestamps_ms": window.timestamps_ms,
            "ids": np.array([json.dumps(i) for i in window.ids]),
        }
        if window.top_scores is not None:
            arrays["top_scores"] = window.top_scores
        if top_ids is not None:
            arrays["top_ids"] = np.array(top_ids, dtype=str)
        write_atomic(npz, lambda fh: np.savez_compressed(fh, **arrays))
        meta = {
            "model_id": window.model_id,
            "size": window.size,
            "captured_at": time.time(),
            "start_ms": window.start_ms,
            "end_ms": window.end_ms,
            "collection": window.collection,
            "kind": window.kind,
            "excluded_rows": excluded,
        }
        # The .json lands last: a version exists only once both files do.
        write_atomic(d / f"v{version:04d}.json", json.dumps(meta, indent=2))
        return self.list(alias, window.kind)[-1]

    def latest(self, alias: str, kind: str = "queries") -> ReferenceInfo:
        refs = self.list(alias, kind)
        if not refs:
            raise ReferenceMissing(
                f"no {kind} reference for {alias!r} in {self.root}; capture one with "
                f"`embguard baseline capture {alias} --kind {kind}`"
            )
        return refs[-1]

    def load(self, info: ReferenceInfo) -> Window:
        try:
            return self._load(info)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise ReferenceCorrupt(
                f"reference {info.path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); remove it and "
                f"{info.path.with_suffix('.json').name} and capture a new baseline with "
                f"`embguard baseline capture {info.alias}`"
            ) from None

    def _load(self, info: ReferenceInfo) -> Window:
        with np.load(info.path, allow_pickle=False) as z:
            top_ids = tuple(tuple(json.loads(t)) for t in z["top_ids"]) if "top_ids" in z else ()
            return Window(
                kind=info.kind,
                collection=info.alias,
                model_id=info.model_id,
                start_ms=info.start_ms,
                end_ms=info.end_ms,
                ids=tuple(json.loads(i) for i in z["ids"]),
                vectors=z["vectors"],
                timestamps_ms=z["timestamps_ms"],
                top_ids=top_ids,
                top_scores=z["top_scores"] if "top_scores" in z else None,
                meta={"reference_version": info.version},
            )


def _usable_window(window: Window) -> tuple[Window, int]:
    """``window`` without the rows whose vector is not a usable embedding, and how many those were."""
    if window.size == 0 or window.vectors.ndim != 2:
        return window, 0
    keep = usable_rows(window.vectors)
    if keep.all():
        return window, 0
    idx = np.flatnonzero(keep)
    return (
        dataclasses.replace(
            window,
            ids=tuple(window.ids[i] for i in idx),
            vectors=window.vectors[idx],
            timestamps_ms=window.timestamps_ms[idx],
            texts=tuple(window.texts[i] for i in idx) if window.texts else (),
            top_ids=tuple(window.top_ids[i] for i in idx) if window.top_ids else (),
            top_scores=None if window.top_scores is None else window.top_scores[idx],
        ),
        int(window.size - idx.size),
    )


def check_model(reference: ReferenceInfo | Window, model_id: str, alias: str) -> None:
    """Refuse to compare vectors of ``model_id`` with a reference made by another model."""
    if reference.model_id != model_id:
        version = f" v{reference.version:04d}" if isinstance(reference, ReferenceInfo) else ""
        raise ReferenceMismatch(
            f"reference{version} for {alias!r} was made by model {reference.model_id!r}, but the current vectors "
            f"come from {model_id!r}; vectors of different models are not comparable. Capture a reference for "
            f"the new model with `embguard baseline capture {alias}`"
        )
