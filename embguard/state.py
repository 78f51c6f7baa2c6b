"""The state directory: its layout, and the one way anything under it is written.

Every file embguard keeps between runs lives under ``state.dir``::

    state.dir/
      daemon.pid             the running daemon (pid, start time)
      alerts.json            alert de-duplication and open incidents
      checks/<alias>.json    the latest check report per collection (read by `embguard status`)
      references/<alias>/    reference windows (embguard.references)
      swaps/<alias>.json     swap state machines (embguard.swap)
      training/pinned/       feedback pinned for candidates (embguard.retention)
      lite.pid, lite.log     the Milvus Lite server this directory started (embguard.lite)

Writes are atomic and durable: the bytes go to a temporary file in the same directory, are fsynced, and are
renamed over the target, so a crash (or ``kill -9``) leaves the old file or the new one, never half of either.
Readers of JSON get :class:`StateFileError` naming the file and the fix when it is unreadable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from .errors import StateFileError
from .reports import CheckReport


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

    # --- typed files -----------------------------------------------------------------------------------------

    def write_check_report(self, report: CheckReport) -> Path:
        return write_json(self.check_report(report.collection), report.to_json())

    def read_check_report(self, alias: str) -> CheckReport | None:
        """The daemon's latest report for ``alias``; ``None`` before its first check."""
        path = self.check_report(alias)
        data = read_json(path)
        if data is None:
            return None
        try:
            if not isinstance(data, dict) or not isinstance(data.get("checked_at"), (int, float)):
                raise TypeError("not a check report")
            return CheckReport.from_json(data)
        except (TypeError, ValueError) as exc:
            raise StateFileError(
                f"last check report {path} is unreadable ({exc}); the daemon rewrites it after its "
                "next check, or remove it"
            ) from None

    def write_daemon_pid(self, pid: int) -> Path:
        return write_atomic(self.daemon_pid, str(pid))

    def read_daemon_pid(self) -> int | None:
        """The pid the daemon recorded; ``None`` if none is recorded or the file is unreadable."""
        try:
            pid = int(self.daemon_pid.read_text().strip() or 0)
        except (OSError, ValueError):  # a half-written or stray pid file says nothing about a daemon
            return None
        return pid if pid > 0 else None
