"""``embguard status``: what the daemon sees, read from the same sources it uses (Milvus and the state dir)."""

from __future__ import annotations

import os
import time
from typing import Any

from .config import Settings, redact_uri
from .errors import EmbguardError
from .milvus import MODEL_ID_PROPERTY, Milvus
from .references import ReferenceStore
from .registry import ModelRegistry
from .state import StateDir
from .swapstate import SwapStore
from .tap import tap_health


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _problem(exc: BaseException) -> str:
    return redact_uri(str(exc)) if isinstance(exc, EmbguardError) else redact_uri(f"{type(exc).__name__}: {exc}")


def gather(settings: Settings) -> dict[str, Any]:
    """Everything `status` shows. A corrupt file or an unreachable Milvus becomes an ``error`` entry naming
    it; nothing here raises, since status is what an operator runs when something is already wrong."""
    out: dict[str, Any] = {"milvus": {"uri": redact_uri(settings.milvus_uri)}, "daemon": {}, "collections": {}}
    state = StateDir(settings.state.dir)
    pid = state.read_daemon_pid()
    if pid is not None:
        alive = False
        try:
            os.kill(pid, 0)
            alive = True
        except OSError:
            pass
        out["daemon"] = {"pid": pid, "running": alive}
    else:
        out["daemon"] = {"running": False}
    milvus = None
    try:
        milvus = Milvus.connect(settings)
        out["milvus"].update(up=True, version=milvus.server_version)
    except EmbguardError as exc:
        out["milvus"].update(up=False, error=_problem(exc))
    refs = ReferenceStore(settings.state.dir)
    swaps = SwapStore(settings.state.dir)
    for spec in settings.collections:
        c: dict[str, Any] = {}
        errors: list[str] = []
        if milvus is not None:
            try:
                served = milvus.resolve(spec.name)
                c.update(
                    served_by=served,
                    model_id=milvus.properties(served).get(MODEL_ID_PROPERTY, "unknown"),
                    documents=milvus.count(served),
                )
                tap = tap_health(milvus, served)
                if tap is not None:
                    c["tap"] = {**tap, "error": redact_uri(str(tap.get("error", "")))}
            except EmbguardError as exc:
                errors.append(_problem(exc))
        try:
            versions = refs.list(spec.name, "queries")
        except EmbguardError as exc:
            errors.append(_problem(exc))
            versions = []
        if versions:
            r = versions[-1]
            c["reference"] = {"version": r.version, "model_id": r.model_id, "size": r.size, "age_s": r.age_s}
        try:
            report = state.read_check_report(spec.name)
            if report is not None:
                c["last_check"] = report.to_json()
        except EmbguardError as exc:
            errors.append(_problem(exc))
        try:
            st = swaps.load(spec.name)
        except EmbguardError as exc:
            errors.append(_problem(exc))
            st = None
        if st is not None:
            c["swap"] = {
                "phase": st.phase,
                "done": st.done,
                "total": st.total,
                "error": redact_uri(st.error),
                "source": st.source,
                "target": st.target,
                "candidate": st.candidate_version,
                "updated_at": st.updated_at,
            }
        if errors:
            c["error"] = "; ".join(errors)
        out["collections"][spec.name] = c
    if milvus is not None:
        milvus.close()
    try:
        out["candidates"] = _candidates(settings)
    except EmbguardError as exc:
        out["candidates"] = []
        out["registry_error"] = _problem(exc)
    return out


def _candidates(settings: Settings) -> list[dict[str, Any]]:
    return [
        {"version": v.version, "model_id": v.model_id, "verdict": v.verdict}
        for v in ModelRegistry(settings.model.store_dir).awaiting()
    ]


def _swap_line(sw: dict[str, Any]) -> str:
    progress = f"{sw['done']}/{sw['total']}" if sw.get("total") else f"{sw.get('done', 0)}/?"
    if sw["phase"] == "done" and not sw.get("error"):
        return f"  swap       done: {sw['target']} ({sw['candidate']})"
    line = (
        f"  swap       {sw['source']} -> {sw['target']} ({sw['candidate']}): phase {sw['phase']}, {progress} documents"
    )
    if sw.get("error"):
        line += (
            f"; FAILED: {sw['error']} (resume with `embguard retrain --approve --candidate {sw['candidate']}` "
            "or `embguard retrain --abort`)"
        )
    return line


def render(st: dict[str, Any]) -> str:
    lines = []
    m = st["milvus"]
    lines.append(f"Milvus   {m['uri']}: " + (f"up ({m.get('version')})" if m.get("up") else f"DOWN: {m.get('error')}"))
    d = st["daemon"]
    lines.append("daemon   " + (f"running (pid {d['pid']})" if d.get("running") else "not running"))
    if not st["collections"]:
        lines.append("no watched collections: add [[collections]] to the config")
    for name, c in st["collections"].items():
        lines.append(f"\n{name}")
        if "error" in c:
            lines.append(f"  error      {c['error']}")
        if "swap" in c:
            lines.append(_swap_line(c["swap"]))
        if "served_by" in c:
            lines.append(f"  serving    {c['served_by']} ({c['documents']} documents), model {c['model_id']}")
        tap = c.get("tap")
        if tap and not tap.get("ok"):
            lines.append(f"  query tap  FAILING since {_age(time.time() - tap['ts_ms'] / 1000)} ago: {tap['error']}")
        elif tap:
            lines.append(f"  query tap  ok (recovered {_age(time.time() - tap['ts_ms'] / 1000)} ago)")
        r = c.get("reference")
        if r:
            stale = "" if r["model_id"] == c.get("model_id", r["model_id"]) else "  (made by another model!)"
            lines.append(f"  reference  v{r['version']:04d}, {r['size']} queries, {_age(r['age_s'])} old{stale}")
        else:
            lines.append(f"  reference  none: run `embguard baseline capture {name}`")
        chk = c.get("last_check")
        if chk:
            age = _age(time.time() - chk["checked_at"])
            if chk.get("skipped"):
                lines.append(f"  last check {age} ago: skipped: {chk['skipped']}")
            else:
                verdict = "SUSTAINED DRIFT" if chk.get("sustained") else ("drift" if chk.get("drift") else "no drift")
                lines.append(f"  last check {age} ago: {verdict}; {chk.get('n_current')} queries")
                for o in chk.get("outcomes") or []:
                    p = f"p={o['p_value']:.3g}" if o["p_value"] is not None else f"stat={o['statistic']:.3g}"
                    lines.append(f"             {o['monitor']:<10} {p:<12} consecutive {o['consecutive']}")
        else:
            lines.append("  last check none yet (is `embguard serve` running?)")
    if st.get("registry_error"):
        lines.append(f"\nmodel registry: {st['registry_error']}")
    if st["candidates"]:
        lines.append("\ncandidates awaiting approval")
        for c in st["candidates"]:
            lines.append(
                f"  {c['version']} ({c['model_id']}): run `embguard retrain --approve --candidate {c['version']}`"
            )
    return "\n".join(lines)
