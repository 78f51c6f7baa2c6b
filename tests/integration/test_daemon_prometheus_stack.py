"""The daemon for real: `embguard serve` against each Milvus backend (Lite, a real server) with tapped traffic,
scraped by a real Prometheus that loads the shipped alert rules; every dashboard and rule expression evaluated live
(an `embguard proxy` with an application of its own runs beside the daemon, so the proxy's panels have data too).

Order matters inside this module (one expensive set-up): no-drift traffic first, then drifted traffic,
then the Milvus outage. Each test states what it needs from the ones before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from backends import Backend
from builders import wait_until
from prometheus_client import CollectorRegistry, start_http_server
from promql import dashboard_exprs, rule_exprs, substitute
from proxy_world import ProxyProcess
from pymilvus import DataType, MilvusClient

from embguard.client.client import Client
from embguard.demo.simulate import index, passages_for, traffic
from embguard.milvus.lite import free_port
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models import loading as models

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
DRIFT_ALERT = "EmbguardDriftSustained"


def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return 0, str(e)


class Receiver:
    """A webhook endpoint on loopback that records what the daemon's notifier posts."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                received.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


class Stack:
    """Lite server, indexed collection, application client with metrics, daemon process, Prometheus."""

    def __init__(self, tmp: Path, backend: Backend):
        self.tmp = tmp
        self.backend = backend
        self._stack = contextlib.ExitStack()
        self.metrics_port, self.app_port, self.prom_port = free_port(), free_port(), free_port()
        self.receiver = Receiver()
        self.env = {
            "EMBGUARD_COLLECTIONS": '[{name="kb", index_type="FLAT"}]',
            "EMBGUARD_SAMPLING__QUERY_RATE": "1.0",
            "EMBGUARD_SAMPLING__WINDOW_S": "8",
            "EMBGUARD_SAMPLING__TAP_FLUSH_INTERVAL_S": "0.3",
            "EMBGUARD_SAMPLING__DOC_SAMPLE_SIZE": "300",
            "EMBGUARD_SCHEDULE__SAMPLE_INTERVAL_S": "2",
            "EMBGUARD_SCHEDULE__CHECK_INTERVAL_S": "2",
            # A per-window alpha of 0.001 keeps the no-drift phase quiet although windows overlap.
            "EMBGUARD_DRIFT__ALPHA": "0.001",
            "EMBGUARD_DRIFT__CONSECUTIVE": "2",
            "EMBGUARD_DRIFT__MIN_WINDOW": "30",
            "EMBGUARD_METRICS__PORT": str(self.metrics_port),
            "EMBGUARD_ALERTS": '[{name="hook", kind="webhook", url_env="HOOK_URL", secret_env="HOOK_SECRET"}]',
            "HOOK_URL": self.receiver.url,
            "HOOK_SECRET": "test-signing-secret",
        }
        # 300 tapped queries over 160 passages: ~135 distinct, enough for every monitor after de-duplication.
        self.base = passages_for(["email", "json", "http"])[:160]
        self.shift = passages_for(["asyncio"])[:60]
        self.daemon: subprocess.Popen | None = None
        self.prom: subprocess.Popen | None = None
        self._traffic_stop = threading.Event()
        self._traffic_thread: threading.Thread | None = None
        self.failed_searches = 0

    def start(self) -> None:
        self.world = self._stack.enter_context(self.backend.world(self.tmp, **self.env))
        self.env = self.world.env
        self.settings = self.world.settings
        m = Milvus.connect(self.settings)
        em = models.load()
        m.create_collection(
            self.settings.collection("kb"), em.dimension, name="kb__v1", properties={MODEL_ID_PROPERTY: em.model_id}
        )
        m.create_alias("kb__v1", "kb")
        m.close()
        self.registry = CollectorRegistry()
        self.app_server, _ = start_http_server(self.app_port, addr="127.0.0.1", registry=self.registry)
        self.client = Client(self.settings, registry=self.registry, seed=3)
        index(self.client, "kb", self.base + self.shift)
        traffic(self.client, "kb", self.base, 300, seed=1)
        self.client.flush_tap()
        self.cli("baseline", "capture", "kb", "--window-s", "3600")
        env = {**os.environ, **self.env}
        self.daemon_log = open(self.tmp / "daemon.log", "w")
        self.daemon = subprocess.Popen(
            [sys.executable, "-m", "embguard.cli", "-v", "serve"],
            env=env,
            stdout=self.daemon_log,
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: _get(self.url("/readyz"))[0] == 200, 60, interval_s=0.5, what="daemon /readyz")
        self.start_proxy()
        self.start_prometheus()

    def start_proxy(self) -> None:
        """`embguard proxy` in front of the same Milvus, with an application of its own that writes and searches
        the monitor-only collection `app` through it (the daemon does not watch `app`, so its checks of `kb` are
        unchanged): every proxy series the dashboards read exists."""
        self.proxy = ProxyProcess({**self.env, "EMBGUARD_COLLECTIONS": '[{name="app"}]'}, self.tmp / "proxy.log")
        self.proxy.start()
        app = MilvusClient(uri=self.proxy.uri, db_name=self.settings.milvus.db_name)
        schema = MilvusClient.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=8)
        params = app.prepare_index_params()
        params.add_index("vector", index_type="FLAT", metric_type="COSINE")
        app.create_collection("app", schema=schema, index_params=params)
        rng = np.random.default_rng(0)
        app.insert("app", [{"id": i, "vector": v.tolist()} for i, v in enumerate(rng.standard_normal((20, 8)))])
        for q in rng.standard_normal((5, 8)):
            app.search("app", data=[q.tolist()], limit=3, consistency_level="Strong")
        app.close()

    def cli(self, *args: str) -> str:
        res = subprocess.run(
            [sys.executable, "-m", "embguard.cli", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def start_prometheus(self) -> None:
        exe = shutil.which("prometheus")
        if exe is None:
            if os.environ.get("CI"):
                pytest.fail("prometheus is missing in CI: `make test` installs Debian's prometheus package")
            pytest.skip("Debian's prometheus is not installed here; `make test` installs it")
        # The shipped config with this machine's targets: same jobs, same honor_labels, same rule files.
        cfg = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
        cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
        cfg.pop("alerting", None)
        cfg["rule_files"] = [str(REPO / "prometheus" / "rules" / "*.yml")]
        targets = {
            "embguard": self.metrics_port,
            "embguard-app": self.app_port,
            "embguard-proxy": self.proxy.metrics_port,
            # No rule or panel reads the embedding endpoint's job yet (tests/integration/test_endpoint.py reads
            # its /metrics directly); like Milvus' here, its target is a port nothing listens on.
            "embguard-endpoint": free_port(),
            "milvus": free_port(),
            "prometheus": self.prom_port,
        }
        for job in cfg["scrape_configs"]:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
        path = self.tmp / "prometheus.yml"
        path.write_text(yaml.safe_dump(cfg))
        self.prom_log = open(self.tmp / "prometheus.log", "w")
        self.prom = subprocess.Popen(
            [
                exe,
                f"--config.file={path}",
                f"--storage.tsdb.path={self.tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
            ],
            stdout=self.prom_log,
            stderr=subprocess.STDOUT,
        )
        wait_until(
            lambda: _get(f"http://127.0.0.1:{self.prom_port}/-/ready")[0] == 200,
            60,
            interval_s=0.5,
            what="prometheus ready",
        )
        wait_until(lambda: self.query('up{job="embguard"} == 1'), 30, interval_s=0.5, what="first scrape of the daemon")

    def query(self, expr: str) -> list[dict]:
        q = urllib.parse.urlencode({"query": expr})
        code, body = _get(f"http://127.0.0.1:{self.prom_port}/api/v1/query?{q}")
        data = json.loads(body) if body.startswith("{") else {"status": "error", "error": body}
        assert data["status"] == "success", f"{expr}: {data.get('error')}"
        return data["data"]["result"]

    def run_traffic(self, shift_share: float) -> None:
        self.stop_traffic()
        self._traffic_stop.clear()

        def loop() -> None:
            seed = 100
            while not self._traffic_stop.is_set():
                seed += 1
                stats = traffic(
                    self.client,
                    "kb",
                    self.base,
                    10,
                    shifted=self.shift,
                    shift_share=shift_share,
                    seed=seed,
                    click_rate=0.2,
                )
                self.failed_searches += stats.failures
                time.sleep(0.05)  # on purpose: paces the traffic generator

        self._traffic_thread = threading.Thread(target=loop, daemon=True)
        self._traffic_thread.start()

    def stop_traffic(self) -> None:
        self._traffic_stop.set()
        if self._traffic_thread is not None:
            self._traffic_thread.join(timeout=30)

    def close(self) -> None:
        self.stop_traffic()
        if getattr(self, "proxy", None) is not None:
            self.proxy.stop()
        for proc in (self.daemon, self.prom):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if hasattr(self, "client"):
            self.client.close()
        if hasattr(self, "app_server"):
            self.app_server.shutdown()
        self.receiver.server.shutdown()
        self._stack.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp(f"live-{backend.name}"), backend)
    try:
        s.start()
        yield s
    finally:
        s.close()


def drift_expr() -> str:
    return dict(rule_exprs(REPO / "prometheus" / "rules" / "embguard.rules.yml"))[DRIFT_ALERT]


def test_no_drift_alert_while_traffic_matches_the_reference(stack: Stack) -> None:
    stack.run_traffic(shift_share=0.0)
    wait_until(
        lambda: stack.query('increase(embguard_checks_total{outcome="ok"}[1m]) > 3'),
        90,
        interval_s=0.5,
        what="several ok checks",
    )
    time.sleep(6)  # on purpose: more checks and rule evaluations, during which the alert must stay quiet
    assert stack.query(drift_expr()) == [], stack.query("embguard_drift_p_value")
    assert stack.query("embguard_drift_p_value")  # the checks ran and exported p-values


def test_drift_alert_fires_when_traffic_shifts_and_every_expression_evaluates(stack: Stack) -> None:
    stack.run_traffic(shift_share=0.7)
    fired = wait_until(
        lambda: stack.query(drift_expr()), 120, interval_s=1.0, what="the drift alert expression to fire"
    )
    assert {r["metric"]["collection"] for r in fired} == {"kb"}
    assert stack.failed_searches == 0
    time.sleep(3)  # on purpose: a few more scrapes so rate() windows have two samples of every series
    empty = []
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        for name, expr in dashboard_exprs(path):
            if not stack.query(substitute(expr)):
                empty.append(f"{path.name}: {name}: {expr}")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
    for _name, expr in rule_exprs(REPO / "prometheus" / "rules" / "embguard.rules.yml"):
        stack.query(expr)  # every rule expression is valid against live data (raises on error)
    status = stack.cli("status")
    assert "SUSTAINED DRIFT" in status and "reference  v0001" in status
    # The daemon's own notifier paged the webhook: signed, saying what drifted and what to run next.
    from embguard.alerts.webhooks import sign

    triggers = [(h, json.loads(b)) for h, b in stack.receiver.received if json.loads(b)["event"] == "trigger"]
    drift = [(h, b) for h, b in triggers if b["alert"]["name"] == "EmbeddingDriftSustained"]
    assert len(drift) == 1, stack.receiver.received  # deduplicated across many checks
    headers, payload = drift[0]
    raw = next(b for h, b in stack.receiver.received if json.loads(b) == payload)
    assert headers["X-Embguard-Signature"] == sign("test-signing-secret", headers["X-Embguard-Timestamp"], raw)
    alert = payload["alert"]
    assert alert["collection"] == "kb" and "p=" in alert["summary"]
    assert alert["next_command"] == "embguard retrain --collection kb"
    assert alert["details"]["mmd"]["p_value"] is not None


def test_daemon_survives_milvus_outage_and_resumes(stack: Stack) -> None:
    stack.stop_traffic()
    if not stack.world.restartable:
        pytest.skip("an external Milvus cannot be killed and restarted by the tests")
    stack.world.kill()
    try:
        _outage_and_recovery(stack)
    finally:
        if not stack.world.alive:
            stack.world.start()


def _outage_and_recovery(stack: Stack) -> None:
    wait_until(lambda: _get(stack.url("/readyz"))[0] == 503, 30, interval_s=0.5, what="/readyz to report the outage")
    code, body = _get(stack.url("/readyz"))
    assert json.loads(body)["milvus"] == "down"
    assert _get(stack.url("/healthz"))[0] == 200 and stack.daemon.poll() is None
    wait_until(
        lambda: stack.query("embguard_milvus_up == 0"), 30, interval_s=0.5, what="embguard_milvus_up to drop to 0"
    )
    before = float(stack.query('embguard_last_check_timestamp_seconds{collection="kb"}')[0]["value"][1])
    time.sleep(3)  # on purpose: the outage lasts a few seconds before Milvus comes back
    stack.world.start()
    wait_until(lambda: _get(stack.url("/readyz"))[0] == 200, 90, interval_s=0.5, what="/readyz to recover")
    stack.run_traffic(shift_share=0.0)

    def resumed() -> bool:
        r = stack.query('embguard_last_check_timestamp_seconds{collection="kb"}')
        return bool(r) and float(r[0]["value"][1]) > before + 3

    wait_until(resumed, 90, interval_s=0.5, what="checks to resume")
    assert stack.daemon.poll() is None


def test_sigterm_stops_the_daemon_within_seconds(stack: Stack) -> None:
    stack.stop_traffic()
    t0 = time.monotonic()
    stack.daemon.send_signal(signal.SIGTERM)
    rc = stack.daemon.wait(timeout=15)
    assert rc == 0 and time.monotonic() - t0 < 10
    assert _get(stack.url("/healthz"))[0] == 0  # the port is closed
    assert not (stack.settings.state.dir / "daemon.pid").exists()
