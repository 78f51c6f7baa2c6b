"""A daemon world without Milvus for the daemon's incident, state, metrics and CLI tests: a webhook ``Receiver``,
the environment of a daemon paging it (``daemon_env``), synthetic windows, a read-only directory even for root,
an HTTP GET that returns errors as values, and the CLI in-process (``cli_run``). The ``receiver`` and ``exporter``
fixtures in conftest.py serve one per test."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from embguard.checks.windows import Window
from embguard.cli._base import cli
from embguard.milvus.lite import free_port

DIM = 16
DRIFT = "EmbeddingDriftSustained"


class Receiver:
    """A webhook endpoint on loopback recording what the daemon's notifier posts."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def events(self, name: str = DRIFT) -> list[str]:
        return [p["event"] for p in self.received if p["alert"]["name"] == name]

    def open(self, name: str = DRIFT) -> bool:
        """Whether the receiver's incident is open (its last trigger not yet resolved)."""
        state = False
        for e in self.events(name):
            state = e in ("trigger", "repeat")
        return state


def daemon_env(tmp: Path, receiver: Receiver | None = None, **env: str) -> dict[str, str]:
    # drift.monitors from a file: EMBGUARD_DRIFT__MONITORS='["mmd"]' is read as one string (reported on #23).
    cfg = tmp / "embguard.toml"
    cfg.write_text('[drift]\nmonitors = ["mmd"]\n')
    base = {
        "EMBGUARD_CONFIG": str(cfg),
        # Milvus is not needed by these daemons (windows are built here): point at a closed port.
        "EMBGUARD_MILVUS__URI": f"http://127.0.0.1:{free_port()}",
        "EMBGUARD_MILVUS__TIMEOUT_S": "1.0",
        "EMBGUARD_COLLECTIONS": '[{name="kb"}]',
        "EMBGUARD_DRIFT__CONSECUTIVE": "2",
        "EMBGUARD_DRIFT__MIN_WINDOW": "30",
        "EMBGUARD_DRIFT__DEDUP_QUERIES": "false",
        "EMBGUARD_METRICS__PORT": str(free_port()),
    }
    if receiver is not None:
        base.update(EMBGUARD_ALERTS='[{name="hook", kind="webhook", url_env="HOOK_URL"}]', HOOK_URL=receiver.url)
    base.update(env)
    return base


def synthetic_window(seed: int, n: int, shift: float = 0.0, texts: tuple[str, ...] = ()) -> Window:
    v = np.random.default_rng(seed).normal(size=(n, DIM))
    v[:, 0] += shift
    return Window("queries", "kb__v1", "m", 0, 1, tuple(range(n)), v, np.zeros(n), texts=texts)


REFERENCE = synthetic_window(0, 200)


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """``directory`` and everything under it cannot be written, even by root: ``chattr +i`` (immutable), which
    root cannot bypass without clearing the flag; chmod where the tests do not run as root."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip("tests run as root and chattr is missing: cannot make a directory read-only")
        res = subprocess.run(["chattr", "-R", "+i", str(directory)], capture_output=True, text=True)
        if res.returncode != 0:
            pytest.skip(f"chattr +i is not supported here ({res.stderr.strip()})")
        undo = ["chattr", "-R", "-i", str(directory)]
    else:
        for p in [directory, *directory.rglob("*")]:
            if p.is_dir():
                p.chmod(0o555)
        undo = ["chmod", "-R", "u+w", str(directory)]
    try:
        with pytest.raises(OSError):
            (directory / "probe").write_text("x")
        yield
    finally:
        subprocess.run(undo, check=True)


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def cli_run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)
