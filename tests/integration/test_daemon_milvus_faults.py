"""Fault test: Milvus killed and restarted many times under a daemon whose jobs run every second.

Every restart must be followed by ``/readyz`` 200 within two watch periods, and a webhook receiver must get
exactly one MilvusDown trigger and one resolve per outage. With short intervals a job that saw the outage
used to close the connection the watch had just made, so the daemon never came back.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from alert_hooks import Hook, daemon_settings, restart_server
from builders import wait_until
from prometheus_client import CollectorRegistry

from embguard.client.client import Client
from embguard.daemon.service import Daemon
from embguard.demo.simulate import index, passages_for, traffic
from embguard.milvus.lite import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
WATCH_S = 0.5


def _readyz(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_daemon_recovers_from_every_restart_and_pages_once_per_outage(milvus_world, tmp_path: Path) -> None:
    if not milvus_world.restartable:
        pytest.skip("this backend's server is not ours to stop")
    # A real server takes ~35 s to come back after a kill -9 (Lite: ~1 s): 20 outages on Lite, 2 on a server.
    outages = 20 if milvus_world.backend == "lite" else 2
    hook = Hook()
    port = free_port()
    settings = daemon_settings(
        tmp_path,
        milvus_world.env,
        hook.url,
        EMBGUARD_MILVUS__TIMEOUT_S="2.0",
        EMBGUARD_SCHEDULE__CHECK_INTERVAL_S="1",
        EMBGUARD_SCHEDULE__SAMPLE_INTERVAL_S="1",
        EMBGUARD_SAMPLING__QUERY_RATE="1.0",
        EMBGUARD_METRICS__PORT=str(port),
    )
    with Client(settings) as c:
        c.create_collection("hk", index_type="FLAT")
        passages = passages_for(["json", "csv"])[:40]
        index(c, "hk", passages)
        traffic(c, "hk", passages, 40, seed=0)
    daemon = Daemon(settings, registry=CollectorRegistry(), milvus_watch_s=WATCH_S)
    recovery: list[float] = []
    try:
        daemon.start(serve_metrics=True)
        assert _readyz(port) == 200
        for outage in range(1, outages + 1):
            milvus_world.kill()
            wait_until(lambda: _readyz(port) == 503, 10, what=f"/readyz 503 in outage {outage}")
            wait_until(
                lambda n=outage: hook.of("milvus").count("trigger") == n, 20, what=f"MilvusDown trigger #{outage}"
            )
            time.sleep(3 * WATCH_S)  # on purpose: jobs fail against the dead server: the race that used to stick
            restart_server(milvus_world)
            back = time.monotonic()
            wait_until(lambda: _readyz(port) == 200, 2 * WATCH_S + 1.0, what=f"/readyz 200 after restart {outage}")
            recovery.append(time.monotonic() - back)
            wait_until(
                lambda n=outage: hook.of("milvus").count("resolve") == n, 20, what=f"MilvusDown resolve #{outage}"
            )
        time.sleep(2.0)  # on purpose: time for a stray repeat page to arrive before the exact count below
        assert daemon.notifier is not None
        daemon.notifier.drain(timeout_s=10)
    finally:
        daemon.stop()
        hook.close()
    assert hook.of("milvus") == ["trigger", "resolve"] * outages
    assert len(recovery) == outages and max(recovery) <= 2 * WATCH_S + 1.0, recovery
