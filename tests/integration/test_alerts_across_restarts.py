"""Alerts across daemon restarts and Milvus outages: a remembered alert stays open until the first check finds it
clear, and MilvusDown pages from the watch once per outage. Real HTTP receivers on loopback, a real Milvus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alert_hooks import Hook, daemon_settings, drift_alert, restart_server
from builders import wait_until
from prometheus_client import CollectorRegistry

from embguard.alerts.notifier import Notifier
from embguard.checks.reports import CheckReport
from embguard.checks.windows import Window
from embguard.daemon.service import Daemon

# -- item 9: delivery off the check path ---------------------------------------------------------------------------


# -- item 8: no resolve before the first check ---------------------------------------------------------------------


@pytest.mark.integration
def test_restart_keeps_remembered_alerts_open_until_the_first_check_finds_them_clear(
    tmp_path: Path, milvus_env: dict[str, str], hook: Hook
) -> None:
    settings = daemon_settings(tmp_path, milvus_env, hook.url)
    # The previous daemon paged drift on hk and remembered it.
    with Notifier(settings.alerts, state_path=settings.state.dir / "alerts.json") as before:
        before.update([drift_alert()])
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
    settings = daemon_settings(
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
            wait_until(
                lambda n=outage: hook.of("milvus").count("trigger") == n, 20, what=f"MilvusDown trigger #{outage}"
            )
            time.sleep(1.5)  # on purpose: three more watch ticks while still down must not page again
            assert hook.of("milvus").count("trigger") == outage
            restart_server(milvus_world)
            wait_until(
                lambda n=outage: hook.of("milvus").count("resolve") == n, 90, what=f"MilvusDown resolve #{outage}"
            )
        time.sleep(1.0)  # on purpose: time for a stray repeat page to arrive before the exact count below
    finally:
        daemon.stop()
    assert hook.of("milvus") == ["trigger", "resolve"] * outages
