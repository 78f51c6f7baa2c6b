"""Sequential alarms over repeated checks, so a daemon that checks every few minutes does not cry wolf.

A single check at level ``alpha`` false-alarms with probability ``alpha``; a daemon making ``H`` checks a day
against the same reference would raise about ``H * alpha`` false alarms. Two rules are offered:

``SequentialDetector(inner, consecutive=k)`` ("k in a row")
    Raise an alarm only when the last ``k`` windows were each rejected at the inner detector's level ``alpha``.
    Guarantee, stated honestly: (a) for *any* dependence between windows, the probability that a given check
    alarms under no drift is at most ``alpha`` (an alarm requires that window's own rejection), so the rule is
    never worse than a single check. Like the single check's, this is a rate averaged over the draw of the
    reference: for one particular fixed reference the conditional rate can sit above or below ``alpha`` (the
    benchmark measured single-check rates up to ~0.11 for an unlucky reference at alpha = 0.05). (b) If the
    windows' p-values are independent (fresh reference each time), the rate is at most ``alpha ** k``, and over
    ``H`` checks the chance of any false alarm is at most ``(H - k + 1) * alpha ** k``. With one fixed reference,
    consecutive p-values are positively correlated through the shared reference, so the true rate lies between
    ``alpha ** k`` and ``alpha``; the tests and benchmark measure it. The rule delays detection of a real shift by
    ``k - 1`` windows.

``SequentialDetector.bonferroni(inner, family_alpha, horizon)``
    Run each check at level ``family_alpha / horizon`` (``k = 1``). By the union bound, the probability of *any*
    false alarm over ``horizon`` checks is at most ``family_alpha``, whatever the dependence between windows
    (fixed reference included; again averaged over the reference's draw). The price is power: each check is
    stricter, and permutation tests need ``n_permutations >= horizon / family_alpha`` to reach that level at all.

Both need an inner detector that returns p-values. State is one counter (``consecutive``), reset by ``reset()``
or by re-fitting.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from ._validate import check_alpha, check_int, frozen
from .base import Detector
from .errors import MonitorInputError
from .result import DriftResult


class SequentialDetector:
    """Alarm when ``consecutive`` successive windows are each rejected at level ``window_alpha``."""

    def __init__(
        self,
        inner: Detector,
        *,
        consecutive: int = 3,
        window_alpha: float | None = None,
        horizon: int | None = None,
        fixed_threshold: bool = False,
    ) -> None:
        if not isinstance(inner, Detector):
            raise MonitorInputError(
                f"inner: {type(inner).__name__} is not a detector (needs fit() and check()); wrap e.g. MMDDetector()"
            )
        self.inner = inner
        self.k = check_int(consecutive, "consecutive", 1)
        inner_alpha = getattr(inner, "alpha", None)
        # Fixed-threshold methods (Evidently) have no p-value: count their own drift flags, with no guarantee.
        self.fixed_threshold = bool(fixed_threshold)
        if fixed_threshold and window_alpha is None and inner_alpha is None:
            inner_alpha = 0.5  # unused: rejections are the inner decisions
        alpha = window_alpha if window_alpha is not None else inner_alpha
        if alpha is None:
            raise MonitorInputError("window_alpha: the inner detector has no alpha; pass window_alpha explicitly")
        self.window_alpha = check_alpha(alpha, "window_alpha")
        self.horizon = None if horizon is None else check_int(horizon, "horizon", 1)
        n_perm = getattr(inner, "n_permutations", None)
        # A permutation p-value is never below 1 / (B + 1): a stricter level could never alarm.
        if isinstance(n_perm, int) and 1.0 / (n_perm + 1) > self.window_alpha:
            raise MonitorInputError(
                f"window_alpha={self.window_alpha:.3g} is below the smallest p-value {1 / (n_perm + 1):.3g} that "
                f"{type(inner).__name__}(n_permutations={n_perm}) can return, so it could never alarm; use "
                f"n_permutations >= {int(np.ceil(1 / self.window_alpha))} or a closed-form test (ClassifierDetector)"
            )
        self.name = f"sequential[{inner.name}]"
        self.input_kind = inner.input_kind
        self.consecutive = 0
        self.n_checks = 0

    @classmethod
    def bonferroni(cls, inner: Detector, family_alpha: float, horizon: int) -> SequentialDetector:
        """Each check at ``family_alpha / horizon``: P(any false alarm in ``horizon`` checks) <= ``family_alpha``."""
        family_alpha = check_alpha(family_alpha, "family_alpha")
        horizon = check_int(horizon, "horizon", 1)
        return cls(inner, consecutive=1, window_alpha=family_alpha / horizon, horizon=horizon)

    @property
    def guarantee(self) -> str:
        if self.horizon is not None and self.k == 1:
            return (
                f"P(any false alarm in {self.horizon} checks) <= {self.window_alpha * self.horizon:.3g} "
                "for any dependence between windows (Bonferroni)"
            )
        return (
            f"P(false alarm at a check) <= {self.window_alpha:.3g} for any dependence; "
            f"<= {self.window_alpha**self.k:.3g} if window p-values are independent"
        )

    def fit(self, reference: Any) -> Self:
        self.inner.fit(reference)
        self.reset()
        return self

    def reset(self) -> None:
        self.consecutive = 0
        self.n_checks = 0

    def check(self, current: Any) -> DriftResult:
        return self.record(self.inner.check(current))

    def record(self, window: DriftResult) -> DriftResult:
        """Count a window result the inner detector's test produced elsewhere (e.g. by :class:`monitors.Page`,
        which checks its members on a shared null) exactly as :meth:`check` counts its own."""
        if window.p_value is None and not self.fixed_threshold:
            raise MonitorInputError(
                f"inner: {self.inner.name} returns no p-value (fixed-threshold method); "
                "sequential alarms need a calibrated test such as MMDDetector (or "
                "fixed_threshold=True, which counts its decisions without any guarantee)"
            )
        rejected = window.drift if window.p_value is None else window.p_value <= self.window_alpha
        self.consecutive = self.consecutive + 1 if rejected else 0
        self.n_checks += 1
        alarm = self.consecutive >= self.k
        return DriftResult(
            method=self.name,
            statistic=window.statistic,
            p_value=window.p_value,
            threshold=window.threshold,
            drift=alarm,
            alpha=None if window.p_value is None else self.window_alpha,
            n_reference=window.n_reference,
            n_current=window.n_current,
            params=frozen(
                {
                    "consecutive": self.k,
                    "window_alpha": None if window.p_value is None else self.window_alpha,
                    "horizon": self.horizon,
                    "inner": window.method,
                    "inner_params": window.params,
                }
            ),
            details=frozen(
                {
                    "consecutive": self.consecutive,
                    "window_drift": rejected,
                    "n_checks": self.n_checks,
                    "guarantee": self.guarantee,
                    "window": window,
                }
            ),
        )
