"""The state directory: its layout, and the one way anything under it is written.

Every file embguard keeps between runs lives under ``state.dir``::

    state.dir/
      daemon.pid             the running daemon (pid, start time)
      alerts.json            alert de-duplication and open incidents
      checks/<alias>.json    the latest check report per collection (read by `embguard status`)
      drift/<alias>.json     the latest check that tested a window: the drift decision and the monitors'
                             streaks, restored at start so an open incident survives a restart
      references/<alias>/    reference windows (embguard.references)
      swaps/<alias>.json     swap state machines (embguard.swap)
      training/pinned/       feedback pinned for candidates (embguard.retention)
      lite.pid, lite.log     the Milvus Lite server this directory started (embguard.lite)

Writes are atomic and durable: the bytes go to a temporary file in the same directory, are fsynced, and are
renamed over the target, so a crash (or ``kill -9``) leaves the old file or the new one, never half of either.
Readers of JSON get :class:`StateFileError` naming the file and the fix when it is unreadable.

A directory that cannot be written (full, read-only, wrong owner) must not take the daemon down:
:class:`StateHealth` runs its writes, logs one line naming the directory, the errno and the fix when writing
starts failing (and one when it works again), and reports the condition to the metrics and ``/readyz``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

from embguard.errors import StateFileError

log = logging.getLogger("embguard.daemon")
T = TypeVar("T")


def write_atomic(path: Path, data: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Replace ``path`` with ``data`` (bytes, text as UTF-8, or a function that writes to a binary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def write_json(path: Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Atomically write ``obj`` as JSON (values JSON cannot hold are written with ``str``)."""
    return write_atomic(path, json.dumps(obj, indent=indent, default=str))


def read_json(path: Path) -> Any:
    """The JSON in ``path``; ``None`` when the file does not exist."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise StateFileError(
            f"state file {path} is unreadable ({type(exc).__name__}: {str(exc)[:200]}); restore "
            "it from a backup or remove it (embguard rebuilds what it can)"
        ) from None


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is; not every filesystem allows this.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class StateDir:
    """Paths under one state directory; every module asks here instead of joining names itself."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def daemon_pid(self) -> Path:
        return self.root / "daemon.pid"

    @property
    def alerts(self) -> Path:
        return self.root / "alerts.json"

    def check_report(self, alias: str) -> Path:
        return self.root / "checks" / f"{alias}.json"

    def evidence(self, alias: str) -> Path:
        return self.root / "drift" / f"{alias}.json"

    @property
    def write_probe(self) -> Path:
        return self.root / ".write-probe"

    @property
    def references(self) -> Path:
        return self.root / "references"

    @property
    def swaps(self) -> Path:
        return self.root / "swaps"

    @property
    def pinned(self) -> Path:
        return self.root / "training" / "pinned"

    @property
    def demo(self) -> Path:
        return self.root / "demo"

    def write_daemon_pid(self, pid: int) -> Path:
        return write_atomic(self.daemon_pid, str(pid))

    def read_daemon_pid(self) -> int | None:
        """The pid the daemon recorded; ``None`` if none is recorded or the file is unreadable."""
        try:
            pid = int(self.daemon_pid.read_text().strip() or 0)
        except (OSError, ValueError):  # a half-written or stray pid file says nothing about a daemon
            return None
        return pid if pid > 0 else None


class StateHealth:
    """Runs the daemon's writes under the state directory and remembers whether the last one failed.

    ``on_change(writable)`` is called when writing starts failing or works again (the daemon sets
    ``embguard_state_writable`` and ``/readyz`` from it); ``on_error()`` after every failed write."""

    def __init__(
        self,
        state: StateDir,
        on_change: Callable[[bool], None] | None = None,
        on_error: Callable[[], None] | None = None,
    ):
        self.state = state
        self._on_change = on_change
        self._on_error = on_error
        self._lock = threading.Lock()
        self.problem = ""  # empty while writable: otherwise what failed, with the errno

    @property
    def writable(self) -> bool:
        return not self.problem

    def write(self, what: str, fn: Callable[[], T]) -> T | None:
        """``fn()`` (a write of ``what``), or ``None`` when it raised ``OSError`` (logged once, counted)."""
        try:
            out = fn()
        except OSError as exc:
            self._failed(what, exc)
            return None
        self._ok()
        return out

    def probe(self, force: bool = False) -> bool:
        """Whether the directory takes a write now (tried only while writes fail, so recovery is noticed
        even when nothing else is written; ``force``: try anyway)."""
        if self.writable and not force:
            return True
        probe = self.state.write_probe

        def attempt() -> None:
            write_atomic(probe, b"")
            probe.unlink(missing_ok=True)

        self.write("a write probe", attempt)
        return self.writable

    def _failed(self, what: str, exc: OSError) -> None:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        problem = f"cannot write {what} under {self.state.root}: [{code}] {exc.strerror or exc}"
        with self._lock:
            first = not self.problem
            self.problem = problem
        if self._on_error is not None:
            self._on_error()
        if first:
            log.error(
                "state directory %s is not writable (%s while writing %s: %s); embguard keeps serving /metrics "
                "and checking, but check results, open incidents and alert state are not saved until it is; "
                "free disk space, remount it read-write or fix its owner and permissions (or point state.dir / "
                "EMBGUARD_STATE__DIR at a writable directory)",
                self.state.root,
                code,
                what,
                exc.strerror or exc,
            )
            if self._on_change is not None:
                self._on_change(False)
        else:
            log.debug("%s", problem)

    def _ok(self) -> None:
        with self._lock:
            was = self.problem
            self.problem = ""
        if was:
            log.info("state directory %s is writable again", self.state.root)
            if self._on_change is not None:
                self._on_change(True)
