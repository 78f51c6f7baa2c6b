"""The proxy's test world: `embguard proxy` as its own process, and the applications it must serve unchanged.

``ProxyProcess`` starts the real command on free ports and can kill and restart it on the same ports.
``APPS`` are the applications of tests/apps (pymilvus MilvusClient and ORM, LangChain, LlamaIndex, the Node
SDK), each run as its own process with its URI as the only thing that differs between a direct and a proxied
run. The Node SDK and LlamaIndex (which needs pymilvus 2.6, so it gets its own virtualenv) are installed once
under .cache/apps, behind a file lock so parallel test workers share one install.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from builders import wait_until
from filelock import FileLock
from prometheus_client.parser import text_string_to_metric_families

from embguard.milvus.lite import free_port

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
APPS_DIR = TESTS / "apps"
APPS_CACHE = REPO / ".cache" / "apps"
# Pinned as an application would pin them; the versions shared/research/capture.md verified.
NODE_SDK = "@zilliz/milvus2-sdk-node@3.0.6"
LLAMAINDEX = ("llama-index-vector-stores-milvus==1.2.0", "llama-index-embeddings-openai-like==0.4.0")


class _Service:
    """An `embguard` command in its own process, configured by ``env``, with a /readyz and a /metrics."""

    command = ""
    stop_timeout_s = 20.0

    def __init__(self, env: dict[str, str], log: Path):
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def probe_url(self) -> str:  # where /readyz and /metrics are
        raise NotImplementedError

    def start(self, timeout_s: float = 30.0) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "embguard", self.command], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(self.ready, timeout_s, what=f"embguard {self.command} on {self.probe_url} (log: {self.log})")

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"embguard {self.command} exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{self.probe_url}/readyz", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on its /metrics (0 when absent)."""
        with urllib.request.urlopen(f"{self.probe_url}/metrics", timeout=5) as r:
            text = r.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode


class ProxyProcess(_Service):
    """`embguard proxy` on free ports (kill and restart keep them)."""

    command = "proxy"

    def __init__(self, env: dict[str, str], log: Path):
        self.port, self.metrics_port = free_port(), free_port()
        ports = {"EMBGUARD_PROXY__PORT": str(self.port), "EMBGUARD_PROXY__METRICS_PORT": str(self.metrics_port)}
        super().__init__({**os.environ, **env, **ports}, log)

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def probe_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"


class EndpointProcess(_Service):
    """`embguard endpoint` on a free port; ``token`` (when given) is the bearer token it requires, passed through
    the variable endpoint.token_env names."""

    command = "endpoint"
    stop_timeout_s = 30.0

    def __init__(self, env: dict[str, str], log: Path, token: str | None = None):
        self.port = free_port()
        full = {**os.environ, **env, "EMBGUARD_ENDPOINT__PORT": str(self.port)}
        if token is not None:
            full.update(
                {"EMBGUARD_ENDPOINT__TOKEN_ENV": "EMBGUARD_TEST_ENDPOINT_TOKEN", "EMBGUARD_TEST_ENDPOINT_TOKEN": token}
            )
        super().__init__(full, log)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def probe_url(self) -> str:
        return self.url

    def routing_env(self) -> dict[str, str]:
        """What a proxy needs to route by this endpoint's vectors: its URL, and its token the same way."""
        names = ("EMBGUARD_ENDPOINT__TOKEN_ENV", "EMBGUARD_TEST_ENDPOINT_TOKEN")
        return {"EMBGUARD_PROXY__ENDPOINT_URL": self.url, **{k: self.env[k] for k in names if k in self.env}}

    def start(self, timeout_s: float = 90.0) -> None:
        super().start(timeout_s)


def node_modules() -> Path:
    """The Node SDK, installed once with npm into .cache/apps/node."""
    home = APPS_CACHE / "node"
    home.mkdir(parents=True, exist_ok=True)
    with FileLock(str(home) + ".lock"):
        if not (home / "node_modules" / "@zilliz" / "milvus2-sdk-node").is_dir():
            subprocess.run(
                ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(home), NODE_SDK],
                check=True,
                timeout=600,
            )
    return home / "node_modules"


def llamaindex_python() -> Path:
    """A virtualenv with LlamaIndex's Milvus store (and its pymilvus 2.6) and its OpenAI-like embeddings, made once
    under .cache/apps."""
    home = APPS_CACHE / "llamaindex"
    python = home / "bin" / "python"
    with FileLock(str(home) + ".lock"):
        marker = home / ".installed"
        if not marker.is_file() or marker.read_text() != " ".join(LLAMAINDEX):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True, timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *LLAMAINDEX], check=True, timeout=900)
            marker.write_text(" ".join(LLAMAINDEX))
    return python


APPS = ("pymilvus_client", "pymilvus_orm", "langchain", "llamaindex", "node")


def run_app(app: str, uri: str, db: str, collection: str, out: Path, *flags: str) -> dict[str, Any]:
    """Run one application against ``uri`` and return what it printed (hits, errors, the query vectors)."""
    env = {**os.environ}
    for name in list(env):
        if name.startswith("EMBGUARD_"):
            del env[name]  # the applications know nothing of embguard
    if app == "node":
        env["NODE_PATH"] = str(node_modules())
        address = uri.removeprefix("http://")
        pairs = zip(flags, flags[1:], strict=False)  # each flag with the word after it
        given = {flag: value for flag, value in pairs if flag in ("--docs", "--texts", "--queries")}
        rng = np.random.default_rng(5)
        docs = np.load(given["--docs"]) if "--docs" in given else rng.standard_normal((300, 384))
        queries = np.load(given["--queries"]) if "--queries" in given else rng.standard_normal((5, docs.shape[1]))
        texts = [t[:500] for t in json.loads(Path(given["--texts"]).read_text())] if "--texts" in given else None
        # float32 values, so what the SDK sends is exactly what the test compares with.
        data = {"docs": docs.astype(np.float32).tolist(), "queries": queries.astype(np.float32).tolist()}
        out.with_suffix(".input.json").write_text(json.dumps({**data, "texts": texts} if texts else data))
        switches = [f for f in flags if f in ("--keep", "--search-only")]
        cmd = ["node", str(APPS_DIR / "node_app.js"), address, db, collection, str(out), *switches]
    else:
        python = str(llamaindex_python()) if app == "llamaindex" else sys.executable
        cmd = [python, str(APPS_DIR / f"{app}_app.py"), uri, db, collection, str(out), *flags]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{app} app failed against {uri}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def wait_for_tap(milvus: Any, alias: str, n: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The tap rows of ``alias`` once there are ``n`` of them (fails if more arrive)."""
    from embguard.client.tap import read_tap, tap_collection_name
    from embguard.milvus.filters import literal

    rows: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal rows
        rows = read_tap(milvus, tap_collection_name(384), f"alias == {literal(alias)}", ["query_id", "vector"])
        return len(rows) >= n

    wait_until(enough, timeout_s, interval_s=0.3, what=f"{n} tapped queries of {alias}")
    time.sleep(1.0)  # the tap flushes every 0.2 s in tests: anything tapped twice would have arrived by now
    enough()
    return rows
