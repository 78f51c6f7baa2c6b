"""``embguard serve``: the sidecar daemon.

Jobs run on intervals from ``[schedule]`` (:mod:`embguard.daemon.scheduler`, the one APScheduler home). Every job
runs inside a wrapper that times it, counts its outcome and swallows its exception (logged), so one failing tick
never takes the daemon down and the next tick simply tries again. Milvus going away is expected: ``milvus_watch``
notices, reports it (``embguard_milvus_up``, ``/readyz``), reconnects (:mod:`embguard.daemon.reconnect`), and the
other jobs skip until it is back.

This module only schedules, connects, exports and handles signals. What the jobs do lives in plain functions:
sampling and checking in :mod:`embguard.daemon.check_jobs`, the retrain rule in
:mod:`embguard.daemon.retrain_policy`, what pages and its wording in :mod:`embguard.daemon.active_alerts` (sent by
:mod:`embguard.daemon.pager`), files in :mod:`embguard.config.statedir`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from embguard import __version__
from embguard.checks.references import ReferenceStore
from embguard.checks.reports import CheckReport, read_evidence, write_check_report, write_evidence
from embguard.client.retention import Pins, prune
from embguard.config.credentials import redact_uri
from embguard.config.settings import Settings
from embguard.config.statedir import StateDir, StateHealth
from embguard.daemon import clusters, scheduler
from embguard.daemon import retrain_policy as policy
from embguard.daemon.check_jobs import check_collection, publish_stored, publish_swaps, sample_queries
from embguard.daemon.metrics import Metrics
from embguard.daemon.pager import Pager
from embguard.daemon.reconnect import Connection
from embguard.daemon.watched import Watched
from embguard.errors import EmbguardError, MilvusUnavailable
from embguard.http.exporter import Exporter
from embguard.milvus.milvus import Milvus

log = logging.getLogger(__name__)
JOBS = ("milvus_watch", "sample", "check", "prune", "retrain_policy")


class Daemon:
    """The sidecar: schedules jobs, owns the Milvus connection, exports metrics, raises alerts."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        notifier: Any = None,
        milvus_watch_s: float = 5.0,
    ):
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.metrics.build_info.labels(__version__).set(1)
        self.state = StateDir(settings.state.dir)
        self.state_health = StateHealth(
            self.state, on_change=self._state_writable, on_error=self.metrics.state_write_errors.inc
        )
        self._pid_pending = False
        self.references = ReferenceStore(settings.state.dir)
        self.pins = Pins(settings.state.dir)
        self.notifier = notifier if notifier is not None else self._default_notifier()
        self._collections = {c.name: Watched(c) for c in settings.collections}
        self.connection = Connection(settings, self.metrics.milvus_up, milvus_watch_s)
        self.pager = Pager(settings, self._collections, self.milvus, lambda: self.milvus_up, self.notifier)
        self._milvus_watch_s = milvus_watch_s
        self._stop = threading.Event()
        self._started_at = time.time()
        self._scheduler: Any = None  # a started APScheduler scheduler (embguard.daemon.scheduler)
        self._exporter: Exporter | None = None
        self._restore()
        self.metrics.init_series(
            self._collections,
            JOBS,
            settings.drift.alpha,
            settings.schedule.check_interval_s,
            monitors=settings.drift.monitors,
        )
        for w in self._collections.values():
            if w.evidence is not None:  # the decision a previous daemon left: drift_sustained agrees with its page
                self.metrics.publish_decision(w.evidence)
        # Swap event counters from the persisted history before the first scrape, so a restart is no increase.
        publish_swaps(settings, self._collections, self.metrics)

    def _restore(self) -> None:
        """Each collection's last decision, persisted by the previous daemon: an incident open before a restart
        stays open (no resolve, no new trigger) and the next check continues its streaks."""
        for alias, w in self._collections.items():
            try:
                w.restore(read_evidence(self.state, alias))
            except EmbguardError as exc:  # an unreadable file: start without it, named in the log
                log.error("%s", exc)
            if w.evidence is not None:
                log.info("%s: restored the last decision: %s", alias, w.evidence.summary())

    def _state_writable(self, writable: bool) -> None:
        self.metrics.state_writable.set(int(writable))
        if writable and self._pid_pending:
            self._write_pid()

    def _write_pid(self) -> None:
        self._pid_pending = (
            self.state_health.write("the pid file", lambda: self.state.write_daemon_pid(os.getpid())) is None
        )

    def _default_notifier(self) -> Any:
        if not self.settings.alerts:
            return None
        from embguard.alerts.notifier import Notifier

        # Background delivery: a webhook host that never answers must not hold up checks or the watch.
        return Notifier(self.settings.alerts, state_path=self.state.alerts, registry=self.registry, background=True)

    # --- Milvus connection ----------------------------------------------------------------------------------

    @property
    def milvus_up(self) -> bool:
        return self.connection.is_up

    def milvus(self) -> Milvus:
        return self.connection.get()

    def job_milvus_watch(self) -> None:
        self.state_health.probe()  # while state writes fail: notices the directory is writable again
        self.connection.watch()

    # --- jobs ------------------------------------------------------------------------------------------------

    def _run(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        outcome = "success"
        conn = self.connection.current
        try:
            fn()
            self.metrics.job_last_success.labels(name).set(time.time())
        except MilvusUnavailable as exc:
            outcome = "skipped"
            if name != "milvus_watch":
                self.connection.lost(exc, conn)
            log.info("job %s skipped: %s", name, exc)
        except EmbguardError as exc:  # a known condition (a corrupt state file...): its message names the fix
            outcome = "failure"
            log.error("job %s failed: %s", name, redact_uri(str(exc)))
        except Exception as exc:  # a failing job must never take the daemon down
            outcome = "failure"
            log.exception("job %s failed: %s", name, exc)
        finally:
            self.metrics.job_runs.labels(name, outcome).inc()
            self.metrics.job_duration.labels(name).observe(time.perf_counter() - t0)
        if name == "milvus_watch":
            # Alerts are evaluated on every watch tick, so MilvusDown pages (and resolves) within one watch
            # period instead of waiting for a check or the hourly retrain policy.
            self.pager.milvus_watched = True
            self._notify()

    def job_sample(self) -> None:
        publish_swaps(self.settings, self._collections, self.metrics)
        m = self.milvus()
        now = int(time.time() * 1000)
        for alias, w in self._collections.items():
            if self._stop.is_set():
                return
            window = sample_queries(m, w, now - self.settings.sampling.window_s * 1000, now, self.metrics)
            publish_stored(m, alias, window.meta["tap_collection"], self.metrics)

    def _check_one(self, w: Watched) -> CheckReport:
        return check_collection(self.settings, self.milvus, w, self.references, self.metrics)

    def check_window(self, alias: str, start_ms: int, end_ms: int) -> CheckReport:
        """Sample ``[start_ms, end_ms)`` for ``alias`` and check it now (demos, tests, backfills of history)."""
        self._run("milvus_watch", self.job_milvus_watch)
        w = self._collections[alias]
        sample_queries(self.milvus(), w, start_ms, end_ms, self.metrics)
        return self._record(w, self._check_one(w))

    def _record(self, w: Watched, report: CheckReport) -> CheckReport:
        """Keep a check's outcome: the page, the drift gauges and the persisted decision all come from
        ``w.evidence``, which only a check that tested a window changes."""
        report = clusters.describe_report(w, report, self.pager.describe_cluster)
        w.record(report)
        self.metrics.count_check(report)
        if report.tested:
            self.metrics.publish_decision(report)
        alias = report.collection
        self.state_health.write(f"the check report of {alias}", lambda: write_check_report(self.state, report))
        if report.tested:
            self.state_health.write(f"the drift decision of {alias}", lambda: write_evidence(self.state, report))
        return report

    def job_check(self) -> None:
        for alias, w in self._collections.items():
            if self._stop.is_set():
                return
            try:
                report = self._check_one(w)
            except MilvusUnavailable:
                raise
            except EmbguardError as exc:
                message = redact_uri(str(exc))
                log.warning("check of %s failed: %s", alias, message)
                self._record(w, CheckReport.failure(alias, message, time.time()))
                continue
            log.info("%s", self._record(w, report).summary())
        self._notify()

    def reports(self) -> dict[str, CheckReport | None]:
        """The latest check report of every watched collection (``None`` before its first check)."""
        return {alias: w.report for alias, w in self._collections.items()}

    def alerts(self) -> list[Any]:
        """The alerts active now (see :class:`embguard.daemon.pager.Pager`)."""
        return self.pager.alerts()

    def _notify(self) -> None:
        self.pager.notify()

    def job_prune(self) -> None:
        s = self.settings.sampling
        res = prune(
            self.milvus(),
            self.pins,
            tap_max_age_s=s.tap_max_age_s,
            tap_max_rows=s.tap_max_rows,
            feedback_max_age_s=s.feedback_max_age_s,
        )
        if res.tap_deleted or res.feedback_deleted:
            log.info("pruned %d tapped queries and %d feedback rows", res.tap_deleted, res.feedback_deleted)

    def job_retrain_policy(self) -> None:
        """Build a candidate when drift has been sustained and enough feedback arrived since the last model."""
        policy.run(self.settings, self.milvus(), self._collections, self.metrics, stop=self._stop)
        self._notify()

    # --- lifecycle -------------------------------------------------------------------------------------------

    def run_once(self) -> None:
        """Every job once, in order (``embguard serve --once``, tests, cron)."""
        self._run("milvus_watch", self.job_milvus_watch)
        for name in ("sample", "check", "prune", "retrain_policy"):
            self._run(name, getattr(self, f"job_{name}"))

    def health(self) -> tuple[bool, dict[str, Any]]:
        running = scheduler.running(self._scheduler) and not self._stop.is_set()
        return running, {"uptime_s": round(time.time() - self._started_at, 1), "pid": os.getpid()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        writable = self.state_health.writable
        ok = self.milvus_up and writable and not self._stop.is_set()
        return ok, {
            "milvus": "up" if self.milvus_up else "down",
            "state": "writable" if writable else f"not writable: {self.state_health.problem}",
            "uri": redact_uri(self.settings.milvus_uri),
            "collections": {
                a: (st.report.summary() if st.report else "not checked yet") for a, st in self._collections.items()
            },
        }

    def start(self, serve_metrics: bool = True) -> None:
        if serve_metrics:
            self._exporter = Exporter(
                self.registry, self.settings.metrics.host, self.settings.metrics.port, self.health, self.ready
            )
            self._exporter.start()
        sc = self.settings.schedule
        intervals = {
            "milvus_watch": self._milvus_watch_s,
            "sample": sc.sample_interval_s,
            "check": sc.check_interval_s,
            "prune": sc.prune_interval_s,
            "retrain_policy": sc.retrain_interval_s,
        }
        self.state_health.probe(force=True)  # a read-only or full state.dir shows in /readyz from the start
        self._run("milvus_watch", self.job_milvus_watch)
        jobs = {name: (getattr(self, f"job_{name}"), float(every)) for name, every in intervals.items()}
        self._scheduler = scheduler.start_jobs(self._run, jobs)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking new work, give running jobs ``timeout_s`` to finish, release everything."""
        self._stop.set()
        if self._scheduler is not None:
            scheduler.stop_jobs(self._scheduler, timeout_s)
        if self._exporter is not None:
            self._exporter.stop()
        if self.notifier is not None:
            try:
                self.notifier.close()
            except Exception:  # shutting down: an undeliverable alert is already logged by the notifier
                log.debug("closing the notifier failed", exc_info=True)
        self.connection.close()

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        host, port = self._exporter.address if self._exporter else ("-", 0)
        log.info(
            "embguard %s serving metrics on http://%s:%d/metrics, watching %s",
            __version__,
            host,
            port,
            ", ".join(self._collections) or "no collections",
        )
        self._write_pid()  # an unwritable state.dir is logged and retried, never fatal
        try:
            while not stop.wait(0.5):
                pass
        finally:
            log.info("stopping")
            self.stop()
            with contextlib.suppress(OSError):
                self.state.daemon_pid.unlink(missing_ok=True)
