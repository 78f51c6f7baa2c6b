"""When the daemon builds a candidate on its own: drift sustained long enough, and enough new feedback.

:func:`decide` is the rule, a pure function; :func:`run` applies it to every watched collection once (the
daemon's ``retrain_policy`` job): it builds a candidate where the rule says so, keeps the retrain metrics
truthful, and approves a promoted candidate itself only when ``retrain.auto_approve`` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from embguard.config.lifecycle import RetrainSettings
from embguard.config.settings import Settings
from embguard.daemon.metrics import RETRAIN_STATES, Metrics
from embguard.daemon.watched import Watched
from embguard.errors import EmbguardError, NotEnoughFeedback
from embguard.milvus.milvus import MODEL_ID_PROPERTY, Milvus
from embguard.models.registry import ModelRegistry

log = logging.getLogger(__name__)

Action = Literal["wait", "awaiting", "train"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def decide(rs: RetrainSettings, *, awaiting: bool, streak: int | None, feedback: int | None) -> Decision:
    """The rule. ``streak``: checks in a row with drift (``None``: no usable check yet); ``feedback``: events
    since the serving model was made (``None``: not counted, because the streak already says wait)."""
    if awaiting:
        return Decision("awaiting", "a candidate is waiting for approval; decide it first")
    if streak is None:
        return Decision("wait", "no completed check yet")
    if streak < rs.sustained_checks:
        return Decision("wait", f"drift sustained for {streak} of {rs.sustained_checks} checks")
    if feedback is None or feedback < rs.min_feedback_pairs:
        return Decision(
            "wait",
            f"drift sustained for {streak} checks but only {feedback or 0} feedback events "
            f"since the last model (need {rs.min_feedback_pairs}); not retraining yet",
        )
    return Decision("train", f"drift sustained for {streak} checks and {feedback} feedback events")


def _streak(w: Watched) -> int | None:
    """Drifted checks in a row, from the one decision the pages and gauges use (a skipped check changes
    nothing; a decision restored after a restart counts)."""
    if w.evidence is None:
        return None
    return max((o.consecutive for o in w.evidence.outcomes), default=0)


def run(
    settings: Settings,
    milvus: Milvus,
    watched: Mapping[str, Watched],
    metrics: Metrics,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = log.info,
) -> None:
    """Apply :func:`decide` to every watched collection once."""
    from embguard.training.candidates import build_candidate
    from embguard.training.feedback import feedback_records  # the training stack loads only when it is used

    rs = settings.retrain
    registry = ModelRegistry(settings.model.store_dir)
    waiting = {v.extra.get("alias") for v in registry.awaiting()}
    for alias, w in watched.items():
        if stop is not None and stop.is_set():
            return
        metrics.candidate_awaiting.labels(alias).set(int(alias in waiting))
        streak = _streak(w)
        decision = decide(rs, awaiting=alias in waiting, streak=streak, feedback=None)
        if decision.action == "awaiting":
            metrics.set_state(metrics.retrain_state, alias, "awaiting_approval", RETRAIN_STATES)
            continue
        if streak is None or streak < rs.sustained_checks:
            continue
        served = milvus.resolve(alias)
        served_model = milvus.properties(served).get(MODEL_ID_PROPERTY)
        if not served_model:
            log.info("%s: monitor-only (its vectors come from the application): nothing to retrain", alias)
            continue
        current = registry.by_model_id(served_model)
        since_ms = int(current.created_at * 1000) if current else 0
        records, _ = feedback_records(milvus, alias, since_ms)
        decision = decide(rs, awaiting=False, streak=streak, feedback=len(records))
        if decision.action != "train":
            log.info("%s: %s", alias, decision.reason)
            continue
        metrics.set_state(metrics.retrain_state, alias, "training", RETRAIN_STATES)
        try:
            report = build_candidate(settings, milvus, w.spec, say=say, since_ms=since_ms)
        except NotEnoughFeedback as exc:
            log.info("%s", exc)
            metrics.set_state(metrics.retrain_state, alias, "idle", RETRAIN_STATES)
            continue
        except EmbguardError:
            metrics.set_state(metrics.retrain_state, alias, "failed", RETRAIN_STATES)
            raise
        log.info("%s", report)
        if report.promoted and rs.auto_approve:
            from embguard.swap.swapper import Swapper

            Swapper(settings, milvus, say=say).approve(w.spec, report.version)
            metrics.set_state(metrics.retrain_state, alias, "idle", RETRAIN_STATES)
            continue
        state = "awaiting_approval" if report.promoted else "rejected"
        metrics.set_state(metrics.retrain_state, alias, state, RETRAIN_STATES)
        metrics.candidate_awaiting.labels(alias).set(int(report.promoted))
