"""The local Milvus Lite server: the embedded default, run as a loopback gRPC server.

Only one process may open a Lite data directory (it holds an ``flock`` on ``DATA_DIR/LOCK``), so the
application and the sidecar never open it themselves: ``embguard lite start`` runs
``python -m milvus_lite server`` in its own session, both sides connect to ``http://127.0.0.1:PORT``, and a
pid file in the state directory records what was started so ``stop`` and ``status`` can find it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from embguard.config.statedir import write_json
from embguard.errors import LiteServerError

if TYPE_CHECKING:
    from embguard.config.settings import Settings

PID_FILE = "lite-server.json"
LOG_FILE = "lite-server.log"


@dataclass(frozen=True)
class LiteStatus:
    running: bool
    pid: int | None
    uri: str
    data_dir: str
    started_at: float | None = None
    log: str | None = None

    def describe(self) -> str:
        if not self.running:
            return f"Milvus Lite: not running (data dir {self.data_dir}, would serve {self.uri})"
        return f"Milvus Lite: running, pid {self.pid}, {self.uri}, data dir {self.data_dir}, log {self.log}"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (an exited child of this process is reaped, a zombie is not alive)."""
    # Reap our own exited child first: until it is reaped, its data-dir lock may still be held.
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _is_lite(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the pid file
    return b"milvus_lite" in cmd or b"milvus-lite" in cmd


def data_dir_locked(data_dir: Path) -> bool:
    """True when some process holds the Lite lock on ``data_dir`` (the check Lite itself makes)."""
    lock = data_dir / "LOCK"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class LiteServer:
    """Start, stop and inspect one Milvus Lite server for one data directory."""

    def __init__(self, data_dir: Path, host: str, port: int, state_dir: Path, start_timeout_s: float = 60.0):
        self.data_dir = Path(data_dir).resolve()
        self.host = host
        self.port = port
        self.state_dir = Path(state_dir)
        self.start_timeout_s = start_timeout_s

    @classmethod
    def from_settings(cls, settings: Settings) -> LiteServer:
        lite = settings.lite
        return cls(lite.data_dir, lite.host, lite.port, settings.state.dir, lite.start_timeout_s)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.state_dir / LOG_FILE

    def _record(self) -> dict[str, Any] | None:
        """The pid file, or None when it is missing or unreadable (a crash mid-write, a stray edit): a record
        that cannot name a live server is the same as no record, and `start` replaces it."""
        try:
            rec = json.loads(self.pid_file.read_text())
        except (OSError, ValueError):  # FileNotFoundError, JSONDecodeError, UnicodeDecodeError
            return None
        if not isinstance(rec, dict) or type(rec.get("pid")) is not int or rec["pid"] <= 0:
            return None
        return rec

    def status(self) -> LiteStatus:
        rec = self._record()
        if rec and pid_alive(rec["pid"]) and _is_lite(rec["pid"]):
            return LiteStatus(
                True,
                rec["pid"],
                str(rec.get("uri", self.uri)),
                str(rec.get("data_dir", self.data_dir)),
                rec.get("started_at"),
                rec.get("log"),
            )
        return LiteStatus(False, None, self.uri, str(self.data_dir))

    def start(self) -> LiteStatus:
        """Start the server in the background and wait until it answers. Refuses a second server."""
        current = self.status()
        if current.running:
            raise LiteServerError(
                f"a Milvus Lite server (pid {current.pid}) already serves {current.data_dir} at {current.uri}; "
                "use it, or run `embguard lite stop` first"
            )
        self.pid_file.unlink(missing_ok=True)  # stale record of a dead server
        if not self._wait_unlocked(5.0):
            raise LiteServerError(
                f"Milvus Lite data dir {self.data_dir} is locked by another process (only one process may open "
                "it); connect to the server that holds it by URI instead, or stop that process"
            )
        if port_in_use(self.host, self.port):
            raise LiteServerError(
                f"port {self.port} on {self.host} is already in use; set lite.port (or EMBGUARD_LITE__PORT) to a "
                "free port"
            )
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        try:
            self._wait_ready(proc)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
            raise
        started_at = time.time()
        write_json(
            self.pid_file,
            {
                "pid": proc.pid,
                "uri": self.uri,
                "data_dir": str(self.data_dir),
                "started_at": started_at,
                "log": str(self.log_file),
            },
            indent=None,
        )
        return LiteStatus(True, proc.pid, self.uri, str(self.data_dir), started_at, str(self.log_file))

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LiteServerError(
                    f"Milvus Lite server exited with code {proc.returncode} during start-up; "
                    f"last log lines from {self.log_file}:\n{self._log_tail()}"
                )
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                if s.connect_ex((self.host, self.port)) == 0:
                    return
            time.sleep(0.1)
        raise LiteServerError(
            f"Milvus Lite server did not listen on {self.uri} within {self.start_timeout_s:.0f} s; see {self.log_file}"
        )

    def _wait_unlocked(self, timeout_s: float) -> bool:
        # A server that just exited (or was killed) can hold its lock for a moment longer: the kernel
        # releases it asynchronously. Give it that moment before calling the directory busy.
        deadline = time.monotonic() + timeout_s
        while data_dir_locked(self.data_dir):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 15.0) -> LiteStatus:
        """Stop the server this state directory started. Stopping a stopped server is not an error."""
        current = self.status()
        if not current.running or current.pid is None:
            self.pid_file.unlink(missing_ok=True)
            return current
        os.kill(current.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while pid_alive(current.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid_alive(current.pid):
            os.kill(current.pid, signal.SIGKILL)  # the write-ahead log makes this safe for acknowledged writes
            while pid_alive(current.pid):
                time.sleep(0.05)
        self._wait_unlocked(5.0)
        self.pid_file.unlink(missing_ok=True)
        return LiteStatus(False, current.pid, current.uri, current.data_dir)

    @contextlib.contextmanager
    def running(self) -> Iterator[LiteStatus]:
        """Start for the duration of a block (demos, tests); always stopped afterwards."""
        status = self.start()
        try:
            yield status
        finally:
            self.stop()
