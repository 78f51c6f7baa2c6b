"""One calibrated decision for a family of monitors: the page, instead of one alarm per monitor.

Each monitor tests the same window at level ``alpha`` on its own, so with ``m`` monitors a no-drift window raises
*some* alarm with probability up to ``m * alpha``. Combining the monitors' p-values into one test restores a
stated family-wise error rate (FWER: probability that the family raises any alarm when nothing drifted).

``method="holm"`` (default; Holm 1979)
    Sort the ``m`` p-values; reject the ``i``-th smallest while ``p_(i) <= alpha / (m - i + 1)``. The family
    rejects when the smallest p-value is ``<= alpha / m``. Guarantee: FWER ``<= alpha`` for *any* dependence
    between the monitors (they all read the same window, so they are positively dependent). With independent
    monitors the FWER is ``1 - (1 - alpha / m) ** m``, a hair under ``alpha``; with dependent ones it is lower.
    The combined p-value is the smallest Holm-adjusted p-value, ``min(1, m * p_min)``, and ``carried_by`` names the
    monitors Holm rejects, which is what the page should say.

``method="cauchy"`` (Liu & Xie 2020, the Cauchy combination test)
    ``T = mean(tan((0.5 - p_i) * pi))``, combined ``p = 0.5 - arctan(T) / pi``. Exact under independence and,
    as ``alpha -> 0``, under arbitrary dependence; at ``alpha = 0.05`` with strongly dependent monitors it can
    drift from ``alpha`` (measured in the tests and benchmark). More powerful than Holm when several monitors see
    a moderate signal at once. ``carried_by`` names the monitors whose own p-value is ``<= alpha``.

Monitors without a p-value (Evidently's fixed thresholds) are reported but take no part in the decision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, Self

import numpy as np

from ._validate import check_alpha, frozen, require_fitted
from .base import Detector, InputKind
from .errors import MonitorInputError
from .result import DriftResult

Method = Literal["holm", "cauchy"]
_METHODS = ("holm", "cauchy")
# tan((0.5 - p) pi) overflows as p -> 0; this p maps to ~3e15, far beyond any threshold that matters.
_P_FLOOR = 1e-15


def holm_adjusted(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm step-down adjusted p-values: monitor ``i`` is rejected at FWER ``alpha`` iff its value is ``<= alpha``."""
    names = sorted(p_values, key=lambda n: (p_values[n], n))
    m = len(names)
    out: dict[str, float] = {}
    running = 0.0
    for i, name in enumerate(names):
        running = max(running, min(1.0, (m - i) * p_values[name]))
        out[name] = running
    return out


def cauchy_p_value(p_values: Mapping[str, float]) -> float:
    """The Cauchy combination p-value of equally weighted p-values."""
    p = np.clip(np.fromiter(p_values.values(), dtype=np.float64), _P_FLOOR, 1.0)
    t = float(np.mean(np.tan((0.5 - p) * math.pi)))
    # For large T, 0.5 - arctan(T)/pi loses precision; 1/(pi T) is its leading term.
    return float(min(1.0, 1.0 / (math.pi * t))) if t > 1e6 else float(0.5 - math.atan(t) / math.pi)


def combine(results: Mapping[str, DriftResult], *, alpha: float = 0.05, method: Method = "holm") -> DriftResult:
    """One decision from the members' results (the windows' own results, not sequential alarms)."""
    alpha = check_alpha(alpha)
    if method not in _METHODS:
        raise MonitorInputError(f"method={method!r} must be one of {', '.join(_METHODS)}")
    if not results:
        raise MonitorInputError("results: empty; pass one DriftResult per monitor, e.g. {'mmd': mmd.check(x)}")
    p_values = {name: float(r.p_value) for name, r in results.items() if r.p_value is not None}
    ignored = tuple(sorted(name for name, r in results.items() if r.p_value is None))
    if not p_values:
        raise MonitorInputError(
            f"results: none of {', '.join(sorted(results))} has a p-value (fixed-threshold "
            "methods); a combined decision needs at least one calibrated monitor"
        )
    adjusted = holm_adjusted(p_values)
    if method == "holm":
        p = min(adjusted.values())
        carried = tuple(n for n in sorted(adjusted, key=adjusted.__getitem__) if adjusted[n] <= alpha)
    else:
        p = cauchy_p_value(p_values)
        carried = (
            tuple(n for n in sorted(p_values, key=p_values.__getitem__) if p <= alpha and p_values[n] <= alpha)
            if p <= alpha
            else ()
        )
        if p <= alpha and not carried:  # several moderate signals: name the strongest
            carried = (min(p_values, key=p_values.__getitem__),)
    first = next(iter(results.values()))
    return DriftResult(
        method=f"combined[{method}]",
        statistic=float(-math.log10(max(p, 1e-300))),
        p_value=float(p),
        threshold=None,
        drift=bool(p <= alpha),
        alpha=alpha,
        n_reference=first.n_reference,
        n_current=first.n_current,
        params=frozen(
            {
                "method": method,
                "members": tuple(sorted(p_values)),
                "ignored": ignored,
                "guarantee": guarantee(method, alpha, len(p_values)),
            }
        ),
        details=frozen(
            {
                "carried_by": carried,
                "p_values": frozen(p_values),
                "holm_adjusted": frozen(adjusted),
                "results": frozen(dict(results)),
            }
        ),
    )


def guarantee(method: Method, alpha: float, m: int) -> str:
    if method == "holm":
        return (
            f"P(family alarm on a no-drift window) <= {alpha:.3g} for any dependence between the {m} monitors "
            f"(Holm); {1 - (1 - alpha / m) ** m:.3g} if they are independent"
        )
    return (
        f"P(family alarm on a no-drift window) = {alpha:.3g} if the {m} monitors are independent (Cauchy "
        "combination); approximately so under dependence for small alpha"
    )


class CombinedDetector:
    """Named member detectors checked on one window, and one decision for all of them (see :func:`combine`).

    ``fit`` and ``check`` take a mapping from member name to that member's input (its ``input_kind``), so it
    composes with :class:`~monitors.SequentialDetector` for a sustained, family-wise page. Members may
    themselves be sequential detectors: their window p-values are what is combined. ``members_fitted=True`` when
    the caller has already fitted every member (then ``fit`` is optional).
    """

    input_kind: InputKind = "inputs"

    def __init__(
        self,
        members: Mapping[str, Detector],
        *,
        alpha: float = 0.05,
        method: Method = "holm",
        name: str = "combined",
        members_fitted: bool = False,
    ) -> None:
        if not members:
            raise MonitorInputError(
                "members: empty; pass e.g. {'mmd': MMDDetector(), 'top1': Top1SimilarityDetector()}"
            )
        bad = [n for n, d in members.items() if not isinstance(d, Detector)]
        if bad:
            raise MonitorInputError(f"members: {', '.join(bad)} not detectors (need name, input_kind, fit(), check())")
        if method not in _METHODS:
            raise MonitorInputError(f"method={method!r} must be one of {', '.join(_METHODS)}")
        self.members = dict(members)
        self.alpha = check_alpha(alpha)
        self.method: Method = method
        self.name = name
        # The caller may fit members on their own inputs first (e.g. a daemon that already holds them).
        self._fitted = bool(members_fitted)

    def _inputs(self, data: Any, what: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise MonitorInputError(
                f"{what}: {type(data).__name__} is not a mapping; pass {{member name: input}} "
                f"for members {', '.join(self.members)}"
            )
        missing = [n for n in self.members if n not in data]
        if missing:
            raise MonitorInputError(f"{what}: no input for member(s) {', '.join(missing)}; pass one per member")
        return data

    def fit(self, reference: Any) -> Self:
        ref = self._inputs(reference, "reference")
        for name, det in self.members.items():
            det.fit(ref[name])
        self._fitted = True
        return self

    def check(self, current: Any) -> DriftResult:
        require_fitted(self._fitted, type(self).__name__)
        cur = self._inputs(current, "current")
        results = {name: det.check(cur[name]) for name, det in self.members.items()}
        return combine(results, alpha=self.alpha, method=self.method)
