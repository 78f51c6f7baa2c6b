"""``embguard status``: what the daemon sees, read from the same sources it uses (Milvus and the state dir)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from .config import Settings
from .errors import EmbguardError
from .milvus import MODEL_ID_PROPERTY, Milvus
from .references import ReferenceStore
from .registry import ModelRegistry


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def gather(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {"milvus": {"uri": settings.milvus_uri}, "daemon": {}, "collections": {}}
    pid_file = settings.state.dir / "daemon.pid"
    if pid_file.is_file():
        pid = int(pid_file.read_text() or 0)
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
        out["milvus"].update(up=False, error=str(exc))
    refs = ReferenceStore(settings.state.dir)
    for spec in settings.collections:
        c: dict[str, Any] = {}
        if milvus is not None:
            try:
                served = milvus.resolve(spec.name)
                c.update(served_by=served, model_id=milvus.properties(served).get(MODEL_ID_PROPERTY, "unknown"),
                         documents=milvus.count(served))
            except EmbguardError as exc:
                c["error"] = str(exc)
        versions = refs.list(spec.name, "queries")
        if versions:
            r = versions[-1]
            c["reference"] = {"version": r.version, "model_id": r.model_id, "size": r.size, "age_s": r.age_s}
        report = settings.state.dir / "checks" / f"{spec.name}.json"
        if report.is_file():
            c["last_check"] = json.loads(report.read_text())
        out["collections"][spec.name] = c
    if milvus is not None:
        milvus.close()
    out["candidates"] = _candidates(settings)
    return out


def _candidates(settings: Settings) -> list[dict[str, Any]]:
    return [{"version": v.version, "model_id": v.model_id, "verdict": v.verdict}
            for v in ModelRegistry(settings.model.store_dir).awaiting()]


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
        if "served_by" in c:
            lines.append(f"  serving    {c['served_by']} ({c['documents']} documents), model {c['model_id']}")
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
                verdict = "SUSTAINED DRIFT" if chk["sustained"] else ("drift" if chk["drift"] else "no drift")
                lines.append(f"  last check {age} ago: {verdict}; {chk['n_current']} queries")
                for o in chk["outcomes"]:
                    p = f"p={o['p_value']:.3g}" if o["p_value"] is not None else f"stat={o['statistic']:.3g}"
                    lines.append(f"             {o['monitor']:<10} {p:<12} consecutive {o['consecutive']}")
        else:
            lines.append("  last check none yet (is `embguard serve` running?)")
    if st["candidates"]:
        lines.append("\ncandidates awaiting approval")
        for c in st["candidates"]:
            lines.append(f"  {c['version']} ({c['model_id']}): run `embguard retrain --approve --candidate "
                         f"{c['version']}`")
    return "\n".join(lines)
