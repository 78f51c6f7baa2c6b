"""Calibrated maximum mean discrepancy (MMD) two-sample test with a permutation p-value.

Kernel: Gaussian, ``k(x, y) = exp(-|x - y|^2 / (2 s^2))`` with ``s`` the median pairwise distance of a random
subsample of the *pooled* windows (the median heuristic). Taking ``s`` from the pooled data keeps the statistic
invariant to relabelling, which is what makes the permutation p-value exact.

Two estimators of the same quantity:

* :class:`MMDDetector` (default) maps rows through random Fourier features (Rahimi & Recht 2007), so MMD^2 is the
  squared distance between the windows' mean feature vectors and costs O(n * features). The features are
  quantised to int8 (steps of 1/127 on cos in [-1, 1]), and all permutations are evaluated at once as one exact
  integer matrix product ``A @ Q``, where row b of the 0/1 matrix ``A`` marks the rows assigned to the reference in
  permutation b: every split's statistic is computed without rounding, so the permutation p-value stays exact.
* :class:`ExactMMDDetector` uses the full pooled kernel matrix (O(n^2) memory), for small windows.

p-value: ``(1 + #{b : MMD^2_b >= MMD^2_obs}) / (1 + B)``, valid at any sample size for exchangeable windows.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch

from ._torch import torch_threads
from ._validate import as_matrix, check_alpha, check_int, frozen, require_fitted
from .errors import MonitorInputError
from .permutation import assignments, p_value
from .result import DriftResult

_BANDWIDTH_SAMPLE = 1000
# Random features are quantised to integers in [-_LEVELS, _LEVELS] (int8) for the exact integer permutation product.
_LEVELS = 127


def _median_bandwidth(pooled: torch.Tensor, gen: torch.Generator) -> float:
    n = pooled.shape[0]
    sub = pooled[torch.randperm(n, generator=gen)[:_BANDWIDTH_SAMPLE]] if n > _BANDWIDTH_SAMPLE else pooled
    med = float(torch.pdist(sub).median())
    # Identical windows give a zero median; any positive width then yields MMD = 0 and p = 1.
    return med if med > 0 else 1.0


class _MMDBase:
    name = "mmd"
    input_kind = "vectors"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        n_permutations: int = 500,
        seed: int = 0,
        min_rows: int = 10,
        threads: int | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        self.n_permutations = check_int(n_permutations, "n_permutations", 19)
        self.seed = int(seed)
        self.min_rows = check_int(min_rows, "min_rows", 2)
        self.threads = threads
        self._reference: np.ndarray | None = None
        self._gen = torch.Generator().manual_seed(self.seed)

    def fit(self, reference: Any) -> Self:
        self._reference = as_matrix(reference, "reference", min_rows=self.min_rows)
        # Re-seed so that fit + the same sequence of checks is reproducible.
        self._gen = torch.Generator().manual_seed(self.seed)
        return self

    def _params(self) -> dict[str, Any]:
        return {
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "min_rows": self.min_rows,
            "kernel": "gaussian",
            "bandwidth": "median pooled distance",
        }

    def _stats(self, pooled: torch.Tensor, assigned: torch.Tensor, bandwidth: float) -> torch.Tensor:
        """MMD^2 of every split: ``pooled`` rows are reference then current; ``assigned`` marks them."""
        raise NotImplementedError

    def reference_size(self) -> int:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        return int(self._reference.shape[0])

    def _current(self, current: Any) -> np.ndarray:
        require_fitted(self._reference is not None, type(self).__name__)
        assert self._reference is not None
        return as_matrix(current, "current", min_rows=self.min_rows, dim=self._reference.shape[1])

    def _split_stats(self, cur: np.ndarray, assigned: torch.Tensor | None) -> tuple[np.ndarray, float]:
        assert self._reference is not None
        n_pooled = self._reference.shape[0] + cur.shape[0]
        with torch.no_grad(), torch_threads(self.threads, n_pooled):
            pooled = torch.from_numpy(np.concatenate([self._reference, cur]))
            bandwidth = _median_bandwidth(pooled, self._gen)
            if assigned is None:
                assigned = assignments(self._reference.shape[0], cur.shape[0], self.n_permutations, self._gen)
            return self._stats(pooled, assigned, bandwidth).double().numpy(), bandwidth

    def split_statistics(self, current: Any, assigned: torch.Tensor) -> np.ndarray:
        """MMD^2 for every split ``assigned`` marks (the shared null of :class:`monitors.Page`)."""
        return self._split_stats(self._current(current), assigned)[0]

    def check(self, current: Any) -> DriftResult:
        cur = self._current(current)
        assert self._reference is not None
        stats, bandwidth = self._split_stats(cur, None)
        observed = float(stats[0])
        p = p_value(stats)
        return DriftResult(
            method=self.name,
            statistic=max(observed, 0.0),
            p_value=p,
            threshold=None,
            drift=p <= self.alpha,
            alpha=self.alpha,
            n_reference=self._reference.shape[0],
            n_current=cur.shape[0],
            params=frozen(self._params()),
            details=frozen({"bandwidth": bandwidth}),
        )


class MMDDetector(_MMDBase):
    """Random-Fourier-feature MMD with a permutation p-value; linear in the window sizes.

    About 0.4 s and 165 MB for 10,000 x 10,000 rows at d=384 on 2 busy cores with the defaults (the reference's
    projection is computed once at fit; the 500 permutations are one exact int8 x int8 -> int32 product;
    benchmarks/results/monitors.md). The statistic is the biased (V-statistic) MMD^2 of the int8-quantised feature
    map; the permutation test does not need it unbiased. ``threads``: torch
    threads for a check (None: one thread up to 2,000 pooled rows, where more only add overhead, else torch's
    setting).
    """

    name = "mmd"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        n_features: int = 1024,
        n_permutations: int = 500,
        seed: int = 0,
        min_rows: int = 10,
        threads: int | None = None,
    ) -> None:
        super().__init__(alpha=alpha, n_permutations=n_permutations, seed=seed, min_rows=min_rows, threads=threads)
        self.n_features = check_int(n_features, "n_features", 16)
        self._omega: torch.Tensor | None = None
        self._phase: torch.Tensor | None = None
        self._reference_projection: torch.Tensor | None = None

    def fit(self, reference: Any) -> Self:
        super().fit(reference)
        assert self._reference is not None
        # Directions are drawn once per fit; the bandwidth rescales them at each check.
        self._omega = torch.randn(self._reference.shape[1], self.n_features, generator=self._gen)
        self._phase = torch.rand(self.n_features, generator=self._gen) * (2 * torch.pi)
        # The bandwidth only rescales the projection (x @ omega) / s, so the reference's share of the largest
        # matrix product is done once here instead of at every check; the statistic is unchanged.
        with torch.no_grad(), torch_threads(self.threads, self._reference.shape[0]):
            self._reference_projection = torch.from_numpy(np.array(self._reference)) @ self._omega
        return self

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "n_features": self.n_features, "estimator": "random Fourier features"}

    def _features(self, pooled: torch.Tensor, bandwidth: float) -> torch.Tensor:
        """int8 features ``round(127 * cos(x @ omega / s + phase))`` of the pooled rows (N x features).

        Rounding is a fixed function of each row, so the statistic is the exact MMD^2 of a (very slightly) coarser
        feature map and exchangeability is untouched; the rounding error (<= 1/254 per feature) is ~100x smaller
        than the random-feature approximation error itself.
        """
        assert self._omega is not None and self._phase is not None and self._reference_projection is not None
        n_ref = self._reference_projection.shape[0]
        # Few whole-matrix ops rather than row blocks: on a busy host every parallel op pays a scheduling delay.
        phi = torch.empty((pooled.shape[0], self.n_features))
        torch.add(self._phase, self._reference_projection, alpha=1.0 / bandwidth, out=phi[:n_ref])
        torch.addmm(self._phase, pooled[n_ref:], self._omega, alpha=1.0 / bandwidth, out=phi[n_ref:])
        return torch.cos_(phi).mul_(_LEVELS).round_().to(torch.int8)

    def _stats(self, pooled: torch.Tensor, assigned: torch.Tensor, bandwidth: float) -> torch.Tensor:
        assert self._reference_projection is not None
        n, n_ref = pooled.shape[0], self._reference_projection.shape[0]
        feats = self._features(pooled, bandwidth)
        # Exact integer sums of the reference-side features for every split at once: (1 + B) x features.
        sums = _int_matmul(assigned, feats)
        # Column totals by the same integer product (a dim-0 int64 sum of int8 is several times slower).
        total = _int_matmul(torch.ones((1, n), dtype=torch.int8), feats)[0]
        # n_ref * n_cur * (mean_ref - mean_cur) = n * S - n_ref * T: integers below 2^53, so exact in float64.
        diff = sums.double().mul_(n).sub_(total.double().mul_(n_ref))
        scale = (2.0 / self.n_features) / (_LEVELS * n_ref * (n - n_ref)) ** 2
        return (diff * diff).sum(dim=1).mul_(scale)


def _int_matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact int8 x int8 -> int32 matrix product.

    ``torch._int_mm`` is private (pinned torch: checked by the tests); without it, or where it refuses a shape, the
    product runs in float32, which is exact here too: every partial sum is an integer of magnitude at most
    127 x rows < 2^24 for up to 132,000 pooled rows, and float32 represents those exactly in any summation order.
    """
    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is not None:
        try:
            return int_mm(a, b)  # type: ignore[no-any-return]
        except RuntimeError:
            pass
    if a.shape[1] * _LEVELS >= 2**24:
        raise MonitorInputError(f"{a.shape[1]} pooled rows is more than the float32 fallback sums exactly")
    return (a.float() @ b.float()).to(torch.int32)


class ExactMMDDetector(_MMDBase):
    """Quadratic-time MMD on the full pooled Gaussian kernel matrix; for windows up to ``max_rows`` pooled rows."""

    name = "mmd_exact"

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        n_permutations: int = 500,
        seed: int = 0,
        min_rows: int = 10,
        max_rows: int = 8000,
        threads: int | None = None,
    ) -> None:
        super().__init__(alpha=alpha, n_permutations=n_permutations, seed=seed, min_rows=min_rows, threads=threads)
        self.max_rows = check_int(max_rows, "max_rows", 20)

    def _params(self) -> dict[str, Any]:
        return {**super()._params(), "estimator": "exact kernel (V-statistic)"}

    def check(self, current: Any) -> DriftResult:
        if self._reference is not None:
            current = as_matrix(current, "current", min_rows=self.min_rows, dim=self._reference.shape[1])
            n = self._reference.shape[0] + current.shape[0]
            if n > self.max_rows:
                raise MonitorInputError(
                    f"current: {n} pooled rows exceed max_rows={self.max_rows} for the exact kernel (memory grows "
                    "as rows^2); use MMDDetector (random features) or raise max_rows"
                )
        return super().check(current)

    def _stats(self, pooled: torch.Tensor, assigned: torch.Tensor, bandwidth: float) -> torch.Tensor:
        n_ref = int(assigned[0].sum(dtype=torch.int64))
        weights = torch.where(assigned.bool(), 1.0 / n_ref, -1.0 / (pooled.shape[0] - n_ref))
        sq = torch.cdist(pooled, pooled).square_()
        kernel = torch.exp_(sq.mul_(-0.5 / bandwidth**2))
        return ((weights @ kernel) * weights).sum(dim=1)
