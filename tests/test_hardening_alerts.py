"""Issue 16, items 3, 8 and 9: alerting that pages promptly, does not flap on restart, and never waits on a
webhook host. Real HTTP receivers on loopback, a real Milvus Lite server for the outage."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from embguard import config
from embguard.alerts import Alert, Notifier
from embguard.checks import CheckReport
from embguard.config import AlertTarget
from embguard.daemon import Daemon
from embguard.sampling import Window


class Hook:
    """A webhook receiver that records every (event, alert key) it is sent."""

    def __init__(self) -> None:
        events = self.events = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                events.append((body["event"], body["alert"]["key"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, key: str) -> list[str]:
        return [e for e, k in self.events if k == key]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Silent:
    """A TCP listener that accepts connections and never answers (a hung webhook host)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.accepted = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.sock.close()


@pytest.fixture()
def hook() -> Iterator[Hook]:
    h = Hook()
    yield h
    h.close()


def _wait(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _alert(key: str = "drift:hk") -> Alert:
    return Alert(key=key, name="EmbeddingDriftSustained", collection="hk", severity="warning", summary="drift")


# -- item 9: delivery off the check path ---------------------------------------------------------------------------


def test_a_host_that_never_answers_delays_neither_update_nor_the_other_targets(hook: Hook) -> None:
    silent = Silent()
    # The dead host's request must still hang while the live target is paged, even on a loaded machine.
    dead = AlertTarget(name="dead", kind="webhook", url=SecretStr(silent.url), secret=SecretStr("k"), timeout_s=8.0)
    live = AlertTarget(name="live", kind="webhook", url=SecretStr(hook.url), secret=SecretStr("k"))
    n = Notifier([dead, live], background=True, max_attempts=1, backoff_s=0.0)
    try:
        assert n.update([_alert()]) == []  # queued, not delivered here
        assert silent.accepted.wait(5), "the hung host was never contacted"
        _wait(lambda: hook.of("drift:hk") == ["trigger"], 5, "the live target's trigger")
        # update() returned and the live target was paged while the dead target's request is still hanging
        # (the live worker settles its delivery a moment after the hook has received it).
        _wait(lambda: n.pending == 1, 5, "the live delivery to settle while the dead one hangs")
        n.update([_alert()])  # the next check neither waits nor queues a second copy of the in-flight edge
        assert n.pending == 1
        done = n.drain(timeout_s=20)
    finally:
        n.close()
        silent.close()
    by_target = {d.target: d for d in done}
    assert by_target["live"].ok and by_target["live"].action == "trigger"
    assert not by_target["dead"].ok and "timed out" in by_target["dead"].error
    assert hook.of("drift:hk") == ["trigger"]


def test_a_full_queue_drops_the_edge_and_offers_it_again_on_the_next_update(hook: Hook) -> None:
    silent = Silent()
    dead = AlertTarget(name="dead", kind="webhook", url=SecretStr(silent.url), secret=SecretStr("k"), timeout_s=0.5)
    registry = CollectorRegistry()
    n = Notifier([dead], background=True, max_attempts=1, backoff_s=0.0, queue_size=1, registry=registry)
    try:
        n.update([_alert("a")])
        assert silent.accepted.wait(5)  # "a" is in flight, the queue is empty again
        n.update([_alert("a"), _alert("b"), _alert("c")])  # "b" fills the queue of 1, "c" is dropped
        dropped = registry.get_sample_value(
            "embguard_alerts_sent_total", {"target": "dead", "action": "trigger", "outcome": "dropped"}
        )
        assert dropped == 1.0
        done = n.drain(timeout_s=10)
        assert sorted(d.key for d in done) == ["a", "b"] and not any(d.ok for d in done)
        n.update([_alert("a"), _alert("b"), _alert("c")])  # failed and dropped edges are all offered again
        assert {d.key for d in n.drain(timeout_s=10)} <= {"a", "b", "c"}
    finally:
        n.close()
        silent.close()


# -- item 8: no resolve before the first check ---------------------------------------------------------------------


def _daemon_settings(tmp: Path, base: dict[str, str], url: str, **env: str) -> config.Settings:
    return config.load(
        None,
        environ={
            **base,
            "EMBGUARD_STATE__DIR": str(tmp / "state"),
            "EMBGUARD_COLLECTIONS": '[{name="hk"}]',
            "HOOK_URL": url,
            "EMBGUARD_ALERTS": '[{name="hook", kind="webhook", url_env="HOOK_URL"}]',
            **env,
        },
    )


@pytest.mark.integration
def test_restart_keeps_remembered_alerts_open_until_the_first_check_finds_them_clear(
    tmp_path: Path, milvus_env: dict[str, str], hook: Hook
) -> None:
    settings = _daemon_settings(tmp_path, milvus_env, hook.url)
    # The previous daemon paged drift on hk and remembered it.
    with Notifier(settings.alerts, state_path=settings.state.dir / "alerts.json") as before:
        before.update([_alert()])
    assert hook.of("drift:hk") == ["trigger"]

    daemon = Daemon(settings, registry=CollectorRegistry())
    try:
        daemon._run("milvus_watch", daemon.job_milvus_watch)  # what start() does first; it notifies
        assert daemon.milvus_up
        daemon._notify()  # e.g. retrain_policy's tick at 0.2 s, before any check
        daemon.notifier.drain(timeout_s=10)
        assert hook.of("drift:hk") == ["trigger"], "resolved before any check had looked"
        assert hook.of("milvus") == []

        st = daemon._collections["hk"]
        st.window = Window(
            kind="queries",
            collection="hk",
            model_id="m",
            start_ms=0,
            end_ms=1,
            ids=(),
            vectors=np.zeros((0, 4)),
            timestamps_ms=np.zeros(0),
        )
        daemon._record(
            st,
            CheckReport(
                collection="hk",
                served_by="hk__v1",
                model_id="m",
                reference_version=1,
                n_reference=100,
                n_current=100,
                checked_at=time.time(),
            ),
        )
        daemon._notify()  # the first check found no drift: now, and only now, the resolve goes out
        daemon.notifier.drain(timeout_s=10)
    finally:
        daemon.stop()
    assert hook.of("drift:hk") == ["trigger", "resolve"]


# -- item 3: MilvusDown pages from the watch, once per outage -------------------------------------------------------


@pytest.mark.integration
def test_milvus_down_pages_from_the_watch_once_per_outage(tmp_path: Path, milvus_world: Any, hook: Hook) -> None:
    if not milvus_world.restartable:
        pytest.skip("this backend's server is not ours to stop")
    # Checks and samples hourly: only the watch path can page within the test.
    settings = _daemon_settings(
        tmp_path,
        milvus_world.env,
        hook.url,
        EMBGUARD_MILVUS__TIMEOUT_S="2.0",
        EMBGUARD_SCHEDULE__CHECK_INTERVAL_S="3600",
        EMBGUARD_SCHEDULE__SAMPLE_INTERVAL_S="3600",
    )
    outages = 2 if milvus_world.backend == "lite" else 1  # a real server takes far longer to come back
    daemon = Daemon(settings, registry=CollectorRegistry(), milvus_watch_s=0.5)
    try:
        daemon.start(serve_metrics=False)
        assert daemon.milvus_up
        for outage in range(1, outages + 1):
            milvus_world.kill()
            _wait(lambda n=outage: hook.of("milvus").count("trigger") == n, 20, f"MilvusDown trigger #{outage}")
            time.sleep(1.5)  # three more watch ticks while still down: no repeat
            assert hook.of("milvus").count("trigger") == outage
            _restart(milvus_world)
            _wait(lambda n=outage: hook.of("milvus").count("resolve") == n, 90, f"MilvusDown resolve #{outage}")
        time.sleep(1.0)
    finally:
        daemon.stop()
    assert hook.of("milvus") == ["trigger", "resolve"] * outages


def _restart(world: Any, timeout_s: float = 120.0) -> None:
    # Right after a kill -9 the real server's ports can still be held for a while (its start refuses with
    # "bind failed"); keep trying, as an operator's restart loop would.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            world.start()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)
