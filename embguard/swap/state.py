"""A swap's durable record: its phase, progress, verification and history, and the lock that serialises swaps.

Stored as ``state.dir/swaps/<alias>.json`` (written atomically by :mod:`embguard.config.statedir`); records written by
earlier versions (history entries as plain dicts with ``from``/``to`` keys, ``verify`` as a dict) still load.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from embguard.config.statedir import StateDir, write_json
from embguard.errors import SwapError, SwapLocked

PHASES = ("planned", "created", "dual_write", "backfilled", "reconciled", "verified", "switched", "done")


@dataclass(frozen=True)
class Verification:
    """What verify found before the switch; ``ok`` only when ``problems`` is empty."""

    ok: bool = False
    problems: tuple[str, ...] = ()
    source_count: int = 0
    target_count: int = 0
    shadow_queries: int = 0
    top10_overlap: float = math.nan
    source_top1: float = math.nan
    candidate_top1: float = math.nan

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Verification | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["problems"] = tuple(kw.get("problems", ()))
        return cls(**kw)


@dataclass(frozen=True)
class SwapEvent:
    """One entry of an alias's history: a switch, a rollback or an abort."""

    action: str  # "switch" | "rollback" | "abort"
    at: float
    source: str = ""  # the collection served before (switch, rollback)
    target: str = ""  # the collection served after; for an abort, the collection abandoned
    source_model: str = ""
    target_model: str = ""
    phase: str = ""  # abort: the phase it was abandoned at

    # On disk: the keys embguard 0.1 wrote, so either version reads the other's history.
    _KEYS = {"source": "from", "target": "to", "source_model": "from_model", "target_model": "to_model"}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.action == "abort":
            return {"action": "abort", "at": self.at, "target": self.target, "phase": self.phase}
        return {self._KEYS.get(k, k): v for k, v in d.items() if k != "phase"}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> SwapEvent:
        back = {v: k for k, v in cls._KEYS.items()}
        if d.get("action") == "abort":
            return cls(
                action="abort", at=float(d.get("at", 0)), target=str(d.get("target", "")), phase=str(d.get("phase", ""))
            )
        kw = {back.get(k, k): v for k, v in d.items() if back.get(k, k) in {f.name for f in fields(cls)}}
        return cls(**kw)


@dataclass
class SwapState:
    alias: str
    source: str
    target: str
    source_model_id: str
    candidate_version: str
    candidate_model_id: str
    phase: str = "planned"
    cursor: Any = None
    ranges: list[dict[str, Any]] = field(default_factory=list)  # swap.engine = "ray": per-range checkpoints
    done: int = 0
    total: int = 0
    rate: float = 0.0
    started_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    verify: Verification | None = None
    history: list[SwapEvent] = field(default_factory=list)
    error: str = ""

    def reached(self, phase: str) -> bool:
        return self.phase in PHASES and PHASES.index(self.phase) >= PHASES.index(phase)

    def switches(self) -> list[SwapEvent]:
        return [h for h in self.history if h.action in ("switch", "rollback")]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["verify"] = asdict(self.verify) if self.verify else {}
        d["history"] = [h.to_json() for h in self.history]
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SwapState:
        d = dict(data)
        if not isinstance(d.get("phase"), str) or not isinstance(d.get("history", []), list):
            raise TypeError("phase or history has the wrong type")
        d["verify"] = Verification.from_json(d.get("verify"))
        d["history"] = [SwapEvent.from_json(h) for h in d.get("history", [])]
        return cls(**d)


class SwapStore:
    def __init__(self, state_dir: Path):
        self.dir = StateDir(state_dir).swaps
        self.locks = Path(state_dir) / "locks"

    def path(self, alias: str) -> Path:
        return self.dir / f"{alias}.json"

    def load(self, alias: str) -> SwapState | None:
        p = self.path(alias)
        if not p.is_file():
            return None
        try:
            return SwapState.from_json(json.loads(p.read_text()))
        except (OSError, ValueError, TypeError, AttributeError) as exc:  # UnicodeDecodeError is a ValueError
            raise SwapError(
                f"swap state {p} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); restore it "
                "from a backup, or remove it if no swap of this alias is in progress (check "
                "`embguard status` for what the alias serves)"
            ) from None

    def save(self, state: SwapState) -> None:
        state.updated_at = time.time()
        write_json(self.path(state.alias), state.to_json(), indent=None)

    def all(self) -> list[SwapState]:
        return [s for p in sorted(self.dir.glob("*.json")) if (s := self.load(p.stem))]

    @contextlib.contextmanager
    def lock(self, alias: str, what: str) -> Iterator[None]:
        """Hold ``state/locks/swap-<alias>.lock`` for the block, or raise ``SwapLocked`` naming its holder.

        The lock is an ``flock`` on the file, held for the whole block: the kernel drops it when its holder
        exits (``kill -9`` included), so there is no stale lock to take over and no takeover to race. The file
        is never removed (removing it would let two processes lock two different inodes); the pid/what the
        holder writes inside (and leaves after release) only words the refusal.
        """
        self.locks.mkdir(parents=True, exist_ok=True)
        path = self.locks / f"swap-{alias}.lock"
        me = {"pid": os.getpid(), "host": socket.gethostname(), "what": what, "since": time.time()}
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(path)
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0) or 0))
                raise SwapLocked(
                    f"a swap of {alias!r} is already running: pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} ({holder.get('what', '?')}) since {since}; wait for it to finish "
                    f"(the lock {path} is released the moment that process exits)"
                ) from None
            # Overwrite, then cut: a reader never sees an empty file, at worst a moment of trailing bytes.
            data = json.dumps(me).encode()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _lock_holder(path: Path) -> dict[str, Any]:
    """What the holder of a swap lock wrote (it writes right after locking, so retry a torn read briefly)."""
    for _ in range(20):
        try:
            holder = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        if isinstance(holder, dict) and holder:
            return holder
        time.sleep(0.005)
    return {}
