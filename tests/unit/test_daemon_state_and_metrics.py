"""The daemon's incidents, state and metrics: an incident survives a restart, a skipped check is no evidence,
an unwritable state directory is reported instead of fatal, /metrics under a burst of scrapes, exit codes when
Milvus is unreachable, series initialised at start, swap events, and the reconnect back-off.

Most tests run a real :class:`Daemon` (its real notifier posting to a real loopback webhook, its real exporter,
its real state directory) with checks made by a real :class:`CollectionMonitor` on synthetic windows: only the
Milvus read that produces a window is left out. The `check`/`status` tests against Milvus use both backends.
"""

from __future__ import annotations

import gzip
import json
import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from builders import make_settings, settings_env, wait_until
from daemon_world import REFERENCE, Receiver, cli_run, daemon_env, http_get, read_only, synthetic_window
from prometheus_client import CollectorRegistry, Gauge

from embguard.checks.monitor import CollectionMonitor
from embguard.checks.reports import COMBINED, CheckReport, read_check_report, read_evidence
from embguard.checks.windows import Window
from embguard.config import loader as config
from embguard.config.settings import CollectionSettings, DriftSettings, Settings
from embguard.config.statedir import StateDir
from embguard.daemon.reconnect import Backoff, Connection
from embguard.daemon.service import Daemon
from embguard.daemon.watched import Watched
from embguard.swap.state import SwapEvent, SwapState, SwapStore

# --- helpers ---------------------------------------------------------------------------------------------------


def _settings(tmp: Path, receiver: Receiver | None = None, **env: str) -> Settings:
    return make_settings(tmp, None, **daemon_env(tmp, receiver, **env))


def _check(daemon: Daemon, window: Window) -> CheckReport:
    """The daemon's check of one window: fit the monitor as check_collection does (continuing the streaks a
    previous daemon persisted), test, record, page."""
    w = daemon._collections["kb"]
    w.window = window  # what the sample job leaves for the check
    if w.monitor is None:
        w.monitor = w.resume(CollectionMonitor("kb", daemon.settings.drift, REFERENCE, 1))
    report = daemon._record(w, w.monitor.check(window, "kb__v1"))
    _notify(daemon)
    return report


def _notify(daemon: Daemon) -> None:
    daemon._notify()
    if daemon.notifier is not None:
        daemon.notifier.drain()


def _sustained_gauge(daemon: Daemon) -> float | None:
    return daemon.registry.get_sample_value("embguard_drift_sustained", {"collection": "kb", "monitor": COMBINED})


def _agree(daemon: Daemon, receiver: Receiver) -> bool:
    """The page (what the webhook was last told) and /metrics say the same."""
    return (_sustained_gauge(daemon) == 1.0) == receiver.open() == daemon._collections["kb"].sustained


# --- item 3: a restart during sustained drift continues the incident ---------------------------------------


def test_restart_during_sustained_drift_neither_resolves_nor_retriggers(tmp_path: Path, receiver: Receiver) -> None:
    settings = _settings(tmp_path, receiver)
    first = Daemon(settings, registry=CollectorRegistry())
    try:
        reports = [_check(first, synthetic_window(seed, 100, shift=1.5)) for seed in (1, 2)]
        assert [r.sustained for r in reports] == [False, True]
        assert receiver.events() == ["trigger"]
    finally:
        first.stop()

    second = Daemon(settings, registry=CollectorRegistry())  # the restart: same state directory
    try:
        assert _sustained_gauge(second) == 1.0  # the decision is restored before any check
        _notify(second)  # a watch tick before the first check
        third = _check(second, synthetic_window(3, 100, shift=1.5))
        assert third.sustained and third.combined is not None and third.combined.consecutive == 3
        assert receiver.events() == ["trigger"], "a restart must neither resolve nor re-trigger the open incident"
        assert _agree(second, receiver)
        quiet = _check(second, synthetic_window(4, 100))  # real evidence against drift still resolves it
        assert not quiet.drift and receiver.events() == ["trigger", "resolve"]
        assert _agree(second, receiver)
    finally:
        second.stop()


def test_a_decision_made_on_another_reference_does_not_continue_streaks(tmp_path: Path) -> None:
    w = Watched(CollectionSettings(name="kb"))
    drift = DriftSettings(monitors=("mmd",), consecutive=2, min_window=30, dedup_queries=False)
    mon = CollectionMonitor("kb", drift, REFERENCE, 1)
    for seed in (1, 2):
        w.record(mon.check(synthetic_window(seed, 100, shift=1.5), "kb__v1"))
    assert w.sustained
    assert w.resume(CollectionMonitor("kb", drift, REFERENCE, 1)).consecutive[COMBINED] == 2
    assert w.resume(CollectionMonitor("kb", drift, REFERENCE, 2)).consecutive[COMBINED] == 0  # a new baseline


# --- item 4: a skipped check is no evidence ----------------------------------------------------------------------


def test_skipped_checks_neither_resolve_nor_change_drift_sustained_and_page_and_metric_agree(
    tmp_path: Path, receiver: Receiver
) -> None:
    daemon = Daemon(_settings(tmp_path, receiver), registry=CollectorRegistry())
    g = daemon.registry.get_sample_value
    try:
        steps = [
            ("drift", synthetic_window(1, 100, shift=1.5)),
            ("drift", synthetic_window(2, 100, shift=1.5)),  # sustained: trigger
            ("skipped", synthetic_window(3, 5, shift=1.5)),  # 5 queries < drift.min_window
            ("skipped", synthetic_window(4, 5)),
            ("quiet", synthetic_window(5, 100)),  # resolve
            ("skipped", synthetic_window(6, 5)),
            ("drift", synthetic_window(7, 100, shift=1.5)),
            ("drift", synthetic_window(8, 100, shift=1.5)),  # trigger again
            ("skipped", synthetic_window(9, 5)),
        ]
        for i, (kind, window) in enumerate(steps):
            report = _check(daemon, window)
            assert bool(report.skipped) == (kind == "skipped"), (i, report.summary())
            assert _agree(daemon, receiver), (i, kind, _sustained_gauge(daemon), receiver.events())
        assert receiver.events() == ["trigger", "resolve", "trigger"]
        assert g("embguard_checks_total", {"collection": "kb", "outcome": "skipped"}) == 4
        # The skipped check is what `status` shows as the last check; the decision it leaves standing persists.
        state = StateDir(daemon.settings.state.dir)
        last, decision = read_check_report(state, "kb"), read_evidence(state, "kb")
        assert last is not None and last.skipped
        assert decision is not None and decision.sustained
    finally:
        daemon.stop()


# --- item 9: an unwritable state directory ------------------------------------------------------------------------


def test_an_unwritable_state_dir_is_reported_once_served_and_recovered(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path)
    state = settings.state.dir
    caplog.set_level("DEBUG", logger="embguard")
    daemon = Daemon(settings, registry=CollectorRegistry(), milvus_watch_s=0.5)
    try:
        with read_only(state):
            daemon.start()
            url = f"http://127.0.0.1:{settings.metrics.port}"
            for seed in (1, 2, 3):  # checks keep running; their results are not saved
                _check(daemon, synthetic_window(seed, 100))
            code, _, body = http_get(url + "/readyz")
            detail = json.loads(body)
            assert code == 503 and detail["state"].startswith("not writable") and "EPERM" in detail["state"]
            assert str(state) in detail["state"]
            g = daemon.registry.get_sample_value
            assert g("embguard_state_writable") == 0 and (g("embguard_state_write_errors_total") or 0) >= 4
            assert http_get(url + "/metrics")[0] == 200 and http_get(url + "/healthz")[0] == 200
            said = [r for r in caplog.records if r.levelname == "ERROR" and "is not writable" in r.getMessage()]
            assert len(said) == 1, [r.getMessage() for r in said]  # one clear line, not one per write
            line = said[0].getMessage()
            assert str(state) in line and "EPERM" in line and "free disk space" in line
            assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
        # Writable again: the watch tick notices within a period, without waiting for the next check.
        wait_until(
            lambda: daemon.registry.get_sample_value("embguard_state_writable") == 1,
            10,
            interval_s=0.2,
            what="recovery",
        )
        assert json.loads(http_get(url + "/readyz")[2])["state"] == "writable"
        _check(daemon, synthetic_window(4, 100))
        assert read_check_report(StateDir(state), "kb") is not None
    finally:
        daemon.stop()


# --- item 10: /metrics under a burst of scrapes --------------------------------------------------------------------


# --- series initialised at start, swap events --------------------------------------------------------------------


def test_check_series_exist_for_every_collection_from_start(tmp_path: Path) -> None:
    settings = _settings(tmp_path, EMBGUARD_COLLECTIONS='[{name="kb"}, {name="docs"}]')
    daemon = Daemon(settings, registry=CollectorRegistry())
    g = daemon.registry.get_sample_value
    try:
        for c in ("kb", "docs"):
            assert g("embguard_last_check_timestamp_seconds", {"collection": c}) == 0
            assert g("embguard_drift_sustained", {"collection": c, "monitor": COMBINED}) == 0
            assert g("embguard_checks_created", {"collection": c, "outcome": "ok"}) is not None
            assert g("embguard_swap_events_total", {"collection": c, "event": "switch"}) == 0
        report = _check(daemon, synthetic_window(1, 100))
    finally:
        daemon.stop()
    restarted = Daemon(settings, registry=CollectorRegistry())
    try:  # after a restart the last completed check is the one on record
        assert restarted.registry.get_sample_value(
            "embguard_last_check_timestamp_seconds", {"collection": "kb"}
        ) == pytest.approx(report.checked_at)
    finally:
        restarted.stop()


def test_swap_events_count_the_persisted_history_across_restarts(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    store = SwapStore(settings.state.dir)
    st = SwapState("kb", "kb__v1", "kb__v0002", "a", "v0002", "b", phase="done")
    st.history = [
        SwapEvent("switch", 1.0, "kb__v1", "kb__v0002"),
        SwapEvent("rollback", 2.0, "kb__v0002", "kb__v1"),
        SwapEvent("abort", 3.0, target="kb__v0003", phase="dual_write"),
    ]
    store.save(st)

    def counts(d: Daemon) -> dict[str, float | None]:
        return {
            e: d.registry.get_sample_value("embguard_swap_events_total", {"collection": "kb", "event": e})
            for e in ("approve", "switch", "rollback", "abort")
        }

    expected = {"approve": 2.0, "switch": 1.0, "rollback": 1.0, "abort": 1.0}
    first = Daemon(settings, registry=CollectorRegistry())
    assert counts(first) == expected  # from the history, before the first scrape
    first.stop()
    second = Daemon(settings, registry=CollectorRegistry())
    try:
        assert counts(second) == expected  # a restart is no increase
        st.history.append(SwapEvent("switch", 4.0, "kb__v1", "kb__v0004"))
        store.save(st)
        from embguard.daemon.check_jobs import publish_swaps

        publish_swaps(settings, second._collections, second.metrics)
        assert counts(second) == {**expected, "approve": 3.0, "switch": 2.0}
    finally:
        second.stop()


# --- the reconnect back-off ---------------------------------------------------------------------------------------


def test_backoff_is_exponential_with_jitter_and_capped() -> None:
    b = Backoff(1.0, 8.0, random.Random(42))
    waits = [b.next() for _ in range(7)]
    rng = random.Random(42)
    assert waits == [rng.uniform(d / 2, d) for d in (1, 2, 4, 8, 8, 8, 8)]  # the schedule, reproducible
    for w, d in zip(waits, (1, 2, 4, 8, 8, 8, 8), strict=True):
        assert d / 2 <= w <= d
    b.reset()
    assert b.next() <= 1.0


def test_connection_waits_the_backoff_between_attempts(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    now = [1000.0]
    conn = Connection(
        settings,
        Gauge("up", "x", registry=CollectorRegistry()),
        5.0,
        backoff=Backoff(1.0, 8.0, random.Random(7)),
        clock=lambda: now[0],
    )
    conn.watch()  # attempt 1 fails: wait w0
    assert len(conn.waits) == 1 and not conn.is_up
    now[0] += conn.waits[0] * 0.9
    conn.watch()  # too early: no attempt
    assert len(conn.waits) == 1
    for _ in range(3):
        now[0] += conn.waits[-1] + 0.01
        conn.watch()
    rng = random.Random(7)
    assert conn.waits == [rng.uniform(d / 2, d) for d in (1, 2, 4, 8)]
    # Milvus's port accepts again: the next tick tries at once instead of sitting out the back-off.
    port = int(settings.milvus_uri.rsplit(":", 1)[1])
    with socket.create_server(("127.0.0.1", port)):
        conn.watch()
    assert len(conn.waits) == 5  # attempted (and failed: nothing there speaks Milvus)


# --- embguard check and embguard status -------------------------------------------------------------------------


def test_check_and_status_exit_2_when_milvus_is_unreachable(tmp_path: Path, clean_env: None) -> None:
    env = settings_env(tmp_path, None, **daemon_env(tmp_path))
    res = cli_run(env, "check")
    assert res.exit_code == 2 and "verdict: error" in res.output and "Traceback" not in res.output
    res = cli_run(env, "check", "--json")
    assert res.exit_code == 2 and json.loads(res.output)["verdict"] == "error"
    res = cli_run(env, "check", "--collection", "nope")
    assert res.exit_code == 2 and "'nope' is not watched" in res.output
    res = cli_run(env, "status")
    assert res.exit_code == 2 and res.output.strip().splitlines()[-1].startswith("Error: Milvus at")
    res = cli_run(env, "status", "--json")
    assert res.exit_code == 2 and json.loads(res.output)["exit_code"] == 2


def test_status_shows_ood_clusters_with_example_texts(tmp_path: Path, clean_env: None) -> None:
    env = settings_env(tmp_path, None, **daemon_env(tmp_path))
    daemon = Daemon(config.load(None, environ=env), registry=CollectorRegistry())
    try:
        w = daemon._collections["kb"]
        w.window = synthetic_window(1, 3, texts=("how do I reset my password", "reset password", ""))
        cluster = {"size": 3, "share": 0.3, "distance": 0.7, "rows": [0, 1, 2]}
        report = CheckReport("kb", "kb__v1", "m", 1, 200, 100, time.time(), clusters=(cluster,))
        daemon._record(w, report)
    finally:
        daemon.stop()
    data = json.loads(cli_run(env, "status", "--json").output)
    (shown,) = data["collections"]["kb"]["last_check"]["clusters"]
    assert shown["examples"] == ["how do I reset my password", "reset password"] and "rows" not in shown
    text = cli_run(env, "status").output
    assert "new cluster: 30% of queries (3)" in text and "'reset password'" in text


# --- /metrics under a burst of scrapes ---------------------------------------------------------------------


def test_a_hundred_concurrent_scrapes_all_succeed(exporter: str) -> None:
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(lambda _: http_get(exporter + "/metrics", timeout=30), range(100)))
    assert [code for code, _, _ in results] == [200] * 100
    assert all(b"embguard_test_gauge" in body for _, _, body in results)


def test_metrics_negotiate_openmetrics_and_gzip_and_the_probes_stay(exporter: str) -> None:
    code, headers, body = http_get(exporter + "/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})
    assert code == 200 and headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    code, headers, body = http_get(exporter + "/metrics", {"Accept-Encoding": "gzip"})
    assert code == 200 and headers.get("Content-Encoding") == "gzip"
    assert b"embguard_test_gauge" in gzip.decompress(body)
    assert headers["Content-Type"].startswith("text/plain")
    assert http_get(exporter + "/healthz")[0] == 200
    code, _, body = http_get(exporter + "/readyz")
    assert code == 503 and json.loads(body)["milvus"] == "down"
    assert http_get(exporter + "/nope")[0] == 404
