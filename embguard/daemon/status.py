"""``embguard status``: what the daemon sees, read from the same sources it uses (Milvus and the state dir).

:func:`gather` returns a typed :class:`Status`; ``render`` and ``to_json`` (the ``--json`` schema) read it.
Nothing here raises: status is what an operator runs when something is already wrong, so a corrupt file or an
unreachable Milvus becomes an error string naming it. :attr:`Status.exit_code` says how bad it is: 2 when Milvus
is unreachable, 1 when a watched collection's last check failed, 0 otherwise (drift is reported, not an
exit code: `embguard check` exits 1 on drift).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from embguard.checks.references import ReferenceInfo, ReferenceStore
from embguard.checks.reports import CheckReport, read_check_report, read_evidence
from embguard.client.tap import TapHealth, tap_health
from embguard.config.credentials import redact_uri
from embguard.config.settings import Settings
from embguard.config.statedir import StateDir
from embguard.config.units import duration
from embguard.errors import EmbguardError
from embguard.milvus.milvus import Milvus, recorded_model_id
from embguard.models.registry import ModelRegistry, ModelVersion
from embguard.swap.state import SwapState, SwapStore


@dataclass(frozen=True)
class Served:
    collection: str
    model_id: str
    documents: int


@dataclass
class CollectionStatus:
    served: Served | None = None
    tap: TapHealth | None = None
    reference: ReferenceInfo | None = None
    last_check: CheckReport | None = None
    decision: CheckReport | None = None  # the latest check that tested a window (pages and gauges follow it)
    swap: SwapState | None = None
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        c: dict[str, Any] = {}
        if self.served is not None:
            c.update(served_by=self.served.collection, model_id=self.served.model_id, documents=self.served.documents)
        if self.tap is not None:
            c["tap"] = {**asdict(self.tap), "error": redact_uri(self.tap.error)}
        if self.reference is not None:
            r = self.reference
            c["reference"] = {"version": r.version, "model_id": r.model_id, "size": r.size, "age_s": r.age_s}
        if self.last_check is not None:
            c["last_check"] = _report_json(self.last_check)
        if self.decision is not None and self.decision is not self.last_check:
            c["decision"] = _report_json(self.decision)
        if self.swap is not None:
            s = self.swap
            c["swap"] = {
                "phase": s.phase,
                "done": s.done,
                "total": s.total,
                "error": redact_uri(s.error),
                "source": s.source,
                "target": s.target,
                "candidate": s.candidate_version,
                "updated_at": s.updated_at,
            }
        if self.errors:
            c["error"] = "; ".join(self.errors)
        return c


@dataclass
class Status:
    milvus_uri: str
    milvus_version: str | None = None  # None: not reachable (see milvus_error)
    milvus_error: str = ""
    daemon_pid: int | None = None
    daemon_running: bool = False
    collections: dict[str, CollectionStatus] = field(default_factory=dict)
    candidates: list[ModelVersion] = field(default_factory=list)
    registry_error: str = ""

    @property
    def exit_code(self) -> int:
        """2: Milvus unreachable; 1: a watched collection's last check failed; 0: otherwise."""
        if self.milvus_version is None:
            return 2
        return 1 if self.failed_checks else 0

    @property
    def failed_checks(self) -> dict[str, str]:
        return {name: c.last_check.error for name, c in self.collections.items() if c.last_check and c.last_check.error}

    @property
    def problem(self) -> str:
        """What makes :attr:`exit_code` non-zero, in one line (empty when it is 0)."""
        if self.milvus_version is None:
            return f"Milvus at {self.milvus_uri} is unreachable: {self.milvus_error}"
        return "; ".join(f"the last check of {n} failed: {e}" for n, e in self.failed_checks.items())

    def to_json(self) -> dict[str, Any]:
        milvus: dict[str, Any] = {"uri": self.milvus_uri, "up": self.milvus_version is not None}
        milvus.update(
            {"version": self.milvus_version} if self.milvus_version is not None else {"error": self.milvus_error}
        )
        daemon: dict[str, Any] = {"running": self.daemon_running}
        if self.daemon_pid is not None:
            daemon["pid"] = self.daemon_pid
        out: dict[str, Any] = {
            "milvus": milvus,
            "daemon": daemon,
            "collections": {name: c.to_json() for name, c in self.collections.items()},
            "candidates": [
                {"version": v.version, "model_id": v.model_id, "verdict": v.verdict.to_dict() if v.verdict else {}}
                for v in self.candidates
            ],
        }
        if self.registry_error:
            out["registry_error"] = self.registry_error
        out["exit_code"] = self.exit_code
        return out


def clusters_json(clusters: Any) -> list[dict[str, Any]]:
    """Drifted clusters as status shows them: size, share, distance and example texts. Row numbers (a report
    written by an older daemon) point into a window that is gone, so they are left out."""
    out = []
    for c in clusters or ():
        out.append(
            {
                "size": c.get("size", 0),
                "share": c.get("share", 0.0),
                "distance": c.get("distance", 0.0),
                "terms": [str(t) for t in c.get("terms", [])],
                "examples": [str(e) for e in c.get("examples", [])],
            }
        )
    return out


def _report_json(report: CheckReport) -> dict[str, Any]:
    d = report.to_json()
    d["clusters"] = clusters_json(report.clusters)
    return d


def _problem(exc: BaseException) -> str:
    return redact_uri(str(exc)) if isinstance(exc, EmbguardError) else redact_uri(f"{type(exc).__name__}: {exc}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def gather(settings: Settings) -> Status:
    """Everything `status` shows, from Milvus and the state directory."""
    state = StateDir(settings.state.dir)
    pid = state.read_daemon_pid()
    out = Status(
        milvus_uri=redact_uri(settings.milvus_uri), daemon_pid=pid, daemon_running=pid is not None and _alive(pid)
    )
    milvus = None
    try:
        milvus = Milvus.connect(settings)
        out.milvus_version = str(milvus.server_version)
    except EmbguardError as exc:
        out.milvus_error = _problem(exc)
    refs = ReferenceStore(settings.state.dir)
    swaps = SwapStore(settings.state.dir)
    for spec in settings.collections:
        c = out.collections[spec.name] = CollectionStatus()
        if milvus is not None:
            try:
                served = milvus.resolve(spec.name)
                model_id = recorded_model_id(milvus.properties(served), served)
                c.served = Served(served, str(model_id), milvus.count(served))
                c.tap = tap_health(milvus, served)
            except EmbguardError as exc:
                c.errors.append(_problem(exc))
        try:
            versions = refs.list(spec.name, "queries")
            c.reference = versions[-1] if versions else None
        except EmbguardError as exc:
            c.errors.append(_problem(exc))
        readable = True
        try:
            c.last_check = read_check_report(state, spec.name)
        except EmbguardError as exc:
            c.errors.append(_problem(exc))
            readable = False
        if c.last_check is not None and c.last_check.tested:
            c.decision = c.last_check
        elif readable:
            try:
                c.decision = read_evidence(state, spec.name)
            except EmbguardError as exc:
                c.errors.append(_problem(exc))
        try:
            c.swap = swaps.load(spec.name)
        except EmbguardError as exc:
            c.errors.append(_problem(exc))
    if milvus is not None:
        milvus.close()
    try:
        out.candidates = ModelRegistry(settings.model.store_dir).awaiting()
    except EmbguardError as exc:
        out.registry_error = _problem(exc)
    return out


def _swap_line(sw: SwapState) -> str:
    progress = f"{sw.done}/{sw.total}" if sw.total else f"{sw.done}/?"
    error = redact_uri(sw.error)
    if sw.phase == "done" and not error:
        return f"  swap       done: {sw.target} ({sw.candidate_version})"
    line = f"  swap       {sw.source} -> {sw.target} ({sw.candidate_version}): phase {sw.phase}, {progress} documents"
    if error:
        line += (
            f"; FAILED: {error} (resume with `embguard retrain --approve --candidate {sw.candidate_version}` "
            "or `embguard retrain --abort`)"
        )
    return line


def _cluster_lines(chk: CheckReport) -> list[str]:
    lines = []
    for c in clusters_json(chk.clusters):
        share, distance = 100 * float(c["share"]), float(c["distance"])
        about = f" about {', '.join(c['terms'])}" if c["terms"] else ""
        lines.append(f"  new cluster{about}: {share:.0f}% of queries ({c['size']}), distance {distance:.2f}")
        lines += [f"             {e!r}" for e in c["examples"]] or ["             (no example texts stored)"]
    return lines


def _check_lines(chk: CheckReport, decision: CheckReport | None = None) -> list[str]:
    age = duration(time.time() - chk.checked_at)
    if chk.error:
        lines = [f"  last check {age} ago: FAILED: {chk.error}"]
    elif chk.skipped:
        lines = [f"  last check {age} ago: skipped: {chk.skipped}"]
    else:
        verdict = "SUSTAINED DRIFT" if chk.sustained else ("drift" if chk.drift else "no drift")
        lines = [f"  last check {age} ago: {verdict}; {chk.n_current} queries"]
        for o in chk.outcomes:
            p = f"p={o.p_value:.3g}" if o.p_value is not None else f"stat={o.statistic:.3g}"
            lines.append(f"             {o.monitor:<10} {p:<12} consecutive {o.consecutive}")
        return lines + _cluster_lines(chk)
    if decision is not None:  # a skipped or failed check changes nothing: the decision stands
        verdict = "SUSTAINED DRIFT" if decision.sustained else ("drift" if decision.drift else "no drift")
        lines.append(f"  decision   {verdict} (from the check {duration(time.time() - decision.checked_at)} ago)")
        lines += _cluster_lines(decision)
    return lines


def _collection_lines(name: str, c: CollectionStatus) -> list[str]:
    lines = [f"\n{name}"]
    if c.errors:
        lines.append(f"  error      {'; '.join(c.errors)}")
    if c.swap is not None:
        lines.append(_swap_line(c.swap))
    if c.served is not None:
        s = c.served
        lines.append(f"  serving    {s.collection} ({s.documents} documents), model {s.model_id}")
    if c.tap is not None:
        ago = duration(time.time() - c.tap.ts_ms / 1000)
        state = f"ok (recovered {ago} ago)" if c.tap.ok else f"FAILING since {ago} ago: {redact_uri(c.tap.error)}"
        lines.append(f"  query tap  {state}")
    r = c.reference
    if r is not None:
        served_model = c.served.model_id if c.served is not None else r.model_id
        stale = "" if r.model_id == served_model else "  (made by another model!)"
        lines.append(f"  reference  v{r.version:04d}, {r.size} queries, {duration(r.age_s)} old{stale}")
    else:
        lines.append(f"  reference  none: run `embguard baseline capture {name}`")
    if c.last_check is not None:
        lines += _check_lines(c.last_check, c.decision)
    else:
        lines.append("  last check none yet (is `embguard serve` running?)")
    return lines


def render(st: Status) -> str:
    up = f"up ({st.milvus_version})" if st.milvus_version is not None else f"DOWN: {st.milvus_error}"
    lines = [f"Milvus   {st.milvus_uri}: {up}"]
    lines.append("daemon   " + (f"running (pid {st.daemon_pid})" if st.daemon_running else "not running"))
    if not st.collections:
        lines.append("no watched collections: add [[collections]] to the config")
    for name, c in st.collections.items():
        lines += _collection_lines(name, c)
    if st.registry_error:
        lines.append(f"\nmodel registry: {st.registry_error}")
    if st.candidates:
        lines.append("\ncandidates awaiting approval")
        for v in st.candidates:
            lines.append(f"  {v.version} ({v.model_id}): run `embguard retrain --approve --candidate {v.version}`")
    return "\n".join(lines)
