"""The Milvus backends every integration test runs on (qdrant-client's congruence pattern).

- ``lite``: Milvus Lite, the embedded default, one loopback server per test world (it starts in < 1 s).
- ``server``: the real Milvus standalone server shipped by the PyPI ``milvus`` package (2.3.5: Go/C++,
  embedded etcd, local storage), started once per test session on free loopback ports. Each test world
  gets a database of its own, so tests stay isolated without paying the server's start-up again (and the
  non-default-database path, where Milvus 2.3's alias calls misbehave, is exercised by every test).
- ``external``: ``EMBGUARD_TEST_MILVUS_URI=http://host:19530`` points the same suite at a Milvus someone
  else runs (an operator's 2.4/2.5/2.6 cluster). Nothing is started; tests that must kill and restart
  the server skip there. ``EMBGUARD_TEST_MILVUS_TOKEN`` passes credentials; the tests create and drop databases
  named ``EMBGUARD_TEST_MILVUS_DB_<random>`` (default prefix ``embguard_test``), never touching others.

``EMBGUARD_TEST_BACKENDS=lite`` (or ``server``) narrows the run to one backend while developing.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from builders import wait_until

from embguard.config import loader as config
from embguard.config.settings import Settings
from embguard.milvus.lite import LiteServer, free_port

EXTERNAL_URI = os.environ.get("EMBGUARD_TEST_MILVUS_URI", "")
EXTERNAL_TOKEN = os.environ.get("EMBGUARD_TEST_MILVUS_TOKEN", "")
# The server's internal listen ports (template keys of the ``milvus`` package), besides proxy and etcd.
_INTERNAL_PORTS = (
    "root_coord_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)
_START_LOCK = Path(tempfile.gettempdir()) / "embguard-test-milvus-server-start.lock"


def backend_names() -> list[str]:
    chosen = os.environ.get("EMBGUARD_TEST_BACKENDS", "")
    names = [n.strip() for n in chosen.split(",") if n.strip()] or ["lite", "server"]
    if EXTERNAL_URI:
        names = ["external" if n == "server" else n for n in names]
    return names


class MilvusServerProcess:
    """One real Milvus standalone process (``milvus`` package) on loopback, restartable on the same data.

    Every port is chosen by ``_listen_ports``, including each coordinator's and embedded etcd's peer port
    (2380 by default, which is not a template setting: an embedded-etcd config file moves it), so two
    servers can run on one machine. The package's own resolver starts at fixed defaults (root coord 53100,
    inside the kernel's ephemeral range) and releases its probe sockets before the server binds: in CI two
    servers starting at once (one per xdist worker) both took 53100 and one died. Ports are chosen once, at
    the first start, under a machine-wide file lock held until the server answers; a restart reuses them.
    """

    def __init__(self, base_dir: Path):
        self.base_dir = Path(base_dir)
        self._ports: dict[str, int] = {}
        self._server = None  # milvus.MilvusServer

    @property
    def port(self) -> int:
        if not self._ports:
            raise RuntimeError("the Milvus server's ports are chosen when it first starts; start() it first")
        return self._ports["proxy_port"]

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        proc = self._server.server_proc if self._server else None
        return proc.pid if proc else None

    def start(self, timeout_s: float = 180.0) -> None:
        from milvus import MilvusServer, MilvusServerConfig

        with _START_LOCK.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also on an exception
            self._ports = self._ports or _listen_ports()
            self._start(MilvusServer(MilvusServerConfig(), wait_for_started=False))
            self._wait_ready(timeout_s)

    def _start(self, server) -> None:  # server: milvus.MilvusServer, imported lazily
        self.base_dir.mkdir(parents=True, exist_ok=True)
        etcd_conf = self.base_dir / "embed-etcd.yaml"
        ports = dict(self._ports)
        peer, client = f"http://127.0.0.1:{ports.pop('etcd_peer_port')}", f"http://127.0.0.1:{ports['etcd_port']}"
        etcd_conf.write_text(
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\nlisten-client-urls: {client}\n"
            f"advertise-client-urls: {client}\n"
        )
        server.set_base_dir(str(self.base_dir))
        server.config.update(**ports)
        write = server.config.write_config

        def write_config() -> None:
            write()
            path = self.base_dir / "configs" / "milvus.yaml"
            text = path.read_text()
            text = text.replace(
                "  use:\n    embed: true", f"  use:\n    embed: true\n  config:\n    path: {etcd_conf}", 1
            )
            path.write_text(text)

        server.config.write_config = write_config
        # Its port check binds 127.0.0.1 without SO_REUSEADDR, so right after a kill it fails on ports whose
        # connections sit in TIME_WAIT (for a minute), although the Go server reuses them fine. The server
        # listens on every interface, so the check must bind the wildcard address to see other servers.
        server.config.try_bind_port = _reusable_bind
        server.start()
        self._server = server

    def _wait_ready(self, timeout_s: float) -> None:
        from pymilvus import MilvusClient

        last: list[Exception] = []

        def answers() -> bool:
            if self._server.server_proc.poll() is not None:
                log = self.base_dir / "logs" / "milvus-stdout.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                # Its error lines only, each cut short: the whole tail, once per test of the backend, buried
                # everything else at the end of the CI output.
                errors = [ln[:300] for ln in text.splitlines() if "[ERROR]" in ln or "[FATAL]" in ln or "panic" in ln]
                raise RuntimeError(
                    f"Milvus server exited with {self._server.server_proc.returncode} (log: {log}): "
                    + (" | ".join(errors[-3:]) or text[-600:])
                )
            try:
                client = MilvusClient(uri=self.uri, timeout=5)
                client.list_collections()
                client.close()
                return True
            except Exception as exc:  # not up yet
                last[:] = [exc]
                return False

        try:
            wait_until(answers, timeout_s, interval_s=0.5, what=f"the Milvus server at {self.uri}")
        except AssertionError:
            raise TimeoutError(
                f"Milvus server at {self.uri} not ready after {timeout_s:.0f} s: {last[0] if last else None}"
            ) from None

    @property
    def alive(self) -> bool:
        proc = self._server.server_proc if self._server else None
        return proc is not None and proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would (SIGTERM takes over a minute on this server)."""
        proc = self._server.server_proc if self._server else None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        self._server.server_proc = None
        self._server.stop()  # closes its log files
        self._server = None

    def stop(self) -> None:
        proc = self._server.server_proc if self._server else None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


def _listen_ports() -> dict[str, int]:
    """Free ports for one server, drawn below the kernel's ephemeral range (``ip_local_port_range``).

    There no outgoing connection's local port and no ``free_port()`` (port 0) of a Lite server or torchrun
    rendezvous can take one between this check and the server's bind."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.SystemRandom()
    ports: dict[str, int] = {}
    for key in ("proxy_port", "etcd_port", "etcd_peer_port", *_INTERNAL_PORTS):
        while key not in ports:
            port = rng.randrange(20000, low)
            sock = None if port in ports.values() else _reusable_bind(port)
            if sock is not None:
                sock.close()
                ports[key] = port
    return ports


def _reusable_bind(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", port))
        sock.listen()
        return sock
    except OSError:
        sock.close()
        return None


class MilvusWorld:
    """The Milvus one test talks to, as the ``EMBGUARD_*`` environment that reaches it.

    ``kill()``/``start()`` take the server down and up again (on ``server`` that is the shared process,
    so a test that does it must leave it running).
    """

    def __init__(
        self,
        backend: str,
        env: dict[str, str],
        lite: LiteServer | None = None,
        server: MilvusServerProcess | None = None,
    ):
        self.backend = backend
        self.env = env
        self._lite = lite
        self._server = server

    @property
    def settings(self) -> Settings:
        return config.load(None, environ=self.env)

    @property
    def restartable(self) -> bool:
        return self.backend != "external"

    @property
    def alive(self) -> bool:
        if self._lite is not None:
            return self._lite.status().running
        return self._server.alive if self._server is not None else True

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        if self._lite is not None:
            pid = self._lite.status().pid
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            lite = self._lite
            wait_until(lambda: not lite.status().running, 60, what="the killed Milvus Lite server to be gone")
        elif self._server is not None:
            self._server.kill()

    def start(self) -> None:
        if self._lite is not None:
            self._lite.start()
        elif self._server is not None:
            self._server.start()


class Backend:
    """A backend for the session: makes isolated ``MilvusWorld`` worlds on it."""

    def __init__(self, name: str, base_dir: Path):
        self.name = name
        self.base_dir = base_dir
        self.server: MilvusServerProcess | None = None
        if name == "server":
            self.server = MilvusServerProcess(base_dir / "milvus-server")
            self.server.start()

    @property
    def uri(self) -> str:
        if self.name == "external":
            return EXTERNAL_URI
        return self.server.uri if self.server else ""

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    @contextlib.contextmanager
    def world(self, tmp: Path, **env: str) -> Iterator[MilvusWorld]:
        """A fresh, empty Milvus for one test (or module): its own Lite server, or a database of its own."""
        base = {
            "EMBGUARD_STATE__DIR": str(tmp / "state"),
            "EMBGUARD_MODEL__STORE_DIR": str(tmp / "models"),
            "EMBGUARD_LITE__DATA_DIR": str(tmp / "milvus"),
            "EMBGUARD_LITE__PORT": str(free_port()),
        }
        if self.name == "lite":
            tm = MilvusWorld("lite", {**base, **env})
            lite = LiteServer.from_settings(tm.settings)
            lite.start()
            tm._lite = lite
            try:
                yield tm
            finally:
                lite.stop()
            return
        if self.server is not None and not self.server.alive:
            self.server.start()  # a test that killed it and failed before restarting must not fail the rest
        db = f"{os.environ.get('EMBGUARD_TEST_MILVUS_DB', 'embguard_test')}_{uuid.uuid4().hex[:8]}"
        base.update({"EMBGUARD_MILVUS__URI": self.uri, "EMBGUARD_MILVUS__DB_NAME": db})
        if EXTERNAL_TOKEN:
            base["EMBGUARD_MILVUS__TOKEN"] = EXTERNAL_TOKEN
        _create_database(self.uri, db)
        try:
            yield MilvusWorld(self.name, {**base, **env}, server=self.server)
        finally:
            _drop_database(self.uri, db)


def _client(uri: str, db: str = ""):
    from pymilvus import MilvusClient

    return MilvusClient(uri=uri, token=EXTERNAL_TOKEN, db_name=db, timeout=30)


def _create_database(uri: str, db: str) -> None:
    c = _client(uri)
    try:
        if db not in c.list_databases():
            c.create_database(db)
    finally:
        c.close()


def _drop_database(uri: str, db: str) -> None:
    """Drop a test's database with its collections and aliases; best effort, since a test may have left
    the server down."""
    with contextlib.suppress(Exception):
        c = _client(uri, db)
        try:
            for name in c.list_collections():
                for alias in c.describe_collection(name).get("aliases") or []:
                    c.drop_alias(alias)
                c.drop_collection(name)
        finally:
            c.close()
        c = _client(uri)
        try:
            c.drop_database(db)
        finally:
            c.close()
