"""Per-query out-of-distribution scores: distance to the k-th nearest reference neighbour (Sun et al., ICML 2022).

Vectors are L2-normalised first (the paper's key step). ``fit`` splits the reference at random into an index part
and a held-out calibration part; the threshold is the conformal ``quantile`` of the held-out scores, i.e. the
``ceil((n_cal + 1) * quantile)``-th smallest. A query drawn from the reference distribution then exceeds the
threshold with probability at most ``1 - quantile`` (and close to it), so ``expected_rate = 1 - quantile``.
A window's flag count is tested against that rate with an exact one-sided test. The flags of one window share one
estimated threshold, so they are not independent binomial draws; but under exchangeability the coverage of the
``r``-th smallest of ``n_cal`` calibration scores is Beta(r, n_cal + 1 - r), so the number of flags among ``n``
no-drift queries is beta-binomial(n, n_cal + 1 - r, r). Its upper tail is the p-value. (A plain binomial test
would over-alarm whenever the calibration set is small next to the window.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Self

import numpy as np
from scipy.stats import betabinom

from ._torch import normalise, topk_cosine
from ._validate import as_matrix, check_alpha, check_int, frozen, readonly, require_fitted
from .errors import MonitorInputError
from .result import DriftResult


@dataclass(frozen=True)
class OODResult:
    """Per-query scores and flags (read-only arrays) and the window's OOD rate with its p-value.

    ``expected_rate`` is the exact no-drift flag probability, ``(n_cal + 1 - r) / (n_cal + 1)`` <= 1 - quantile.
    """

    method: str
    scores: np.ndarray
    flags: np.ndarray
    rate: float
    threshold: float
    quantile: float
    expected_rate: float
    p_value: float
    drift: bool
    alpha: float
    n_reference: int
    n_current: int
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def n_flagged(self) -> int:
        return int(self.flags.sum())


def _kth_distance(queries: np.ndarray, index: np.ndarray, k: int) -> np.ndarray:
    sims, _ = topk_cosine(queries, index, k)
    # Euclidean distance between unit vectors: sqrt(2 - 2 cos); clipped against float round-off.
    return np.sqrt(np.clip(2.0 - 2.0 * sims[:, k - 1].astype(np.float64), 0.0, None))


class KNNOODDetector:
    """k-th nearest-neighbour distance OOD scores with a quantile threshold from held-out reference rows."""

    name = "knn_ood"
    input_kind = "vectors"

    def __init__(
        self,
        *,
        k: int = 10,
        quantile: float = 0.95,
        holdout: float = 0.2,
        alpha: float = 0.05,
        seed: int = 0,
        min_rows: int = 10,
    ) -> None:
        self.k = check_int(k, "k", 1)
        if not 0.5 <= float(quantile) < 1.0:
            raise MonitorInputError(f"quantile={quantile!r} must lie in [0.5, 1); 0.95 flags ~5% of normal queries")
        self.quantile = float(quantile)
        if not 0.05 <= float(holdout) <= 0.5:
            raise MonitorInputError(
                f"holdout={holdout!r} must lie in [0.05, 0.5]; it is the share of the reference "
                "kept back to set the threshold"
            )
        self.holdout = float(holdout)
        self.alpha = check_alpha(alpha)
        self.seed = int(seed)
        self.min_rows = check_int(min_rows, "min_rows", 1)
        self._index: np.ndarray | None = None
        self._calibration: np.ndarray | None = None
        self.threshold: float | None = None
        self._rank = 0

    def fit(self, reference: Any) -> Self:
        ref = as_matrix(reference, "reference", min_rows=2)
        n_cal = int(round(len(ref) * self.holdout))
        n_index = len(ref) - n_cal
        # The conformal quantile needs enough calibration rows to exist below 1.
        if n_index < self.k or math.ceil((n_cal + 1) * self.quantile) > n_cal:
            need = max(
                self.k + math.ceil(self.quantile / (1 - self.quantile)) + 1,
                math.ceil((math.ceil(self.quantile / (1 - self.quantile)) + 1) / self.holdout),
            )
            raise MonitorInputError(
                f"reference: {len(ref)} rows are too few for k={self.k}, quantile={self.quantile}"
                f", holdout={self.holdout}; pass at least ~{need} reference rows"
            )
        perm = np.random.default_rng(self.seed).permutation(len(ref))
        unit = normalise(ref)
        self._index = unit[perm[n_cal:]]
        cal = _kth_distance(unit[perm[:n_cal]], self._index, self.k)
        self._calibration = readonly(np.sort(cal))
        rank = math.ceil((n_cal + 1) * self.quantile)
        self._rank = rank
        self.threshold = float(self._calibration[rank - 1])
        return self

    @property
    def calibration_scores(self) -> np.ndarray:
        require_fitted(self._calibration is not None, type(self).__name__)
        assert self._calibration is not None
        return self._calibration

    @property
    def index(self) -> np.ndarray:
        """The unit-normalised reference rows queries are compared with (read-only view)."""
        require_fitted(self._index is not None, type(self).__name__)
        assert self._index is not None
        view = self._index.view()
        view.setflags(write=False)
        return view

    def score(self, queries: Any) -> np.ndarray:
        """Per-query k-th nearest-neighbour distance (0 = on top of reference data, up to 2 = opposite)."""
        require_fitted(self._index is not None, type(self).__name__)
        assert self._index is not None
        q = as_matrix(queries, "queries", min_rows=1, dim=self._index.shape[1])
        return _kth_distance(normalise(q), self._index, self.k)

    def evaluate(self, queries: Any) -> OODResult:
        """Per-query scores and flags plus the window test: what explanations and dashboards need."""
        require_fitted(self._index is not None, type(self).__name__)
        assert self._index is not None and self.threshold is not None
        q = as_matrix(queries, "queries", min_rows=self.min_rows, dim=self._index.shape[1])
        scores = _kth_distance(normalise(q), self._index, self.k)
        flags = scores > self.threshold
        n_cal = len(self.calibration_scores)
        # Exact no-drift exceedance probability of the conformal threshold (<= 1 - quantile).
        expected = (n_cal + 1 - self._rank) / (n_cal + 1)
        p = float(betabinom.sf(int(flags.sum()) - 1, len(flags), n_cal + 1 - self._rank, self._rank))
        return OODResult(
            method=self.name,
            scores=readonly(scores),
            flags=readonly(flags),
            rate=float(flags.mean()),
            threshold=self.threshold,
            quantile=self.quantile,
            expected_rate=expected,
            p_value=p,
            drift=p <= self.alpha,
            alpha=self.alpha,
            n_reference=len(self._index) + len(self.calibration_scores),
            n_current=len(q),
            params=frozen(
                {
                    "k": self.k,
                    "quantile": self.quantile,
                    "holdout": self.holdout,
                    "seed": self.seed,
                    "n_index": len(self._index),
                    "n_calibration": len(self.calibration_scores),
                }
            ),
        )

    def check(self, queries: Any) -> DriftResult:
        """The window test as every detector reports it; statistic = flagged share, per-query arrays in details."""
        res = self.evaluate(queries)
        return DriftResult(
            method=self.name,
            statistic=res.rate,
            p_value=res.p_value,
            threshold=None,
            drift=res.drift,
            alpha=self.alpha,
            n_reference=res.n_reference,
            n_current=res.n_current,
            params=res.params,
            details=frozen(
                {
                    "rate": res.rate,
                    "expected_rate": res.expected_rate,
                    "threshold": res.threshold,
                    "quantile": res.quantile,
                    "n_flagged": res.n_flagged,
                    "scores": res.scores,
                    "flags": res.flags,
                }
            ),
        )
