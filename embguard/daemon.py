"""``embguard serve``: the sidecar daemon. The one module that imports APScheduler.

Jobs run on intervals from ``[schedule]``; APScheduler never runs a job alongside itself
(``max_instances=1``) and folds missed runs into one (``coalesce``). Every job runs inside a wrapper that
times it, counts its outcome and swallows its exception (logged), so one failing tick never takes the
daemon down and the next tick simply tries again. Milvus going away is expected: ``milvus_watch`` notices,
reports it (``embguard_milvus_up``, ``/readyz``), reconnects with exponential backoff, and the other jobs
skip until it is back.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from apscheduler.schedulers.background import BackgroundScheduler
except ModuleNotFoundError as exc:  # the core install is the application-side client only
    raise ModuleNotFoundError("the embguard daemon needs APScheduler, which is not installed; "
                              "run: pip install 'embguard[serve]'", name=exc.name) from exc
from prometheus_client import CollectorRegistry

from . import __version__
from .checks import CheckReport, CollectionMonitor
from .config import CollectionSettings, Settings, redact_uri
from .errors import EmbguardError, MilvusUnavailable
from .exporter import Exporter
from .metrics import REINDEX_STATES, RETRAIN_STATES, Metrics
from .milvus import MODEL_ID_PROPERTY, Milvus, literal
from .references import ReferenceMissing, ReferenceStore
from .retention import Pins, prune
from .sampling import Window, query_window, sample_documents
from .tap import FEEDBACK_COLLECTION, SIGNALS

log = logging.getLogger(__name__)
CORPUS_MAX_AGE_S = 6 * 3600
JOBS = ("milvus_watch", "sample", "check", "prune", "retrain_policy")


@dataclass
class _Collection:
    spec: CollectionSettings
    window: Window | None = None
    monitor: CollectionMonitor | None = None
    corpus: Window | None = None
    corpus_at: float = 0.0
    report: CheckReport | None = None
    # Whether a check with a sampled window ran since start: until then a remembered drift alert is neither
    # confirmed nor cleared, so it must not be resolved (item: spurious resolve on every restart).
    evaluated: bool = False
    # (report, cluster descriptions) of the last alert built, so alerts re-evaluated every watch tick do not
    # query Milvus for example texts each time.
    clusters: tuple[Any, tuple[Any, ...]] | None = None


class Daemon:
    """The sidecar: schedules jobs, owns the Milvus connection, exports metrics, raises alerts."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None, notifier: Any = None,
                 milvus_watch_s: float = 5.0):
        self.settings = settings
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.metrics.build_info.labels(__version__).set(1)
        self.references = ReferenceStore(settings.state.dir)
        self.pins = Pins(settings.state.dir)
        self.notifier = notifier if notifier is not None else self._default_notifier()
        self._collections = {c.name: _Collection(c) for c in settings.collections}
        self._milvus: Milvus | None = None
        self._milvus_lock = threading.Lock()
        self._backoff_s = 1.0
        self._next_connect = 0.0
        self._down_logged = 0.0
        self._milvus_watch_s = milvus_watch_s
        self._watched = False  # milvus_watch ran at least once: MilvusDown is known either way
        self._registry_ok = True
        self._stop = threading.Event()
        self._started_at = time.time()
        self._scheduler: BackgroundScheduler | None = None
        self._exporter: Exporter | None = None
        self.metrics.milvus_up.set(0)
        for c in self._collections:
            self.metrics.drift_alpha.labels(c).set(settings.drift.alpha)
            self.metrics.set_state(self.metrics.retrain_state, c, "idle", RETRAIN_STATES)
            self.metrics.candidate_awaiting.labels(c).set(0)
            # Every per-collection series exists from the start, so dashboards and alert rules never see
            # "no data" where the truthful answer is "nothing happening".
            self.metrics.set_state(self.metrics.reindex_state, c, "idle", REINDEX_STATES)
            self.metrics.reindex_progress.labels(c).set(0)
            self.metrics.reindex_rate.labels(c).set(0)
            self.metrics.reindex_last_progress.labels(c).set(0)
            for outcome in ("ok", "error", "skipped"):
                self.metrics.checks_total.labels(c, outcome)
        for job in JOBS:
            for outcome in ("success", "failure", "skipped"):
                self.metrics.job_runs.labels(job, outcome)

    def _default_notifier(self) -> Any:
        if not self.settings.alerts:
            return None
        from .alerts import Notifier

        # Background delivery: a webhook host that never answers must not hold up checks or the watch.
        return Notifier(self.settings.alerts, state_path=self.settings.state.dir / "alerts.json",
                        registry=self.registry, background=True)

    # --- Milvus connection ----------------------------------------------------------------------------------

    @property
    def milvus_up(self) -> bool:
        return self._milvus is not None

    def milvus(self) -> Milvus:
        m = self._milvus
        if m is None:
            raise MilvusUnavailable(f"Milvus at {self.settings.milvus_uri} is not connected; waiting to reconnect")
        return m

    def _lost(self, exc: BaseException, conn: Milvus | None) -> None:
        """A job found Milvus gone on ``conn``, the connection it started with. Only that one is closed: the
        watch may have reconnected meanwhile, and closing its fresh connection would undo every recovery
        (with short intervals the daemon then never came back)."""
        with self._milvus_lock:
            if self._milvus is not None and self._milvus is conn:
                log.warning("lost Milvus at %s: %s", self.settings.milvus_uri, exc)
                self._milvus.close()
                self._milvus = None
                self._next_connect = time.monotonic()
            self.metrics.milvus_up.set(0)

    def job_milvus_watch(self) -> None:
        with self._milvus_lock:
            if self._milvus is not None:
                if self._milvus.ping():
                    self.metrics.milvus_up.set(1)
                    return
                log.warning("Milvus at %s stopped answering", self.settings.milvus_uri)
                self._milvus.close()
                self._milvus = None
                self._next_connect = time.monotonic()
            self.metrics.milvus_up.set(0)
            if time.monotonic() < self._next_connect:
                return
            try:
                self._milvus = Milvus.connect(self.settings)
            except MilvusUnavailable as exc:
                # The watch period is the back-off: one connect attempt per tick costs nothing, and a longer
                # back-off would keep /readyz at 503 long after Milvus is back.
                self._backoff_s = min(self._backoff_s * 2, self._milvus_watch_s)
                self._next_connect = time.monotonic() + self._backoff_s
                now = time.monotonic()
                if now - self._down_logged >= 60.0:
                    self._down_logged = now
                    log.warning("%s (retrying every %.0f s; logged once a minute)", redact_uri(str(exc)),
                                self._milvus_watch_s)
                return
            self._backoff_s = 1.0
            self._down_logged = 0.0
            self.metrics.milvus_up.set(1)
            log.info("connected to Milvus at %s (%s)", self.settings.milvus_uri, self._milvus.server_version)

    # --- jobs ------------------------------------------------------------------------------------------------

    def _run(self, name: str, fn: Callable[[], None]) -> None:
        t0 = time.perf_counter()
        outcome = "success"
        conn = self._milvus
        try:
            fn()
            self.metrics.job_last_success.labels(name).set(time.time())
        except MilvusUnavailable as exc:
            outcome = "skipped"
            if name != "milvus_watch":
                self._lost(exc, conn)
            log.info("job %s skipped: %s", name, exc)
        except EmbguardError as exc:  # a known condition (a corrupt state file...): its message names the fix
            outcome = "failure"
            log.error("job %s failed: %s", name, redact_uri(str(exc)))
        except Exception as exc:  # noqa: BLE001 - a failing job must never take the daemon down
            outcome = "failure"
            log.exception("job %s failed: %s", name, exc)
        finally:
            self.metrics.job_runs.labels(name, outcome).inc()
            self.metrics.job_duration.labels(name).observe(time.perf_counter() - t0)
        if name == "milvus_watch":
            # Alerts are evaluated on every watch tick, so MilvusDown pages (and resolves) within one watch
            # period instead of waiting for a check or the hourly retrain policy.
            self._watched = True
            self._notify()

    def _publish_swaps(self) -> None:
        from .swap import SwapStore

        phase_to_state = {"planned": "backfilling", "created": "backfilling", "dual_write": "backfilling",
                          "backfilled": "verifying", "reconciled": "verifying", "verified": "switching",
                          "switched": "switching", "done": "done"}
        try:
            states = SwapStore(self.settings.state.dir).all()
        except EmbguardError as exc:  # a corrupt swap state must not stop sampling; say which file, once a tick
            log.error("%s", exc)
            return
        for st in states:
            if st.alias not in self._collections:
                continue
            state = "failed" if st.error else phase_to_state.get(st.phase, "idle")
            self.metrics.set_state(self.metrics.reindex_state, st.alias, state, REINDEX_STATES)
            self.metrics.reindex_progress.labels(st.alias).set(st.done / st.total if st.total else 0.0)
            self.metrics.reindex_rate.labels(st.alias).set(st.rate if state == "backfilling" else 0.0)
            self.metrics.reindex_last_progress.labels(st.alias).set(st.updated_at)

    def job_sample(self) -> None:
        self._publish_swaps()
        m = self.milvus()
        now = int(time.time() * 1000)
        for alias, st in self._collections.items():
            if self._stop.is_set():
                return
            window = self._sample(alias, st, now - self.settings.sampling.window_s * 1000, now)
            tap = window.meta["tap_collection"]
            if m.has_collection(tap):
                self.metrics.tap_stored.labels(alias).set(m.count(tap, filter=f'alias == {literal(alias)}'))
            if m.has_collection(FEEDBACK_COLLECTION):
                for sig in SIGNALS:
                    self.metrics.feedback_stored.labels(alias, sig).set(
                        m.count(FEEDBACK_COLLECTION, filter=f'alias == {literal(alias)} and signal == {literal(sig)}'))

    def _sample(self, alias: str, st: _Collection, start_ms: int, end_ms: int) -> Window:
        st.window = query_window(self.milvus(), alias, start_ms, end_ms)
        self.metrics.window_size.labels(alias, "queries").set(st.window.size)
        self.metrics.windows_total.labels(alias, "queries").inc()
        return st.window

    def _lookup(self, collection: str, spec: CollectionSettings) -> Callable[[Sequence[Any]], dict[Any, np.ndarray]]:
        def lookup(ids: Sequence[Any]) -> dict[Any, np.ndarray]:
            rows = self.milvus().query(collection, ids=list(ids), output_fields=[spec.id_field, spec.vector_field])
            return {r[spec.id_field]: np.asarray(r[spec.vector_field], dtype=np.float32) for r in rows}

        return lookup

    def _check_one(self, alias: str, st: _Collection) -> CheckReport:
        m = self.milvus()
        served_by = m.resolve(alias)
        model_id = m.properties(served_by).get(MODEL_ID_PROPERTY, "")
        self.metrics.set_active_model(alias, model_id or "unknown", served_by)
        now = time.time()

        def skipped(reason: str) -> CheckReport:
            return CheckReport(collection=alias, served_by=served_by, model_id=model_id, reference_version=0,
                               n_reference=0, n_current=st.window.size if st.window else 0, checked_at=now,
                               skipped=reason)

        try:
            ref = self.references.latest(alias, "queries")
        except ReferenceMissing as exc:
            return skipped(str(exc))
        self.metrics.reference_age.labels(alias).set(ref.age_s)
        self.metrics.reference_size.labels(alias).set(ref.size)
        if ref.model_id != model_id:
            return skipped(f"reference v{ref.version:04d} was made by {ref.model_id}, but {alias} is served by "
                           f"{model_id}; capture a new baseline with `embguard baseline capture {alias}`")
        if st.monitor is None or st.monitor.reference_version != ref.version or st.monitor.model_id != model_id:
            if "retrieval" in self.settings.drift.monitors and (st.corpus is None or st.corpus.collection != served_by
                                                                 or now - st.corpus_at > CORPUS_MAX_AGE_S):
                st.corpus = sample_documents(m, st.spec, self.settings.sampling.doc_sample_size, with_text=False)
                st.corpus_at = now
                self.metrics.window_size.labels(alias, "documents").set(st.corpus.size)
                self.metrics.windows_total.labels(alias, "documents").inc()
            st.monitor = CollectionMonitor(alias, self.settings.drift, self.references.load(ref), ref.version,
                                           corpus=st.corpus, lookup=self._lookup(served_by, st.spec),
                                           window_s=self.settings.sampling.window_s)
        if st.window is None:
            return skipped("no query window sampled yet")
        return st.monitor.check(st.window, served_by)

    def check_window(self, alias: str, start_ms: int, end_ms: int) -> CheckReport:
        """Sample ``[start_ms, end_ms)`` for ``alias`` and check it now (demos, tests, backfills of history)."""
        self._run("milvus_watch", self.job_milvus_watch)
        st = self._collections[alias]
        self._sample(alias, st, start_ms, end_ms)
        return self._record(st, self._check_one(alias, st))

    def _record(self, st: _Collection, report: CheckReport) -> CheckReport:
        st.report = report
        st.evaluated = st.evaluated or st.window is not None
        self._publish(report)
        self._write_report(report)
        return report

    def _publish(self, report: CheckReport) -> None:
        alias = report.collection
        mt = self.metrics
        mt.checks_total.labels(alias, "skipped" if report.skipped else "ok").inc()
        if report.skipped:
            return
        for o in report.outcomes:
            mt.drift_statistic.labels(alias, o.monitor).set(o.statistic)
            if o.p_value is not None:
                mt.drift_p_value.labels(alias, o.monitor).set(max(o.p_value, 1e-300))
            mt.drift_detected.labels(alias, o.monitor).set(int(o.drift))
            mt.drift_sustained.labels(alias, o.monitor).set(int(o.sustained))
            mt.drift_consecutive.labels(alias, o.monitor).set(o.consecutive)
        if report.ood_rate is not None:
            mt.ood_rate.labels(alias).set(report.ood_rate)
            mt.ood_expected.labels(alias).set(report.ood_expected_rate or 0.0)
        for q, v in report.top1_quantiles.items():
            mt.top1.labels(alias, q).set(v)
        mt.last_check.labels(alias).set(report.checked_at)

    def _write_report(self, report: CheckReport) -> None:
        d = self.settings.state.dir / "checks"
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{report.collection}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(report.to_json(), indent=2, default=str))
        tmp.replace(path)

    def job_check(self) -> None:
        for alias, st in self._collections.items():
            if self._stop.is_set():
                return
            try:
                report = self._check_one(alias, st)
            except MilvusUnavailable:
                raise
            except EmbguardError as exc:
                log.warning("check of %s failed: %s", alias, exc)
                self.metrics.checks_total.labels(alias, "error").inc()
                continue
            log.info("%s", self._record(st, report).summary())
        self._notify()

    def alerts(self) -> list[Any]:
        """The alerts active now, from the latest reports (the notifier dedups and resolves)."""
        from .alerts import Alert

        out = []
        awaiting = self._awaiting_by_alias()
        if not self.milvus_up:
            out.append(Alert(key="milvus", name="MilvusDown", collection="", severity="critical",
                             summary=f"embguard cannot reach Milvus at {redact_uri(self.settings.milvus_uri)}",
                             next_command="embguard status"))
        for alias, st in self._collections.items():
            r = st.report
            if r is None or r.skipped:
                continue
            numbers = {o.monitor: {"p_value": o.p_value, "statistic": o.statistic, "consecutive": o.consecutive}
                       for o in r.outcomes}
            numbers.update({"window_queries": r.n_current, "reference_queries": r.n_reference,
                            "ood_rate": r.ood_rate, "ood_expected_rate": r.ood_expected_rate})
            if st.clusters is None or st.clusters[0] is not r:
                st.clusters = (r, tuple(self._describe_cluster(st, c) for c in r.clusters[:3]))
            clusters = st.clusters[1]
            if r.sustained:
                hits = ", ".join(f"{o.monitor} p={o.p_value:.2g}" for o in r.outcomes if o.sustained and o.p_value
                                 is not None)
                carried = getattr(r, "carried_by", ())  # the combined page names the monitors that carried it
                if carried:
                    hits += f"; carried by {', '.join(carried)}"
                out.append(Alert(key=f"drift:{alias}", name="EmbeddingDriftSustained", collection=alias,
                                 severity="warning",
                                 summary=f"{alias}: query drift sustained over {self.settings.drift.consecutive} "
                                         f"checks ({hits})", details=numbers, clusters=clusters,
                                 next_command=f"embguard retrain --collection {alias}"))
            for v in awaiting.get(alias, []):
                out.append(Alert(key=f"candidate:{alias}:{v.version}", name="CandidateAwaitingApproval",
                                 collection=alias, severity="info",
                                 summary=f"{alias}: candidate {v.version} passed the gate (nDCG@10 "
                                         f"{v.verdict.get('base_mean', 0):.3f} -> {v.verdict.get('candidate_mean', 0):.3f})",
                                 details={"reasons": list(v.verdict.get("reasons", []))},
                                 next_command=f"embguard retrain --approve --candidate {v.version} --collection {alias}"))
            ood = next((o for o in r.outcomes if o.monitor == "ood"), None)
            if ood is not None and ood.sustained and r.ood_rate and r.ood_expected_rate:
                out.append(Alert(key=f"ood:{alias}", name="OODRateHigh", collection=alias, severity="warning",
                                 summary=f"{alias}: {100 * r.ood_rate:.0f}% of queries out of distribution "
                                         f"(expected {100 * r.ood_expected_rate:.0f}%)", details=numbers,
                                 clusters=clusters, next_command="embguard status"))
        return out

    def _awaiting_by_alias(self) -> dict[str, list[Any]]:
        from .registry import ModelRegistry

        out: dict[str, list[Any]] = {}
        try:
            for v in ModelRegistry(self.settings.model.store_dir).awaiting():
                out.setdefault(v.extra.get("alias"), []).append(v)
            self._registry_ok = True
        except EmbguardError as exc:  # a corrupt manifest: candidate alerts stay as they were, named in the log
            if self._registry_ok:
                log.error("%s", exc)
            self._registry_ok = False
        return out

    def _settled(self, key: str) -> bool:
        """Whether the condition behind alert ``key`` has been evaluated since this daemon started."""
        kind, _, rest = key.partition(":")
        if kind == "milvus":
            return self._watched
        if kind in ("drift", "ood"):
            st = self._collections.get(rest)
            return st is None or st.evaluated  # a collection no longer watched: resolve what it left open
        if kind == "candidate":
            return self._registry_ok
        return True

    def _describe_cluster(self, st: _Collection, cluster: dict[str, Any]) -> dict[str, Any]:
        w = st.window
        examples: list[str] = []
        if w is not None:
            for row in cluster.get("rows", []):
                if row < len(w.texts) and w.texts[row]:
                    examples.append(w.texts[row][:160])
            if not examples and st.spec.text_field:
                ids = [w.top1_ids[r] for r in cluster.get("rows", []) if r < w.size and w.top1_ids[r] is not None]
                try:
                    rows = self.milvus().query(w.collection, ids=ids, output_fields=[st.spec.text_field])
                    examples = [f"near: {str(x[st.spec.text_field])[:160]}" for x in rows]
                except EmbguardError:
                    pass
        return {"size": cluster["size"], "share": cluster["share"], "distance": cluster["distance"],
                "examples": examples}

    def _notify(self) -> None:
        if self.notifier is None:
            return
        from .alerts import Notifier

        try:
            active = self.alerts()
            if isinstance(self.notifier, Notifier):
                self.notifier.update(active, settled=self._settled)
            else:  # an injected notifier (tests, embedding apps) gets the plain level signal
                self.notifier.update(active)
        except Exception:  # noqa: BLE001 - alerting problems are logged, never fatal
            log.exception("sending alerts failed")

    def job_prune(self) -> None:
        s = self.settings.sampling
        res = prune(self.milvus(), self.pins, tap_max_age_s=s.tap_max_age_s, tap_max_rows=s.tap_max_rows,
                    feedback_max_age_s=s.feedback_max_age_s)
        if res.tap_deleted or res.feedback_deleted:
            log.info("pruned %d tapped queries and %d feedback rows", res.tap_deleted, res.feedback_deleted)

    def job_retrain_policy(self) -> None:
        """Build a candidate when drift has been sustained and enough feedback arrived since the last model."""
        from .registry import ModelRegistry
        from .training import NotEnoughFeedback, build_candidate, feedback_records

        rs = self.settings.retrain
        registry = ModelRegistry(self.settings.model.store_dir)
        waiting = {v.extra.get("alias") for v in registry.awaiting()}
        for alias, st in self._collections.items():
            if self._stop.is_set():
                return
            self.metrics.candidate_awaiting.labels(alias).set(int(alias in waiting))
            if alias in waiting:
                self.metrics.set_state(self.metrics.retrain_state, alias, "awaiting_approval", RETRAIN_STATES)
                continue
            if st.monitor is None or st.report is None or st.report.skipped:
                continue
            streak = max(st.monitor.consecutive.values(), default=0)
            if streak < rs.sustained_checks:
                continue
            m = self.milvus()
            served = m.resolve(alias)
            current = registry.by_model_id(m.properties(served).get(MODEL_ID_PROPERTY, ""))
            since_ms = int(current.created_at * 1000) if current else 0
            records, _ = feedback_records(m, alias, since_ms)
            if len(records) < rs.min_feedback_pairs:
                log.info("%s: drift sustained for %d checks but only %d feedback events since the last model "
                         "(need %d); not retraining yet", alias, streak, len(records), rs.min_feedback_pairs)
                continue
            self.metrics.set_state(self.metrics.retrain_state, alias, "training", RETRAIN_STATES)
            try:
                report = build_candidate(self.settings, m, st.spec, say=log.info, since_ms=since_ms)
            except NotEnoughFeedback as exc:
                log.info("%s", exc)
                self.metrics.set_state(self.metrics.retrain_state, alias, "idle", RETRAIN_STATES)
                continue
            except EmbguardError:
                self.metrics.set_state(self.metrics.retrain_state, alias, "failed", RETRAIN_STATES)
                raise
            log.warning("%s", report)
            if report.promoted and rs.auto_approve:
                from .swap import Swapper

                Swapper(self.settings, m, say=log.info).approve(st.spec, report.version)
                self.metrics.set_state(self.metrics.retrain_state, alias, "idle", RETRAIN_STATES)
                continue
            state = "awaiting_approval" if report.promoted else "rejected"
            self.metrics.set_state(self.metrics.retrain_state, alias, state, RETRAIN_STATES)
            self.metrics.candidate_awaiting.labels(alias).set(int(report.promoted))
        self._notify()

    # --- lifecycle -------------------------------------------------------------------------------------------

    def run_once(self) -> None:
        """Every job once, in order (``embguard serve --once``, tests, cron)."""
        self._run("milvus_watch", self.job_milvus_watch)
        for name in ("sample", "check", "prune", "retrain_policy"):
            self._run(name, getattr(self, f"job_{name}"))

    def health(self) -> tuple[bool, dict[str, Any]]:
        running = self._scheduler is not None and self._scheduler.running and not self._stop.is_set()
        return running, {"uptime_s": round(time.time() - self._started_at, 1), "pid": os.getpid()}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        ok = self.milvus_up and not self._stop.is_set()
        return ok, {"milvus": "up" if self.milvus_up else "down", "uri": redact_uri(self.settings.milvus_uri),
                    "collections": {a: (st.report.summary() if st.report else "not checked yet")
                                    for a, st in self._collections.items()}}

    def start(self, serve_metrics: bool = True) -> None:
        if serve_metrics:
            self._exporter = Exporter(self.registry, self.settings.metrics.host, self.settings.metrics.port,
                                      self.health, self.ready)
            self._exporter.start()
        sched = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30})
        sc = self.settings.schedule
        intervals = {"milvus_watch": self._milvus_watch_s, "sample": sc.sample_interval_s,
                     "check": sc.check_interval_s, "prune": sc.prune_interval_s,
                     "retrain_policy": sc.retrain_interval_s}
        self._run("milvus_watch", self.job_milvus_watch)
        for name, every in intervals.items():
            fn = getattr(self, f"job_{name}")
            sched.add_job(self._run, "interval", args=(name, fn), seconds=every, id=name, name=name,
                          next_run_time=_utcnow_plus(0.2))  # None would add the job paused
        sched.start()
        self._scheduler = sched

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop taking new work, give running jobs ``timeout_s`` to finish, release everything."""
        self._stop.set()
        if self._scheduler is not None:
            done = threading.Event()

            def shutdown() -> None:
                self._scheduler.shutdown(wait=True)  # type: ignore[union-attr]
                done.set()

            threading.Thread(target=shutdown, daemon=True).start()
            if not done.wait(timeout_s):
                log.warning("jobs still running after %.0f s; abandoning them (they hold no partial state)",
                            timeout_s)
        if self._exporter is not None:
            self._exporter.stop()
        if self.notifier is not None:
            try:
                self.notifier.close()
            except Exception:  # noqa: BLE001
                pass
        with self._milvus_lock:
            if self._milvus is not None:
                self._milvus.close()
                self._milvus = None

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT."""
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        self.start()
        host, port = self._exporter.address if self._exporter else ("-", 0)
        log.warning("embguard %s serving metrics on http://%s:%d/metrics, watching %s", __version__, host, port,
                    ", ".join(self._collections) or "no collections")
        pid_file = self.settings.state.dir / "daemon.pid"
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(str(os.getpid()))
        try:
            while not stop.wait(0.5):
                pass
        finally:
            log.warning("stopping")
            self.stop()
            pid_file.unlink(missing_ok=True)


def _utcnow_plus(seconds: float) -> Any:
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) + timedelta(seconds=seconds)
