"""The promotion gate: a candidate model replaces the live one only with evidence it is better.

Rule (all on per-query scores of the *same* held-out queries, paired bootstrap, seeded):
  promote  iff  lower bound of the 95% CI of mean(nDCG@10_candidate - nDCG@10_base) on the task set
                >= ``min_gain``
           and  mean(nDCG@10_candidate - nDCG@10_base) on the guard set >= -``guard_tolerance``.
The task criterion uses the CI *lower bound* (not the mean) so that noise on a small held-out set cannot
promote a model; the guard uses the mean because the guard set (general-domain anchor queries) only has to
show "no real regression", and a lower bound there would reject most fine-tunes on noise alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from .bootstrap import Interval, paired_difference
from .errors import ConfigError
from .evaluate import PerQueryScores


@dataclass(frozen=True)
class GateConfig:
    metric: str = "ndcg@10"
    min_gain: float = 0.0  # absolute metric units: 0.01 = +1 nDCG point
    guard_tolerance: float = 0.01  # largest allowed mean drop on the guard set
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    min_queries: int = 30

    def __post_init__(self) -> None:
        if self.guard_tolerance < 0:
            raise ConfigError(
                f"GateConfig.guard_tolerance={self.guard_tolerance} is negative; use >= 0, "
                "e.g. 0.01 for at most one nDCG point lost on the guard set"
            )
        if self.min_queries < 1:
            raise ConfigError(f"GateConfig.min_queries={self.min_queries}; use >= 1 (30+ recommended)")


_GATE_FIELDS = frozenset(f.name for f in fields(GateConfig))


@dataclass(frozen=True)
class GateVerdict:
    promote: bool
    reasons: tuple[str, ...]
    metric: str
    base_mean: float
    candidate_mean: float
    gain: Interval
    guard_base_mean: float | None
    guard_candidate_mean: float | None
    guard_change: Interval | None
    means: dict[str, dict[str, float]]  # {"base"|"candidate": {metric: mean}} on the task set
    config: GateConfig

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GateVerdict:
        """The inverse of :meth:`to_dict` (a verdict stored as JSON); unknown keys are ignored.

        Raises ``KeyError``/``TypeError``/``ValueError`` on a dict that is not a stored verdict; the caller names
        the file it came from.
        """
        guard = d.get("guard_change")
        return cls(
            promote=bool(d["promote"]),
            reasons=tuple(str(r) for r in d.get("reasons", ())),
            metric=str(d["metric"]),
            base_mean=float(d["base_mean"]),
            candidate_mean=float(d["candidate_mean"]),
            gain=_interval(d["gain"]),
            guard_base_mean=None if d.get("guard_base_mean") is None else float(d["guard_base_mean"]),
            guard_candidate_mean=None if d.get("guard_candidate_mean") is None else float(d["guard_candidate_mean"]),
            guard_change=None if guard is None else _interval(guard),
            means={str(k): {str(m): float(x) for m, x in v.items()} for k, v in dict(d.get("means") or {}).items()},
            config=GateConfig(**{k: v for k, v in dict(d.get("config") or {}).items() if k in _GATE_FIELDS}),
        )


def _interval(d: dict[str, Any]) -> Interval:
    return Interval(
        mean=float(d["mean"]),
        low=float(d["low"]),
        high=float(d["high"]),
        confidence=float(d["confidence"]),
        resamples=int(d["resamples"]),
        n=int(d["n"]),
    )


def decide(
    base: PerQueryScores,
    candidate: PerQueryScores,
    config: GateConfig = GateConfig(),
    guard_base: PerQueryScores | None = None,
    guard_candidate: PerQueryScores | None = None,
) -> GateVerdict:
    m = config.metric
    if m not in base.scores or m not in candidate.scores:
        raise ConfigError(
            f"GateConfig.metric={m!r} is not among the evaluated metrics {sorted(base.scores)}; pick one of those"
        )
    if (guard_base is None) != (guard_candidate is None):
        raise ConfigError("pass both guard_base and guard_candidate scores, or neither")
    reasons: list[str] = []
    n = len(base.scores[m])
    gain = _diff(candidate, base, config)
    ok = True
    if n < config.min_queries:
        ok = False
        reasons.append(f"only {n} held-out queries (< min_queries={config.min_queries}); collect more labels")
    if gain.low >= config.min_gain:
        reasons.append(f"{m} gain CI low {gain.low:+.4f} >= min_gain {config.min_gain:+.4f}")
    else:
        ok = False
        reasons.append(f"{m} gain CI low {gain.low:+.4f} < min_gain {config.min_gain:+.4f} (mean {gain.mean:+.4f})")
    g_change = gb = gc = None
    if guard_base is not None and guard_candidate is not None:
        g_change = _diff(guard_candidate, guard_base, config)
        gb, gc = guard_base.mean(m), guard_candidate.mean(m)
        if g_change.mean >= -config.guard_tolerance:
            reasons.append(f"guard {m} change {g_change.mean:+.4f} within tolerance -{config.guard_tolerance}")
        else:
            ok = False
            reasons.append(f"guard {m} dropped {g_change.mean:+.4f} (< -{config.guard_tolerance})")
    means = {
        "base": {k: float(v.mean()) for k, v in base.scores.items()},
        "candidate": {k: float(v.mean()) for k, v in candidate.scores.items()},
    }
    return GateVerdict(
        promote=ok,
        reasons=tuple(reasons),
        metric=m,
        base_mean=base.mean(m),
        candidate_mean=candidate.mean(m),
        gain=gain,
        guard_base_mean=gb,
        guard_candidate_mean=gc,
        guard_change=g_change,
        means=means,
        config=config,
    )


def _diff(candidate: PerQueryScores, base: PerQueryScores, config: GateConfig) -> Interval:
    return paired_difference(
        candidate.scores[config.metric],
        base.scores[config.metric],
        resamples=config.resamples,
        confidence=config.confidence,
        seed=config.seed,
    )
