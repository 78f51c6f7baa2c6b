"""Paired bootstrap confidence intervals, vectorised: resample queries, not scores of each model separately."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import ConfigError, DataError


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    confidence: float
    resamples: int
    n: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def bootstrap_mean(values: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the mean of ``values`` (e.g. per-query candidate - base differences)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise DataError(f"bootstrap needs a non-empty 1-D array of per-query values, got shape {v.shape}")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence {confidence!r} must be in (0, 1), e.g. 0.95")
    if resamples < 100:
        raise ConfigError(f"resamples={resamples} is too few for a stable interval; use >= 1000")
    rng = np.random.default_rng(seed)
    # One (resamples, n) index matrix; chunk so 2000 x 100k queries does not allocate gigabytes.
    means = np.empty(resamples)
    step = max(1, 2_000_000 // v.size)
    for s in range(0, resamples, step):
        e = min(resamples, s + step)
        idx = rng.integers(0, v.size, size=(e - s, v.size))
        means[s:e] = v[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return Interval(
        mean=float(v.mean()),
        low=float(low),
        high=float(high),
        confidence=confidence,
        resamples=resamples,
        n=int(v.size),
    )


def paired_difference(
    candidate: np.ndarray, base: np.ndarray, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> Interval:
    """CI of mean(candidate - base) over the same queries (paired)."""
    c, b = np.asarray(candidate, dtype=np.float64), np.asarray(base, dtype=np.float64)
    if c.shape != b.shape:
        raise DataError(
            f"paired bootstrap needs per-query scores for the same queries; got {c.shape} vs "
            f"{b.shape}: evaluate both models on one query set"
        )
    return bootstrap_mean(c - b, resamples, confidence, seed)
