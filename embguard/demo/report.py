"""What ``embguard demo`` prints: numbered steps, one line per check, and the closing summary table."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embguard.checks.reports import CheckReport


@dataclass(frozen=True)
class DemoSummary:
    documents: int
    drift_before_shift: bool
    drift_after_shift: bool
    drift_p_values: dict[str, float]
    clusters: tuple[dict[str, Any], ...]
    candidate: str
    gate_passed: bool
    gate_ndcg_base: float
    gate_ndcg_candidate: float
    swap_completed: bool
    failed_searches: int
    searches_during_swap: int
    ndcg_before_swap: float
    ndcg_after_swap: float
    rollback_restored: bool
    metrics_url: str
    state_dir: str
    seconds: float
    left_running: bool


class Steps:
    def __init__(self, say: Callable[[str], None]):
        self.say, self.n = say, 0

    def __call__(self, text: str) -> None:
        self.n += 1
        self.say(f"[{self.n}] {text}")


def describe(report: CheckReport) -> str:
    if report.skipped:
        return f"check skipped: {report.skipped}"
    verdict = "SUSTAINED DRIFT" if report.sustained else ("drift in this window" if report.drift else "no drift")
    ps = ", ".join(f"{o.monitor} p={o.p_value:.2g}" for o in report.outcomes if o.p_value is not None)
    return f"{report.n_current} queries: {verdict} ({ps})"


def table(s: DemoSummary, say: Callable[[str], None]) -> None:
    rows = [
        ("documents indexed", str(s.documents)),
        ("drift before the shift", "yes" if s.drift_before_shift else "no"),
        ("drift after the shift", "yes, sustained" if s.drift_after_shift else "no"),
        ("p-values after the shift", ", ".join(f"{k} {v:.2g}" for k, v in s.drift_p_values.items())),
        (
            "candidate",
            f"{s.candidate}: gate {'PASSED' if s.gate_passed else 'REJECTED'}, held-out nDCG@10 "
            f"{s.gate_ndcg_base:.4f} -> {s.gate_ndcg_candidate:.4f}",
        ),
        (
            "swap",
            f"{'completed' if s.swap_completed else 'not done'}; {s.searches_during_swap} searches during it, "
            f"{s.failed_searches} failed",
        ),
        ("live nDCG@10", f"{s.ndcg_before_swap:.4f} before -> {s.ndcg_after_swap:.4f} after the swap"),
        ("rollback", "restored the previous collection and model" if s.rollback_restored else "not run"),
        ("metrics", f"{s.metrics_url} (served while the demo ran)"),
        ("state", s.state_dir),
        ("time", f"{s.seconds:.0f} s; left running: {'YES' if s.left_running else 'nothing'}"),
    ]
    width = max(len(k) for k, _ in rows)
    say("\nsummary")
    for k, v in rows:
        say(f"  {k.ljust(width)}  {v}")
